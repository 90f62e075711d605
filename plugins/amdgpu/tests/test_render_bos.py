"""Render-node BOs: CRIU 4.2 records a render node as its GPU only, so a render node holding GEM BOs is refused.

The emulated render node answers AMDGPU_GEM_CREATE / GEM_MMAP / GEM_LIST_HANDLES like amdgpu (or EINVAL for
LIST_HANDLES, as kernels before it); the hooks are driven as the core drives them.
"""

from __future__ import annotations

import itertools
import os
import threading

import pytest
from criu_core.context import DumpContext
from criu_core.plugins import PluginHost
from criu_core.resources import FdInfo, Task, Vma

import criu_amdgpu.plugin
from criu_amdgpu import abi, drm, images, proto
from criu_amdgpu.dump import RenderBosNotSupported
from criu_amdgpu.emu.machine import EmulatedMachine
from criu_amdgpu.emu.model import FakeDrmDevice, FakeKfdDevice
from criu_amdgpu.emu.scenario import GPU_A, GPU_B, populate
from criu_amdgpu.emu.sysfs import GpuSpec
from criu_amdgpu.state import PROVIDER

PID = 4343
_IDS = itertools.count(40)


def gem_create(dev, size, domains=abi.AMDGPU_GEM_DOMAIN_VRAM) -> tuple[int, int]:
    """GEM_CREATE + GEM_MMAP through a render-node device: (handle, mmap offset)."""
    c = abi.DrmAmdgpuGemCreate()
    c.in_.bo_size, c.in_.alignment, c.in_.domains = size, 4096, domains
    buf = bytearray(bytes(c))
    dev.ioctl(abi.DRM_IOCTL_AMDGPU_GEM_CREATE, buf)
    handle = abi.DrmAmdgpuGemCreate.from_buffer_copy(bytes(buf)).out.handle
    m = abi.DrmAmdgpuGemMmap()
    m.in_.handle = handle
    buf = bytearray(bytes(m))
    dev.ioctl(abi.DRM_IOCTL_AMDGPU_GEM_MMAP, buf)
    return handle, abi.DrmAmdgpuGemMmap.from_buffer_copy(bytes(buf)).out.addr_ptr


@pytest.fixture
def host():
    h = PluginHost(load_entry_points=False)
    h.register(criu_amdgpu.plugin, "amdgpu")
    return h


@pytest.fixture
def m(tmp_path):
    mach = EmulatedMachine(tmp_path / "m", [GpuSpec(GPU_A, 128), GpuSpec(GPU_B, 129)])
    yield mach
    mach.close()


def test_list_handles_grows_past_its_first_guess_and_says_none_on_old_kernels(m):
    dev = FakeDrmDevice(m.kfd, m.kfd.open_render(PID, GPU_A))
    assert drm.list_handles(dev) == []
    made = [gem_create(dev, 4096 * (i + 1))[0] for i in range(10)]  # more than the 8 asked for first
    got = drm.list_handles(dev)
    assert [h.handle for h in got] == made
    assert [h.size for h in got] == [4096 * (i + 1) for i in range(10)]
    assert all(h.preferred_domains == abi.AMDGPU_GEM_DOMAIN_VRAM and not h.is_import for h in got)
    m.kfd.list_handles = False
    assert drm.list_handles(dev) is None


def _dump(host, m, tmp_path, render_file=None, extra_vmas=()):
    """A KFD task with the scenario's BOs and a render-node descriptor; returns the dump context (not finished)."""
    images_dir = tmp_path / "img"
    images_dir.mkdir(exist_ok=True)
    tracer = threading.get_native_id()
    m.kfd.tracer_of = lambda pid: tracer if pid == PID else None
    ctx = DumpContext(options=host.options.defaults(), host=host, images_dir=images_dir)
    ctx.stash[PROVIDER] = m.provider
    host.init(ctx, "dump")
    target = FakeKfdDevice(m.kfd, m.kfd.open(PID))
    populate(m.kfd, target, PID)
    proc = m.kfd.processes[PID]
    render = m.config.render_path(128)
    vmas = [(render, bo.addr, bo.size, bo.offset) for bo in proc.bos.values() if bo.flags & abi.CONTENT_FLAGS
            and bo.gpu_id == GPU_A] + list(extra_vmas)
    st = os.stat(render)
    for path, start, size, pgoff in vmas:
        v = Vma(pid=PID, start=start, end=start + size, prot=3, flags=1, pgoff=pgoff, name=path,
                dev=f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}", inode=st.st_ino, path=path)
        assert host.vma_dump(ctx, v).plugin == "amdgpu"
    fds = []
    for path, num in ((m.config.kfd_path, 5), (render, 6)):
        local = os.open(path, os.O_RDWR)
        fds.append(local)
        if num == 5:
            m.provider.attach(local, target.file)
        elif render_file is not None:
            m.provider.attach_render(local, render_file)
        st = os.stat(path)
        host.file_dump(ctx, FdInfo(pid=PID, fd=num, local_fd=local, kind="chr", link=path, ino=st.st_ino,
                                   dev=st.st_dev, file_id=next(_IDS)))
    return ctx, fds, proc


def _finish(host, ctx, fds, ok):
    host.fini(ctx, "dump", ok)
    ctx.close()
    for fd in fds:
        os.close(fd)


def test_a_render_node_without_gem_bos_is_recorded_as_criu_4_2_does(host, m, tmp_path):
    ctx, fds, proc = _dump(host, m, tmp_path, m.kfd.open_render(PID, GPU_A))
    host.devices_dump_late(ctx, Task(PID))
    _finish(host, ctx, fds, True)
    (name,) = [p.name for p in (tmp_path / "img").glob("amdgpu-renderD-*.img")]
    node = images.read_message(tmp_path / "img", name, proto.criu_render_node)
    assert (node.gpu_id, node.drm_render_minor, node.num_of_bos) == (GPU_A, 128, 0)
    assert not proc.paused


def test_gem_bos_of_a_render_node_fail_the_dump_naming_task_and_fd(host, m, tmp_path):
    rf = m.kfd.open_render(PID, GPU_A)
    gem_create(FakeDrmDevice(m.kfd, rf), 8192)
    ctx, fds, proc = _dump(host, m, tmp_path, rf)
    with pytest.raises(RenderBosNotSupported) as err:
        host.devices_dump_late(ctx, Task(PID))
    msg = str(err.value)
    assert msg.startswith(f"amdgpu: task {PID} fd 6 (renderD128): 1 GEM buffer object(s)") and "\n" not in msg
    assert "dump refused" in msg
    assert not list((tmp_path / "img").glob("amdgpu-renderD-*.img"))
    _finish(host, ctx, fds, False)
    assert not proc.paused, "a failed dump leaves the GPU queues running"


def test_without_list_handles_a_mapping_that_is_no_kfd_bo_fails_the_dump(host, m, tmp_path):
    m.kfd.list_handles = False
    rf = m.kfd.open_render(PID, GPU_A)
    _, offset = gem_create(FakeDrmDevice(m.kfd, rf), 4096)
    ctx, fds, proc = _dump(host, m, tmp_path, rf, [(m.config.render_path(128), 0x7E0000000000, 4096, offset)])
    with pytest.raises(RenderBosNotSupported, match=rf"task {PID} fd 6 \(renderD128\): mapping 0x7e0000000000-"
                                                    rf"0x7e0000001000 at offset {offset:#x} is no KFD buffer object"):
        host.devices_dump_late(ctx, Task(PID))
    _finish(host, ctx, fds, False)
    assert not proc.paused


def test_without_list_handles_kfd_bo_mappings_alone_pass(host, m, tmp_path):
    m.kfd.list_handles = False
    ctx, fds, _ = _dump(host, m, tmp_path, m.kfd.open_render(PID, GPU_A))
    host.devices_dump_late(ctx, Task(PID))
    _finish(host, ctx, fds, True)
    assert list((tmp_path / "img").glob("amdgpu-renderD-*.img"))
