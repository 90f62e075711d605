"""Dump and restore through the plugin's hooks, on emulated machines behind the KfdDevice seam.

The hooks are called the way the core's engines call them (PluginHost facade, keyword arguments, real
contexts); the task is played by this process, the KFD by the emulated driver.
"""

from __future__ import annotations

import itertools
import os
import threading

import pytest
from criu_core.context import DumpContext, RestoreContext
from criu_core.images.messages import new
from criu_core.plugins import PluginHost
from criu_core.resources import FdInfo, FileImage, Task, Vma, VmaImage

import criu_amdgpu.plugin
import criu_amdgpu.state
from criu_amdgpu import abi, images, proto
from criu_amdgpu.bo_restore import BoRestoreFailed
from criu_amdgpu.dump import VMA_EXT_PLUGIN, ext_file_entry
from criu_amdgpu.emu.machine import EmulatedMachine
from criu_amdgpu.emu.model import FakeKfdDevice
from criu_amdgpu.emu.scenario import GPU_A, GPU_B, LAYOUT, populate
from criu_amdgpu.emu.sysfs import GpuSpec
from criu_amdgpu.engines import PlainEngine
from criu_amdgpu.state import PROVIDER
from criu_amdgpu.topology import GpuMatchError

PID = 4242
MAP_SHARED = 0x01


@pytest.fixture
def host():
    h = PluginHost(load_entry_points=False)
    h.register(criu_amdgpu.plugin, "amdgpu")
    return h


def machine(tmp_path, name, ids=(GPU_A, GPU_B), **kw):
    return EmulatedMachine(tmp_path / name, [GpuSpec(ids[0], 128), GpuSpec(ids[1], 129)], **kw)


def _fdinfo(path, fd, local_fd, pid=PID):
    """What the core offers: the file id it will give the entry is known before the hook runs."""
    st = os.stat(path)
    return FdInfo(pid=pid, fd=fd, local_fd=local_fd, kind="chr", link=path, ino=st.st_ino, dev=st.st_dev,
                  file_id=next(_FILE_IDS))


_FILE_IDS = itertools.count(7)


def _vma(path, start, size, pgoff, pid=PID):
    st = os.stat(path)
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}"
    return Vma(pid=pid, start=start, end=start + size, prot=3, flags=MAP_SHARED, pgoff=pgoff, name=path, dev=dev,
               inode=st.st_ino, path=path)


def _bo_fds():
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}").startswith("/memfd:fake-bo")
        except OSError:
            pass
    return n


def dump(host, m, image_dir, pids=(PID,)):
    """Tasks with the scenario's BOs, dumped. For one pid: (contents by addr, kfd file id, render file id, vmas);
    for several: a list of those."""
    tracer = threading.get_native_id()
    m.kfd.tracer_of = lambda pid: tracer if pid in pids else None  # we are their tracer
    ctx = DumpContext(options=host.options.defaults(), host=host, images_dir=image_dir)
    ctx.stash[PROVIDER] = m.provider
    host.init(ctx, "dump")
    out, fds = [], []
    for pid in pids:
        target = FakeKfdDevice(m.kfd, m.kfd.open(pid))
        populate(m.kfd, target, pid)
        proc = m.kfd.processes[pid]
        for bo in proc.bos.values():
            if bo.memfd >= 0:  # distinct per task and per BO, so a mix-up shows
                bo.write(bytes([(bo.handle * 7 + pid) & 0xFF]) * bo.size)
        contents = {bo.addr: bo.read() for bo in proc.bos.values() if bo.memfd >= 0}
        vmas = [_vma(m.config.kfd_path if bo.flags & abi.AllocFlag.DOORBELL
                     else m.config.render_path(128 + (bo.gpu_id == GPU_B)), bo.addr, bo.size, bo.offset, pid)
                for bo in proc.bos.values() if not bo.flags & abi.AllocFlag.USERPTR]
        for v in vmas:
            claim = host.vma_dump(ctx, v)
            assert claim.plugin == "amdgpu" and claim.skip_content and claim.status & VMA_EXT_PLUGIN
        local = os.open(m.config.kfd_path, os.O_RDWR)
        m.provider.attach(local, target.file)
        kfd_claim = host.file_dump(ctx, _fdinfo(m.config.kfd_path, 5, local, pid))
        assert proc.paused, "GPU queues stay evicted until dump-late"
        render_local = os.open(m.config.render_path(129), os.O_RDWR)
        render_claim = host.file_dump(ctx, _fdinfo(m.config.render_path(129), 6, render_local, pid))
        fds += [local, render_local]
        assert kfd_claim.entry.type == 16 and kfd_claim.fd_type == 16
        # the images carry the id the core gives the entry, from the start (no provisional id to rename)
        assert (image_dir / images.kfd_image_name(kfd_claim.entry.id)).exists()
        assert kfd_claim.entry.id == kfd_claim.entry.ext.id
        out.append((contents, kfd_claim.entry.id, render_claim.entry.id, vmas))
    for pid in pids:
        host.devices_dump_late(ctx, Task(pid))
        assert not m.kfd.processes[pid].paused
    host.fini(ctx, "dump", True)
    ctx.close()
    for fd in fds:
        os.close(fd)
    assert ctx.used_plugins == ["amdgpu_plugin"]
    return out[0] if len(pids) == 1 else out


def test_dump_writes_criu_amdgpu_images(host, tmp_path, image_dir):
    m = machine(tmp_path, "src")
    contents, kfd_id, render_id, _ = dump(host, m, image_dir)
    img = images.read_message(image_dir, images.kfd_image_name(kfd_id), proto.criu_kfd)
    assert (img.pid, img.num_of_gpus, img.num_of_cpus, img.num_of_bos, img.num_of_objects) == (PID, 2, 1, 5, 1)
    assert [e.gpu_id for e in img.device_entries] == [0, GPU_A, GPU_B]
    assert [e.size for e in img.bo_entries] == [s for _, _, s, _ in LAYOUT]
    assert all(e.handle == 0xFFFFFFFF for e in img.bo_entries)
    # one pages file per GPU, this GPU's BOs back to back in bucket order, offsets restarting at 0
    a = (image_dir / images.pages_image_name(kfd_id, GPU_A)).read_bytes()
    b = (image_dir / images.pages_image_name(kfd_id, GPU_B)).read_bytes()
    va = [va for g, va, _, f in LAYOUT if g == GPU_A and f & 3]
    assert a[8:] == contents[va[0]] + contents[va[1]] and int.from_bytes(a[:8], "little") == 0x6000
    assert b[8:] == contents[0x7F0001000000] and int.from_bytes(b[:8], "little") == 0x3000
    render = images.read_message(image_dir, images.render_image_name(render_id), proto.criu_render_node)
    assert (render.gpu_id, render.drm_render_minor, render.id) == (GPU_B, 129, render_id)
    assert _bo_fds() == 3, "the dmabuf fds CHECKPOINT gave us are closed (only the driver's own memfds remain)"
    m.close()


def test_failed_dump_unpauses_in_fini(host, tmp_path, image_dir):
    m = machine(tmp_path, "src")
    target = FakeKfdDevice(m.kfd, m.kfd.open(PID))
    populate(m.kfd, target, PID)
    m.kfd.tracer_of = lambda pid: threading.get_native_id()
    ctx = DumpContext(options=host.options.defaults(), host=host, images_dir=image_dir)
    ctx.stash[PROVIDER] = m.provider
    os.rename(m.root / "sys", m.root / "sys.gone")  # the topology cannot be read: the dump fails after PROCESS_INFO
    local = os.open(m.config.kfd_path, os.O_RDWR)
    m.provider.attach(local, target.file)
    with pytest.raises(Exception, match="no KFD topology"):
        host.file_dump(ctx, _fdinfo(m.config.kfd_path, 5, local))
    host.fini(ctx, "dump", False)
    assert not m.kfd.processes[PID].paused
    os.close(local)
    m.close()


def _restore(host, m, image_dir, kfd_id, render_id, vmas, pid=PID, ctx=None):
    if ctx is None:
        ctx = RestoreContext(options=host.options.defaults(), host=host, images_dir=image_dir)
        ctx.stash[PROVIDER] = m.provider
        host.init(ctx, "restore")
        host.devices_restore_init(ctx)
        host.devices_post_fork(ctx)
    for i, v in enumerate(vmas):
        entry = new("vma.vma_entry", start=v.start, end=v.end, pgoff=v.pgoff, shmid=kfd_id, prot=v.prot,
                    flags=v.flags, status=VMA_EXT_PLUGIN | 1, fd=-1)
        mapped = host.vma_restore(ctx, VmaImage(pid, i, entry), None)
        assert mapped.plugin == "amdgpu" and mapped.skip_content
    got = {}
    for fid, fd in ((kfd_id, 5), (render_id, 6)):
        res = host.file_restore(ctx, FileImage(pid, ext_file_entry(fid), (fd,)))
        got[fid] = res.local_fd
    host.task_restore(ctx, Task(pid), None)
    return ctx, got


def test_restore_on_another_machine(host, tmp_path, image_dir):
    src = machine(tmp_path, "src")
    contents, kfd_id, render_id, vmas = dump(host, src, image_dir)
    src.close()
    dst = machine(tmp_path, "dst", ids=(0x2222, 0x1111))  # same GPUs, other gpu_ids
    ctx, got = _restore(host, dst, image_dir, kfd_id, render_id, vmas)
    side = dst.provider.sides[PID]
    proc = dst.kfd.processes[PID]
    assert proc.restored and proc.pdds == {0x2222: GPU_A, 0x1111: GPU_B}  # user ids survive
    by_addr = {m[0]: m for m in side.mapped}
    doorbell = next(b for b in proc.bos.values() if b.flags & abi.AllocFlag.DOORBELL)
    assert abi.mmap_offset_gpu_id(by_addr[doorbell.addr][5]) == 0x2222  # re-encoded for the new GPU
    vram_b = next(b for b in proc.bos.values() if b.addr == 0x7F0001000000)
    assert by_addr[vram_b.addr][5] == vram_b.offset  # the new DRM offset
    opened = {fd: path for path, fd in side.opened}
    assert opened[by_addr[vram_b.addr][4]] == dst.config.render_path(129)  # the render node bound at RESTORE
    assert opened[by_addr[doorbell.addr][4]] == dst.config.kfd_path
    assert os.readlink(f"/proc/self/fd/{got[kfd_id]}") == dst.config.kfd_path
    host.devices_resume_late(ctx, Task(PID))
    assert dst.kfd.resumed == [PID] and not proc.restored
    assert {b.addr: b.read() for b in proc.bos.values() if b.memfd >= 0} == contents
    assert all(fd not in side.files for _, fd in side.opened), "temporary task descriptors are closed"
    for fd in got.values():
        os.close(fd)
    host.fini(ctx, "restore", True)
    ctx.close()
    dst.close()


class _Broken(PlainEngine):
    def write_bo(self, in_fd, in_offset, size, bo_fd, bo_offset=0, gpu=0):
        raise OSError(5, "Input/output error")


def test_failed_bo_copy_fails_the_restore_before_resume(host, tmp_path, image_dir):
    src = machine(tmp_path, "src")
    _, kfd_id, render_id, vmas = dump(host, src, image_dir)
    src.close()
    dst = machine(tmp_path, "dst", engine=_Broken())
    ctx, got = _restore(host, dst, image_dir, kfd_id, render_id, vmas)
    with pytest.raises(BoRestoreFailed, match=r"amdgpu-pages-\d+-(70b3|1c4d).img: BO 0x7f00.*Input/output error"):
        host.devices_resume_late(ctx, Task(PID))
    assert dst.kfd.resumed == []
    for fd in got.values():
        os.close(fd)
    ctx.close()
    dst.close()


def test_truncated_pages_file_fails_the_restore(host, tmp_path, image_dir):
    src = machine(tmp_path, "src")
    _, kfd_id, render_id, vmas = dump(host, src, image_dir)
    src.close()
    pages = image_dir / images.pages_image_name(kfd_id, GPU_B)
    pages.write_bytes(pages.read_bytes()[:-4096])
    dst = machine(tmp_path, "dst")
    ctx, got = _restore(host, dst, image_dir, kfd_id, render_id, vmas)
    with pytest.raises(Exception, match="the BOs need 12288"):
        host.devices_resume_late(ctx, Task(PID))
    assert dst.kfd.resumed == []
    for fd in got.values():
        os.close(fd)
    ctx.close()
    dst.close()


def test_machine_that_cannot_host_the_gpus_fails_before_anything(host, tmp_path, image_dir):
    src = machine(tmp_path, "src")
    _, *_ = dump(host, src, image_dir)
    src.close()
    small = EmulatedMachine(tmp_path / "small", [GpuSpec(0x3333, 128)])
    ctx = RestoreContext(options=host.options.defaults(), host=host, images_dir=image_dir)
    ctx.stash[PROVIDER] = small.provider
    with pytest.raises(GpuMatchError, match="the checkpoint has 2 GPU"):
        host.devices_restore_init(ctx)
    assert small.kfd.processes == {}
    other = EmulatedMachine(tmp_path / "other", [GpuSpec(1, 128, props={"device_id": 1}),
                                                 GpuSpec(2, 129, props={"device_id": 1})])
    ctx2 = RestoreContext(options=host.options.defaults(), host=host, images_dir=image_dir)
    ctx2.stash[PROVIDER] = other.provider
    with pytest.raises(GpuMatchError, match="device_id 1 != 29857"):
        host.devices_restore_init(ctx2)
    small.close()
    other.close()


def test_options_are_declared(host):
    opts = {name: spec.owner for name, spec in host.options.specs.items() if name.startswith("amdgpu")}
    assert opts == {"amdgpu-kfd-path": "amdgpu", "amdgpu-dev-root": "amdgpu", "amdgpu-topology-root": "amdgpu",
                    "amdgpu-copy-engine": "amdgpu", "amdgpu-serial-bo-restore": "amdgpu"}


def test_gpus_hidden_from_the_task_are_left_out_of_the_image(host, tmp_path, image_dir):
    m = machine(tmp_path, "src")
    m.kfd.gpus = [g for g in m.kfd.gpus if g.gpu_id == GPU_A]  # a device cgroup hides GPU_B from the task
    target = FakeKfdDevice(m.kfd, m.kfd.open(PID))
    populate(m.kfd, target, PID, [row for row in LAYOUT if row[0] == GPU_A])
    m.kfd.tracer_of = lambda pid: threading.get_native_id()
    ctx = DumpContext(options=host.options.defaults(), host=host, images_dir=image_dir)
    ctx.stash[PROVIDER] = m.provider
    local = os.open(m.config.kfd_path, os.O_RDWR)
    m.provider.attach(local, target.file)
    claim = host.file_dump(ctx, _fdinfo(m.config.kfd_path, 5, local))
    host.devices_dump_late(ctx, Task(PID))
    os.close(local)
    img = images.read_message(image_dir, images.kfd_image_name(claim.entry.id), proto.criu_kfd)
    assert (img.num_of_gpus, [e.gpu_id for e in img.device_entries]) == (1, [0, GPU_A])
    cpu = img.device_entries[0]
    assert [link.node_to_id for link in cpu.iolinks] == [1], "the CPU's link to the hidden GPU is not stored"
    ctx.close()
    m.close()


def test_check_reports_the_kfd(host, tmp_path):
    from criu_core.context import CheckContext

    m = machine(tmp_path, "m")
    ctx = CheckContext(options=host.options.defaults(), host=host, images_dir=tmp_path)
    ctx.stash[PROVIDER] = m.provider
    found = {name: (ok, detail) for name, ok, detail in host.check_features(ctx)}
    assert found["amdgpu: KFD checkpoint/restore"] == (True, f"{m.config.kfd_path}: KFD ioctl version 1.17")
    assert found["amdgpu: KFD topology"] == (True, f"{GPU_A:04x} (renderD128), {GPU_B:04x} (renderD129)")
    m.close()


def test_multi_process_tree_copies_in_parallel_and_resumes_each(host, tmp_path, image_dir):
    src = machine(tmp_path, "src")
    dumped = dump(host, src, image_dir, pids=(PID, PID + 1))
    src.close()
    dst = machine(tmp_path, "dst")
    ctx, fds = None, []
    for pid, (_, kfd_id, render_id, vmas) in zip((PID, PID + 1), dumped):
        ctx, got = _restore(host, dst, image_dir, kfd_id, render_id, vmas, pid, ctx)
        fds += got.values()
    run_bo = ctx.stash[criu_amdgpu.state.RUN].bo
    assert not run_bo.serial and len(run_bo._workers) == 2, "one worker per GPU, shared by both tasks"
    for pid in (PID, PID + 1):
        host.devices_resume_late(ctx, Task(pid))
    assert dst.kfd.resumed == [PID, PID + 1]
    for pid, (contents, *_rest) in zip((PID, PID + 1), dumped):
        proc = dst.kfd.processes[pid]
        assert {b.addr: b.read() for b in proc.bos.values() if b.memfd >= 0} == contents
    for fd in fds:
        os.close(fd)
    ctx.close()
    dst.close()


def test_restore_without_a_handle_on_the_task_says_what_is_missing(tmp_path):
    from criu_core.errors import CriuError

    from criu_amdgpu.config import AmdgpuConfig
    from criu_amdgpu.provider import RealProvider

    with pytest.raises(CriuError, match="must be restored from inside the task"):
        RealProvider(AmdgpuConfig(env={})).task_side(PID, None, lambda: 100)


class _NoDmabufDevice(FakeKfdDevice):
    """RESTORE installs no dmabuf (as on the FUSE-emulated device): the BOs are reached through the render nodes."""

    def ioctl(self, cmd, buf):
        self.kfd.ioctl(self.file, cmd, buf, self.mem, caller=self.caller, caller_tid=self.caller_tid,
                       privileged=self.privileged, install_fd=lambda fd: abi.KFD_INVALID_FD)


def _open_fds():
    out = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            out[int(fd)] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass  # listdir's own descriptor, gone by now
    return out


@pytest.mark.parametrize("dmabufs,fail_at", [(False, 2), (True, 3)], ids=["render-copy-of-gpu-2", "third-dmabuf"])
def test_failure_while_planning_the_copies_leaves_no_descriptor_open(host, tmp_path, image_dir, monkeypatch,
                                                                      dmabufs, fail_at):
    """A copy of a task descriptor that cannot be taken half-way (pidfd_getfd failing on its ``fail_at``-th call)
    fails the restore, and every descriptor taken before it is closed: our copies and per-BO dups, and the dmabufs
    still in the task."""
    from criu_core.errors import SyscallError

    from criu_amdgpu.emu.provider import FakeTaskSide

    src = machine(tmp_path, "src")
    _, kfd_id, _render_id, vmas = dump(host, src, image_dir)
    src.close()
    dst = machine(tmp_path, "dst")
    calls = []

    class Side(FakeTaskSide):
        def kfd_device(self, task_fd):
            return super().kfd_device(task_fd) if dmabufs else _NoDmabufDevice(dst.kfd, self.files[task_fd])

        def getfd(self, task_fd):
            calls.append(task_fd)
            if len(calls) == fail_at:
                raise SyscallError(24, "pidfd_getfd", self.pid)
            return super().getfd(task_fd)

    def task_side(pid, remote, fd_alloc=None):
        side = dst.provider.sides[pid] = Side(dst.kfd, pid, dst.config)
        return side

    monkeypatch.setattr(dst.provider, "task_side", task_side)
    before = _open_fds()
    ctx = RestoreContext(options=host.options.defaults(), host=host, images_dir=image_dir)
    ctx.stash[PROVIDER] = dst.provider
    host.init(ctx, "restore")
    host.devices_restore_init(ctx)
    v = vmas[0]
    entry = new("vma.vma_entry", start=v.start, end=v.end, pgoff=v.pgoff, shmid=kfd_id, prot=v.prot, flags=v.flags,
                status=VMA_EXT_PLUGIN | 1, fd=-1)
    with pytest.raises(SyscallError, match="pidfd_getfd"):
        host.vma_restore(ctx, VmaImage(PID, 0, entry), None)
    assert len(calls) == fail_at
    side = dst.provider.sides[PID]
    renders = {fd for path, fd in side.opened if path != dst.config.kfd_path}
    assert dmabufs or calls[0] in renders, "without dmabufs the copies are of the render nodes"
    for _, fd in side.opened:  # the task's own descriptors (it would be killed): this process plays it
        os.close(fd)
    dst.close()  # the driver's BO memory
    host.fini(ctx, "restore", False)
    ctx.close()
    assert _open_fds() == before


def test_contents_without_dmabufs_wait_for_dump_late_and_a_failed_dump_closes_the_dmabufs(host, tmp_path, image_dir,
                                                                                         monkeypatch):
    """CHECKPOINT handed out a dmabuf for some BOs only: the contents are read at dump-late, through the render
    descriptors the core offers after the KFD one, so the dmabufs stay ours until then; a dump that fails before
    (fini) closes them and unpauses the queues."""
    m = machine(tmp_path, "src")
    target = FakeKfdDevice(m.kfd, m.kfd.open(PID))
    populate(m.kfd, target, PID)
    tracer = threading.get_native_id()
    m.kfd.tracer_of = lambda pid: tracer
    installed = []

    def one_dmabuf(memfd):  # the first content BO gets a dmabuf, the others none (as an emulated device)
        if installed:
            return abi.KFD_INVALID_FD
        installed.append(os.dup(memfd))
        return installed[0]

    class Dev(FakeKfdDevice):
        def ioctl(self, cmd, buf):
            self.kfd.ioctl(self.file, cmd, buf, self.mem, caller=self.caller, caller_tid=self.caller_tid,
                           install_fd=one_dmabuf)

    monkeypatch.setattr(m.provider, "task_device", lambda fd: Dev(m.kfd, target.file, caller=os.getpid(),
                                                                  caller_tid=tracer))
    ctx = DumpContext(options=host.options.defaults(), host=host, images_dir=image_dir)
    ctx.stash[PROVIDER] = m.provider
    host.init(ctx, "dump")
    local = os.open(m.config.kfd_path, os.O_RDWR)
    claim = host.file_dump(ctx, _fdinfo(m.config.kfd_path, 5, local))
    kfd_id = claim.entry.id
    assert len(installed) == 1
    ino = os.fstat(installed[0]).st_ino  # still open: the contents are not read yet
    assert not list(image_dir.glob(f"amdgpu-pages-{kfd_id}-*.img")), "no pages file before dump-late"
    assert m.kfd.processes[PID].paused
    host.fini(ctx, "dump", False)  # e.g. another descriptor of the task could not be dumped
    try:
        assert os.fstat(installed[0]).st_ino != ino, "the dmabuf is closed (its number may be reused)"
    except OSError:
        pass
    assert not m.kfd.processes[PID].paused
    ctx.close()
    os.close(local)
    m.close()
