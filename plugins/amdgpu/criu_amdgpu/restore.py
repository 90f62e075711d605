"""Restore: match GPUs before anything exists, RESTORE inside each task, remap device VMAs, copy BOs, RESUME.

* ``restore-init``: read every ``amdgpu-kfd-*.img`` and ``amdgpu-renderD-*.img``, match each image's GPUs onto this
  machine's (a machine that cannot host them fails here, naming what is missing).
* First device VMA of a task (the core maps VMAs before descriptors): the task opens ``/dev/kfd`` and the render
  node of every local GPU, and issues RESTORE itself (the KFD process belongs to the opener). The dmabuf fds the
  kernel installed in the task are pulled into the restorer and closed in the task, and each GPU's BO copy job goes
  to that GPU's worker right away, so contents copy while the rest of the tree is restored.
* Device VMAs are mapped at the offsets RESTORE returned: VRAM/GTT BOs through the render node bound at RESTORE,
  doorbell/MMIO BOs and the events page through the KFD descriptor.
* The EXT file entries get copies of the task's own descriptors (the core installs them at their numbers); the
  plugin's temporary descriptors in the task are closed once the task's files are in place.
* ``resume-late``: join the copy workers (a failure fails the restore), then RESUME from our own ``/dev/kfd``.
"""

from __future__ import annotations

import os
import re
from typing import Any

from criu_core.errors import CriuError, ImageFormatError
from criu_core.resources import MappedVma, RestoredFd

from criu_amdgpu import abi, kfd, proto
from criu_amdgpu.bo_restore import BoRestorer, plan_jobs
from criu_amdgpu.dump import FD_TYPE_EXT, PLUGIN, SHM_NAME, VMA_EXT_PLUGIN
from criu_amdgpu.images import entries_to_topology, read_message
from criu_amdgpu.state import AmdgpuRun, RestoredTask
from criu_amdgpu.topology import MatchChecks, match_gpus

__all__ = ["close_task_fds", "map_vma", "plan", "restore_file", "restore_task", "resume"]

MAP_FIXED = 0x10
_KFD_IMG = re.compile(r"^amdgpu-kfd-(\d+)\.img$")
_RENDER_IMG = re.compile(r"^amdgpu-renderD-(\d+)\.img$")


def plan(ctx: Any, run: AmdgpuRun) -> None:
    """Read our images and map their GPUs onto this machine; nothing is touched yet."""
    names = sorted(os.listdir(ctx.images_dir))
    for name in names:
        if m := _KFD_IMG.match(name):
            run.kfd_images[int(m.group(1))] = read_message(ctx.images_dir, name, proto.criu_kfd)
        elif m := _RENDER_IMG.match(name):
            run.render_images[int(m.group(1))] = read_message(ctx.images_dir, name, proto.criu_render_node)
    if not run.kfd_images and not run.render_images:
        return
    local = run.local_topology()
    checks = MatchChecks.from_env(run.config.env)
    run.gpu_maps = {}
    for file_id, img in run.kfd_images.items():
        where = str(ctx.images_dir / f"amdgpu-kfd-{file_id}.img")
        if len(img.bo_entries) != img.num_of_bos:
            raise ImageFormatError(where, 0, f"num_of_bos {img.num_of_bos} but {len(img.bo_entries)} BO entries")
        src = entries_to_topology(img.device_entries, where)
        gpu_ids = {g.gpu_id for g in src.gpus}
        for bo in img.bo_entries:
            if bo.gpu_id not in gpu_ids:
                raise ImageFormatError(where, 0, f"BO {bo.addr:#x} names GPU {bo.gpu_id:04x}, absent from the image")
        run.gpu_maps[file_id] = match_gpus(src, local, checks)
        ctx.log.info("amdgpu: %s: GPUs %s", where, ", ".join(f"{s:04x}->{d:04x}"
                                                             for s, d in run.gpu_maps[file_id].gpus.items()))
    if run.kfd_images and run.bo is None:
        run.bo = BoRestorer(run.provider.engine(), ctx.executor, serial=run.config.serial_bo_restore)


def _kfd_file_of(run: AmdgpuRun, pid: int) -> int | None:
    ids = [fid for fid, img in run.kfd_images.items() if img.pid == pid]
    if len(ids) > 1:
        raise CriuError(f"amdgpu: task {pid} has {len(ids)} KFD images; one KFD process per task is restorable")
    return ids[0] if ids else None


def restore_task(ctx: Any, run: AmdgpuRun, pid: int, remote: Any) -> RestoredTask | None:
    """RESTORE the KFD process of ``pid`` from inside it (once); None if the task had no KFD descriptor."""
    done = run.restored.get(pid)
    if done is not None:
        return done
    file_id = _kfd_file_of(run, pid)
    if file_id is None:
        return None
    img = run.kfd_images[file_id]
    gmap = run.gpu_maps[file_id].gpus
    side = run.provider.task_side(pid, remote, lambda: ctx.alloc_task_fd(pid))
    kfd_fd = side.open(run.config.kfd_path, os.O_RDWR)
    rt = RestoredTask(pid, file_id, side, kfd_fd, gpu_map=dict(gmap))
    run.restored[pid] = rt
    dev = side.kfd_device(kfd_fd)
    kfd.check_version(dev)
    local = run.local_topology()
    for gpu in local.gpus:
        rt.render_fds[gpu.gpu_id] = side.open(run.config.render_path(gpu.render_minor), os.O_RDWR)
    devices = [kfd.DeviceBucket(user, actual, rt.render_fds[actual]) for user, actual in gmap.items()]
    bos = [kfd.BoBucket(e.addr, e.size, e.offset, e.alloc_flags, e.gpu_id) for e in img.bo_entries]
    out = kfd.restore(dev, devices, bos, img.priv_data, img.num_of_objects)
    # Our descriptors until a copy job owns them (run_job closes its BOs' fds): the dmabufs pulled from the task
    # and the per-BO dups of the render-node copies. One pidfd_getfd copy per render node, closed here.
    owned: set[int] = set()
    render_copies: dict[int, int] = {}
    in_task = {b.dmabuf_fd for b in out if b.dmabuf_fd != abi.KFD_INVALID_FD}  # dmabufs RESTORE put in the task
    try:
        for b in out:
            task_fd, b.dmabuf_fd = b.dmabuf_fd, abi.KFD_INVALID_FD
            if task_fd == abi.KFD_INVALID_FD:
                continue
            if b.has_content:
                b.dmabuf_fd = side.getfd(task_fd)
                owned.add(b.dmabuf_fd)
            in_task.discard(task_fd)
            side.close(task_fd)

        def device_file(b: kfd.BoBucket) -> tuple[int, int] | None:
            # No dmabuf (an emulated device cannot install one): write through the render node RESTORE bound, at
            # the BO's new offset (our copy of the task's descriptor: the same DRM file, so the same mapping
            # rights). Each BO's job closes its fd, so each gets a dup of the one copy of its GPU's node.
            task_fd = rt.render_fds.get(gmap.get(b.gpu_id, -1))
            if task_fd is None:
                return None
            if task_fd not in render_copies:
                render_copies[task_fd] = side.getfd(task_fd)
            fd = os.dup(render_copies[task_fd])
            owned.add(fd)
            return fd, b.restored_offset

        jobs = plan_jobs(file_id, ctx.images_dir, out, gmap, device_file)
        for job in jobs:
            owned.difference_update(bo.fd for bo in job.bos)  # the job closes them, whether it runs or fails
            run.bo.submit(job)  # type: ignore[union-attr]  # plan() made it
    except BaseException:
        for fd in owned:
            os.close(fd)
        for task_fd in in_task:  # not pulled yet: the task is killed anyway, but let the BOs' memory go now
            try:
                side.close(task_fd)
            except Exception as exc:  # noqa: BLE001 - the restore already failed; its error is the one to report
                ctx.log.debug("amdgpu: task %d: close(%d) after the failure: %s", pid, task_fd, exc)
        raise
    finally:
        for fd in render_copies.values():
            os.close(fd)
    for b in out:
        b.dmabuf_fd = abi.KFD_INVALID_FD  # owned by the jobs now
    rt.bos = out
    _recreate_shm(run, img)
    ctx.log.info("amdgpu: task %d: RESTORE done, %d BO(s), %d copy job(s) queued", pid, len(out), len(jobs))
    return rt


def _recreate_shm(run: AmdgpuRun, img: Any) -> None:
    """The ROCm runtime's shared page: recreated with its size and magic if it is gone (as CRIU's plugin)."""
    if not img.shared_mem_size:
        return
    path = run.config.shm_dir / SHM_NAME
    if path.exists():
        return
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o666)
    try:
        os.ftruncate(fd, img.shared_mem_size)
        os.pwrite(fd, img.shared_mem_magic.to_bytes(4, "little"), 0)
    finally:
        os.close(fd)


def map_vma(ctx: Any, run: AmdgpuRun, vma: Any, remote: Any) -> MappedVma | None:
    """UPDATE_VMA_MAP: map a device VMA of a restored task at the BO's new offset."""
    e = vma.entry
    if not e.status & VMA_EXT_PLUGIN:
        return None
    rt = restore_task(ctx, run, vma.pid, remote)
    if rt is None:
        return None
    offset, fd = None, None
    for b in rt.bos:
        if b.addr == e.start and b.offset == e.pgoff:
            offset = b.restored_offset
            if b.alloc_flags & (abi.AllocFlag.DOORBELL | abi.AllocFlag.MMIO_REMAP):
                fd = rt.kfd_fd
            else:
                fd = rt.render_fds.get(rt.gpu_map.get(b.gpu_id, -1))
            break
    else:
        if e.pgoff & abi.KFD_MMAP_TYPE_MASK == abi.KFD_MMAP_TYPE_EVENTS:
            offset, fd = e.pgoff, rt.kfd_fd  # the events page: no gpu_id, offset unchanged
    if fd is None or offset is None:
        return None
    rt.side.mmap(e.start, e.end - e.start, e.prot, e.flags | MAP_FIXED, fd, offset)
    return MappedVma(PLUGIN, skip_content=True)


def restore_file(ctx: Any, run: AmdgpuRun, file: Any, remote: Any) -> RestoredFd | None:
    """RESTORE_EXT_FILE: a copy of the task's own KFD or render descriptor for the core to install."""
    entry = file.entry
    if entry.type != FD_TYPE_EXT and getattr(entry, "type", None) != "EXT":
        return None
    file_id = entry.id
    if file_id in run.kfd_images:
        rt = restore_task(ctx, run, file.pid, remote)
        if rt is None or rt.pid != file.pid:
            raise CriuError(f"amdgpu: KFD image {file_id} belongs to task {run.kfd_images[file_id].pid}, "
                            f"not to task {file.pid}")
        return RestoredFd(PLUGIN, rt.side.getfd(rt.kfd_fd))
    if file_id in run.render_images:
        node = run.render_images[file_id]
        rt = run.restored.get(file.pid)
        gmap = rt.gpu_map if rt else next(iter(run.gpu_maps.values())).gpus if run.gpu_maps else {}
        local = gmap.get(node.gpu_id, node.gpu_id)
        if rt is not None and local in rt.render_fds:
            return RestoredFd(PLUGIN, rt.side.getfd(rt.render_fds[local]))
        gpu = run.local_topology().gpu(local)
        if gpu is None:
            raise CriuError(f"amdgpu: render node image {file_id} names GPU {node.gpu_id:04x}, not on this machine")
        return RestoredFd(PLUGIN, os.open(run.config.render_path(gpu.render_minor), os.O_RDWR | os.O_CLOEXEC))
    return None


def close_task_fds(run: AmdgpuRun, pid: int) -> None:
    """The task's descriptors are installed: close the plugin's temporary ones in it (mappings keep theirs)."""
    rt = run.restored.get(pid)
    if rt is None or rt.closed:
        return
    for fd in [rt.kfd_fd, *rt.render_fds.values()]:
        rt.side.close(fd)
    rt.closed = True


def resume(ctx: Any, run: AmdgpuRun, pid: int) -> None:
    """Join every BO copy (raising on failure), then RESUME ``pid``'s KFD process."""
    if run.bo is not None:
        run.bo.join()
    if pid not in run.restored:
        return
    own, own_fd = run.provider.own_device()
    try:
        kfd.resume(own, pid)
    finally:
        os.close(own_fd)
    ctx.log.info("amdgpu: task %d resumed", pid)
