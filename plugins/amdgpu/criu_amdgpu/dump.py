"""Dump: claim KFD and render-node descriptors and mappings, checkpoint the KFD process, write the images.

Sequence for a KFD descriptor (reference §2.3): version check on our own ``/dev/kfd``; PROCESS_INFO on the task's
descriptor (its queues stay evicted until UNPAUSE at dump-late); CHECKPOINT; ``amdgpu-kfd-<id>.img`` with one
device entry per CPU node and per GPU *the task has* (GPUs a cgroup hides are dropped, as CRIU's PR #2874 does),
GPU ids translated to the task's user ids; one pages file per GPU, copied by one thread per GPU (at dump-late where
a BO came without a dmabuf: it is read through the task's render descriptor, offered after this one); the dmabuf
fds CHECKPOINT put in our fd table are closed whatever happens.

The CRIU_OPs must be issued by the thread that seized the task (the kernel lets only the ptrace parent *thread*
use another process's KFD descriptor); the hooks issue them in the thread the core calls them from.
"""

from __future__ import annotations

import copy
import os
import struct
from typing import Any

from criu_core.errors import CriuError, UnsupportedResource
from criu_core.resources import FileClaim, VmaClaim

from criu_amdgpu import abi, drm, kfd, proto
from criu_amdgpu.bo_restore import dump_contents
from criu_amdgpu.config import maps_dev
from criu_amdgpu.images import (
    kfd_image_name,
    render_image_name,
    topology_to_entries,
    write_message,
)
from criu_amdgpu.state import AmdgpuRun, DumpedKfd, DumpedRender
from criu_amdgpu.topology import Topology, TopologyError

__all__ = [
    "FD_TYPE_EXT",
    "PLUGIN",
    "VMA_EXT_PLUGIN",
    "RenderBosNotSupported",
    "check_render_bos",
    "claim_vma",
    "classify",
    "dump_kfd",
    "dump_late",
    "dump_render",
    "ext_file_entry",
    "unpause_all",
]

PLUGIN = "amdgpu"
VMA_EXT_PLUGIN = 1 << 27  # image.h: the VMA is mapped by a plugin at restore
FD_TYPE_EXT = 16  # fdinfo.proto fd_types EXT
SHM_NAME = "hsakmt_shared_mem"


def classify(run: AmdgpuRun, dev: str | int, ino: int, path: str | None) -> tuple[str, int] | None:
    """("kfd", 0), ("render", minor) or None for a file identified by (st_dev, st_ino) or by its path."""
    kfd_id, render = run.identities()
    ident = (maps_dev(dev), ino)
    if kfd_id is not None and ident == kfd_id:
        return ("kfd", 0)
    if ident in render:
        return ("render", render[ident])
    if path:
        if path == run.config.kfd_path:
            return ("kfd", 0)
        for minor in render.values():
            if path == run.config.render_path(minor):
                return ("render", minor)
    return None


def claim_vma(run: AmdgpuRun, vma: Any) -> VmaClaim | None:
    """Mappings of the KFD device or of a render node: mapped by us at restore, no pages dumped (HANDLE_DEVICE_VMA)."""
    kind = classify(run, vma.dev, vma.inode, vma.path or vma.name)
    if kind is None:
        return None
    if kind[0] == "render":
        run.render_vmas.append((vma, kind[1]))  # each must be a KFD BO: checked at dump-late
    # pgoff is the BO's mmap offset at checkpoint: UPDATE_VMA_MAP finds the BO by (start, pgoff) at restore
    return VmaClaim(plugin=PLUGIN, skip_content=True, status=VMA_EXT_PLUGIN, entry_updates={"pgoff": vma.pgoff})


def ext_file_entry(file_id: int) -> Any:
    """The ``file_entry`` of type EXT the core writes to files.img for one of our descriptors."""
    from criu_core.images.messages import new

    entry = new("fdinfo.file_entry", type="EXT", id=file_id)
    entry.ext.id = file_id
    entry.ext.fown.CopyFrom(new("fown.fown_entry", uid=0, euid=0, signum=0, pid_type=0, pid=0))
    return entry


def _file_id(fd: Any) -> int:
    """The files.img id the core gives our EXT file_entry (FdInfo.file_id); our images are named after it."""
    if not fd.file_id:
        raise CriuError(f"amdgpu: {fd} was offered without the file id the core will give it")
    return int(fd.file_id)


def _shared_mem(run: AmdgpuRun) -> tuple[int, int]:
    """Size and magic (first 4 bytes) of the runtime's ``/dev/shm/hsakmt_shared_mem``, or (0, 0)."""
    path = run.config.shm_dir / SHM_NAME
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(4)
    except OSError:
        return 0, 0
    return size, (struct.unpack("<I", head)[0] if len(head) == 4 else 0)


def _task_topology(topo: Topology, actual_to_user: dict[int, int], pid: int) -> Topology:
    for actual in actual_to_user:
        if topo.gpu(actual) is None:
            raise TopologyError(f"task {pid} uses GPU {actual:#06x}, which this machine's KFD topology does not show")
    sub = Topology([copy.deepcopy(n) for n in topo.nodes if not n.is_gpu or n.gpu_id in actual_to_user])
    sub.validate_links()
    return sub


def dump_kfd(ctx: Any, run: AmdgpuRun, fd: Any) -> FileClaim:
    file_id = _file_id(fd)
    own, own_fd = run.provider.own_device()
    try:
        kfd.check_version(own)
    finally:
        os.close(own_fd)
    topo = run.local_topology()
    dev = run.provider.task_device(fd)
    info = kfd.process_info(dev)
    record = DumpedKfd(file_id, fd.pid, dev, {})
    run.kfd_fds.append(record)  # from here on, fini or dump-late unpauses it
    cp = kfd.checkpoint(dev, info)
    try:
        record.actual_to_user = {d.actual_gpu_id: d.user_gpu_id for d in cp.devices}
        sub = _task_topology(topo, record.actual_to_user, fd.pid)
        shm_size, shm_magic = _shared_mem(run)
        msg = proto.criu_kfd(pid=info.pid, num_of_gpus=len(sub.gpus), num_of_cpus=len(sub.cpus),
                             num_of_bos=len(cp.bos), num_of_objects=info.num_objects, shared_mem_size=shm_size,
                             shared_mem_magic=shm_magic, priv_data=cp.priv_data)
        msg.device_entries.extend(topology_to_entries(sub, record.actual_to_user))
        record.bo_keys = {(b.addr, b.offset) for b in cp.bos}
        for b in cp.bos:
            msg.bo_entries.add(addr=b.addr, size=b.size, offset=b.offset, alloc_flags=b.alloc_flags, gpu_id=b.gpu_id,
                               handle=0xFFFFFFFF)
        write_message(ctx.images_dir, kfd_image_name(file_id), msg)
        if all(b.dmabuf_fd != abi.KFD_INVALID_FD for b in cp.bos if b.has_content):
            _dump_contents(ctx, run, record, cp.bos)
        else:
            # Without a dmabuf (an emulated device cannot install one in our fd table) a BO is read through the
            # task's own render node at its mmap offset, as the task maps it. The core holds a copy of that
            # descriptor (FdInfo.local_fd) but offers it to criu_file_dump after this one (fd order; the runtime
            # opens /dev/kfd first): the contents are read at dump-late, through the copy dump_render kept. The
            # queues stay evicted until then.
            record.pending = cp.bos
    except BaseException:
        _release_bos(cp.bos)
        raise
    if record.pending is None:
        _release_bos(cp.bos)
    ctx.log.info("amdgpu: task %d: %d GPU(s), %d BO(s), %d object(s) -> %s", fd.pid, len(cp.devices), len(cp.bos),
                 info.num_objects, kfd_image_name(file_id))
    record.entry = ext_file_entry(file_id)
    return FileClaim(plugin=PLUGIN, entry=record.entry, fd_type=FD_TYPE_EXT, data={"image": kfd_image_name(file_id)})


def _release_bos(bos: list[kfd.BoBucket]) -> None:
    """Close the dmabuf fds CHECKPOINT put in our fd table."""
    for b in bos:
        if b.dmabuf_fd != abi.KFD_INVALID_FD:
            os.close(b.dmabuf_fd)
            b.dmabuf_fd = abi.KFD_INVALID_FD


def _dump_contents(ctx: Any, run: AmdgpuRun, record: DumpedKfd, bos: list[kfd.BoBucket]) -> None:
    """One pages file per GPU of ``record``'s task; a BO without a dmabuf is read through a render node the task
    holds (the core's copy of its descriptor, kept by :func:`dump_render`)."""
    topo = run.local_topology()
    user_to_actual = {u: a for a, u in record.actual_to_user.items()}

    def device_file(b: kfd.BoBucket) -> tuple[int, int] | None:
        node = topo.gpu(user_to_actual.get(b.gpu_id, -1))
        if node is None:
            return None
        # the task's own descriptor of that node first; else one the core offered under another task (a
        # description shared with it is offered once, the first time it is met)
        recs = sorted((r for r in run.render_fds if r.minor == node.render_minor and r.local_fd >= 0),
                      key=lambda r: r.pid != record.pid)
        return (recs[0].local_fd, b.offset) if recs else None

    jobs = dump_contents(record.file_id, ctx.images_dir, bos, run.provider.engine(), ctx.executor, device_file,
                         user_to_actual)
    record.gpu_ids = [j.gpu_id for j in jobs]


def dump_render(ctx: Any, run: AmdgpuRun, fd: Any, minor: int) -> FileClaim:
    file_id = _file_id(fd)
    rec = DumpedRender(file_id, fd.pid, minor, entry=ext_file_entry(file_id), fd=fd.fd,
                       device=run.provider.render_device(fd), local_fd=fd.local_fd)
    run.render_fds.append(rec)
    return FileClaim(plugin=PLUGIN, entry=rec.entry, fd_type=FD_TYPE_EXT, data={"image": render_image_name(file_id)})


def _write_render(ctx: Any, run: AmdgpuRun, rec: DumpedRender) -> None:
    node = next((g for g in run.local_topology().gpus if g.render_minor == rec.minor), None)
    if node is None:
        raise TopologyError(f"render node renderD{rec.minor} of task {rec.pid} is not an AMD GPU of the KFD topology")
    a2u: dict[int, int] = {}
    for k in run.kfd_fds:
        if k.pid == rec.pid:
            a2u.update(k.actual_to_user)
    msg = proto.criu_render_node(gpu_id=a2u.get(node.gpu_id, node.gpu_id), id=rec.file_id,
                                 drm_render_minor=rec.minor, num_of_bos=0)
    write_message(ctx.images_dir, render_image_name(rec.file_id), msg)
    rec.written = True


class RenderBosNotSupported(UnsupportedResource):
    """A render node holds buffer objects of its own (GEM BOs): CRIU 4.2's amdgpu images cannot carry them."""


_NOT_CARRIED = ("CRIU 4.2's amdgpu images record only the render node, so their contents and mappings would be "
                "lost: dump refused")


def check_render_bos(run: AmdgpuRun, pid: int) -> None:
    """Refuse a render node of ``pid`` that holds GEM BOs (made, imported or userptr'd through it).

    Asked with AMDGPU_GEM_LIST_HANDLES where the kernel has it; otherwise (and also) any mapping of the render node
    that is no KFD BO of the task betrays one.
    """
    kfd_bos = set().union(*(k.bo_keys for k in run.kfd_fds if k.pid == pid))
    recs = [r for r in run.render_fds if r.pid == pid]
    for rec in recs:
        handles = drm.list_handles(rec.device) if rec.device is not None else None
        if handles:
            raise RenderBosNotSupported(
                f"task {pid} fd {rec.fd}", msg=f"amdgpu: task {pid} fd {rec.fd} (renderD{rec.minor}): {len(handles)} "
                f"GEM buffer object(s) made through the render node; {_NOT_CARRIED}")
    for vma, minor in run.render_vmas:
        if vma.pid == pid and (vma.start, vma.pgoff) not in kfd_bos:
            fds = [r.fd for r in recs if r.minor == minor]
            where = f"fd {fds[0]}" if fds else "no open fd"
            raise RenderBosNotSupported(
                f"task {pid} {where}", msg=f"amdgpu: task {pid} {where} (renderD{minor}): mapping {vma.start:#x}-{vma.end:#x} at offset "
                f"{vma.pgoff:#x} is no KFD buffer object (a GEM BO of the render node); {_NOT_CARRIED}")


def dump_late(ctx: Any, run: AmdgpuRun, pid: int) -> None:
    """After every descriptor of ``pid`` was dumped: refuse render-node GEM BOs, write the render images (user ids
    now known), UNPAUSE."""
    check_render_bos(run, pid)
    for k in run.kfd_fds:
        if k.pid == pid and k.pending is not None:
            bos, k.pending = k.pending, None
            try:
                _dump_contents(ctx, run, k, bos)
            finally:
                _release_bos(bos)
    for rec in run.render_fds:
        if rec.pid == pid and not rec.written:
            _write_render(ctx, run, rec)
    errors = unpause_all(ctx, run, pid)
    if errors:
        raise CriuError(f"amdgpu: cannot resume the GPU queues of task {pid}: {errors[0]}")


def unpause_all(ctx: Any, run: AmdgpuRun, pid: int | None = None) -> list[str]:
    """UNPAUSE every still-paused KFD process (of ``pid``, or all); returns the failures."""
    errors = []
    for rec in run.kfd_fds:
        if rec.pending is not None and (pid is None or rec.pid == pid):  # a failed dump: contents never read
            bos, rec.pending = rec.pending, None
            _release_bos(bos)
        if rec.paused and (pid is None or rec.pid == pid):
            try:
                kfd.unpause(rec.device)
            except CriuError as exc:
                errors.append(str(exc))
                ctx.log.error("amdgpu: %s", exc)
            rec.paused = False
            close = getattr(rec.device, "close", None)
            if close is not None:
                close()
    return errors
