"""Built-in memory restore: empty the seed, move the vdso, PR_SET_MM_MAP, map every VMA, write the pages.

Every step is an injected syscall in the seed (RemoteTask.syscall) or a process_vm_writev from the restorer,
in the order validated in reference/ptrace-dump-restore.md §3 (restore steps 4-9). The hook
:func:`map_vma` maps ordinary VMAs; a plugin claiming a device VMA runs before it.
"""

from __future__ import annotations

import errno
import mmap
import os
import struct
from pathlib import Path
from typing import Any

from criu_core.builtin.ghost_restore import opened_path
from criu_core.builtin.memfd_restore import memfd_object
from criu_core.errors import CriuError, UnsupportedResource
from criu_core.images.pagemap import PAGE_SIZE
from criu_core.images.vma import (
    VMA_ANON_PRIVATE,
    VMA_ANON_SHARED,
    VMA_AREA_MEMFD,
    VMA_AREA_REGULAR,
    VMA_AREA_VDSO,
    VMA_AREA_VVAR,
    VMA_FILE_PRIVATE,
    VMA_FILE_SHARED,
)
from criu_core.progress import Progress
from criu_core.ptrace.restore_scratch import SCRATCH_SIZE, SYSCALL_TRAMPOLINE, TASK_SIZE, Scratch, find_free_area
from criu_core.resources import MappedVma, VmaImage
from criu_core.restore_plan import (
    PLAN_KEY,
    PageRun,
    TaskState,
    is_special_vma,
    task_state,
)
from criu_core.stash import StashKey
from criu_core.sys.memory import IOV_MAX, buffer_address, process_vm_writev

__all__ = [
    "PLUGIN",
    "clean_seed",
    "close_map_fds",
    "fini",
    "finish_vmas",
    "map_vma",
    "move_vdso",
    "name_anon_vma",
    "open_in_task",
    "set_mm_map",
    "unmap_scratch",
    "write_pages",
    "write_runs",
]

PLUGIN = "builtin.mem_restore"

PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS = 0x1, 0x2, 0x10, 0x20
MAP_GROWSDOWN, MAP_LOCKED, MAP_NORESERVE = 0x100, 0x2000, 0x4000
MAP_FIXED_NOREPLACE = 0x100000
MREMAP_MAYMOVE, MREMAP_FIXED = 1, 2
PR_SET_MM, PR_SET_MM_MAP = 35, 14
PR_SET_VMA, PR_SET_VMA_ANON_NAME = 0x53564D41, 0
RSEQ_FLAG_UNREGISTER = 1
AT_FDCWD = -100
_SPECIAL_NAMES = ("[vvar]", "[vvar_vclock]", "[vdso]")
# Statuses the built-in handler does not map: SysV shm, packet rings, AIO rings, shadow stacks, guard regions,
# uprobes. A plugin may claim them first; otherwise the restore stops naming the VMA.
_UNHANDLED = (1 << 10) | (1 << 11) | (1 << 13) | (1 << 15) | (1 << 16) | (1 << 17)
_SHMEM: StashKey[dict[int, int]] = StashKey("restore.shmem")  # shmid -> the restorer's fd of the object
_NO_VMA_NAMES: StashKey[bool] = StashKey("restore.no_anon_vma_name")  # the kernel refused a name once


# ---------------------------------------------------------------------------------------------- the hook


def map_vma(ctx: Any, vma: VmaImage, remote: Any) -> MappedVma | None:
    """Map an anonymous private or file-backed VMA at its dumped address with an injected mmap."""
    e = vma.entry
    if is_special_vma(e):
        return MappedVma(PLUGIN, skip_content=True)  # the kernel's own: moved by move_vdso, or left alone
    if e.status & _UNHANDLED or not e.status & VMA_AREA_REGULAR:
        return None
    st = task_state(ctx, vma.pid)
    # Pages are written with process_vm_writev, which has no FOLL_FORCE: map writable now, mprotect later (P5).
    prot = e.prot | (PROT_WRITE if vma.index in st.pages_vmas else 0)
    extra = e.flags & (MAP_GROWSDOWN | MAP_NORESERVE)
    length = e.end - e.start
    if e.status & VMA_ANON_SHARED:
        fd = _shmem_fd(ctx, st, e.shmid)
        got = remote.syscall("mmap", e.start, length, prot, MAP_FIXED | MAP_SHARED | extra, fd, e.pgoff)
    elif e.status & (VMA_FILE_PRIVATE | VMA_FILE_SHARED):
        fd = _memfd_fd(ctx, st, e.shmid) if e.status & VMA_AREA_MEMFD else _map_fd(ctx, st, e)
        kind = MAP_SHARED if e.status & VMA_FILE_SHARED else MAP_PRIVATE
        if prot != e.prot and kind == MAP_PRIVATE and e.prot & PROT_EXEC:
            # Map code with its own protection first: the kernel installs active uprobes only into file mappings
            # that are not writable at mmap time (uprobe_mmap); then open it for the page writes (P5).
            got = remote.syscall("mmap", e.start, length, e.prot, MAP_FIXED | kind | extra, fd, e.pgoff)
            if got == e.start:
                remote.syscall("mprotect", e.start, length, prot)
        else:
            got = remote.syscall("mmap", e.start, length, prot, MAP_FIXED | kind | extra, fd, e.pgoff)
    elif e.status & VMA_ANON_PRIVATE:
        got = remote.syscall("mmap", e.start, length, prot, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | extra, -1, 0)
    else:
        return None
    if got != e.start:
        raise CriuError(f"mmap of VMA {e.start:#x} in task {vma.pid} landed at {got:#x}", pid=vma.pid)
    return MappedVma(PLUGIN)


def _map_fd(ctx: Any, st: TaskState, e: Any) -> int:
    """A descriptor in the task for files.img entry ``e.shmid``, opened with an injected openat once per file
    and access mode (one file may be mapped private read-only here and shared writable there)."""
    reg = st.files[e.shmid].reg
    if e.status & VMA_FILE_SHARED and e.prot & PROT_WRITE:
        flags = os.O_RDWR  # a writable shared mapping needs a writable description
    elif e.fdflags & os.O_ACCMODE == os.O_WRONLY:
        flags = os.O_RDWR  # mmap always needs read access
    else:
        flags = os.O_RDONLY
    fd = st.map_fds.get((e.shmid, flags))
    if fd is None:
        with opened_path(ctx, e.shmid, reg.name) as path:  # a deleted file: through its ghost, under its name
            fd = open_in_task(st, path, flags | os.O_LARGEFILE, f"mapped file (VMA {e.start:#x})")
        st.map_fds[(e.shmid, flags)] = fd
    return fd


def open_in_task(st: TaskState, path: str, flags: int, what: str) -> int:
    """An injected openat (O_CLOEXEC added); a failure names the file, the task and the errno."""
    st.scratch.reset()
    ret = st.remote.syscall("openat", AT_FDCWD, st.scratch.cstr(path), flags | os.O_CLOEXEC, 0, check=False)
    if ret < 0:
        name = errno.errorcode.get(-ret, str(-ret))
        raise CriuError(f"Can't open {what} {path} for task {st.plan.pid}: {name}: {os.strerror(-ret)}",
                        path=path, pid=st.plan.pid, errno=-ret)
    return ret


def _memfd_fd(ctx: Any, st: TaskState, file_id: int) -> int:
    """A task-side descriptor of the restored memfd behind files.img entry ``file_id`` (pulled in once)."""
    fd = st.map_fds.get(("memfd", file_id))
    if fd is None:
        obj = memfd_object(ctx, st.files[file_id].memfd.inode_id)
        fd = st.map_fds[("memfd", file_id)] = _pull_from_restorer(st, obj)
    return fd


def _pull_from_restorer(st: TaskState, local_fd: int) -> int:
    remote = st.remote
    pidfd = remote.syscall("pidfd_open", os.getpid(), 0)
    try:
        return remote.syscall("pidfd_getfd", pidfd, local_fd, 0)
    finally:
        remote.syscall("close", pidfd)


def close_map_fds(st: TaskState) -> None:
    """Close the task-side descriptors of mapped files and shared memory (O_CLOEXEC, not the task's own)."""
    for fd in [*st.map_fds.values(), *st.shm_fds.values()]:
        st.remote.syscall("close", fd)
    st.map_fds.clear()
    st.shm_fds.clear()


def _shmem_fd(ctx: Any, st: TaskState, shmid: int) -> int:
    """A task-side descriptor of shared anonymous object ``shmid``, created once per restore.

    The first task that maps the object creates it with an anonymous MAP_SHARED mmap of the whole object
    (so it stays "/dev/zero (deleted)" shmem, as the dump saw it), gets its content, and the restorer opens it
    through /proc/PID/map_files (root only); every VMA of any task then maps that one object at its own
    offset, so tasks of a tree share it as they did.
    """
    fd = st.shm_fds.get(shmid)
    if fd is not None:
        return fd
    objects = ctx.stash.setdefault(_SHMEM, {})
    remote = st.remote
    if shmid not in objects:
        shm = ctx.stash[PLAN_KEY].shmem[shmid]
        tmp = remote.syscall("mmap", 0, shm.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)
        try:
            write_runs(st.plan.pid, shm.pages_path, [PageRun(tmp + r.vaddr, r.nr, r.offset) for r in shm.pages])
            objects[shmid] = os.open(f"/proc/{st.plan.pid}/map_files/{tmp:x}-{tmp + shm.size:x}",
                                     os.O_RDWR | os.O_CLOEXEC)
        finally:
            remote.syscall("munmap", tmp, shm.size)
    fd = st.shm_fds[shmid] = _pull_from_restorer(st, objects[shmid])
    return fd


def fini(ctx: Any, stage: str, success: bool) -> None:
    """Drop the restorer's handles on shared memory objects (the tasks map them by now)."""
    if stage != "restore":
        return
    for fd in ctx.stash.get(_SHMEM, {}).values():
        os.close(fd)
    ctx.stash[_SHMEM] = {}


# ---------------------------------------------------------------------------------------------- the seed


def _busy(remote: Any) -> list[tuple[int, int]]:
    return [(m.start, m.end) for m in remote.procfs.maps(remote.pid)]


def clean_seed(st: TaskState, avoid: list[tuple[int, int]] | None = None) -> None:
    """Steps 4 of §3: unregister the inherited rseq (P3), close every fd, map the scratch, unmap the rest.

    The seed is a fork of the restorer: it carries the restorer's rseq registration, descriptors and whole
    address space. Only the scratch area and the kernel's vdso/vvar pages survive.
    """
    remote = st.remote
    cfg = remote.get_rseq_config()
    if cfg.rseq_abi_pointer:
        # Once the TLS holding the rseq area is unmapped, the kernel's rseq update on return to user faults.
        remote.syscall("rseq", cfg.rseq_abi_pointer, cfg.rseq_abi_size, RSEQ_FLAG_UNREGISTER, cfg.signature)
    remote.syscall("close_range", 0, 0xFFFFFFFF, 0)
    # the children inherit the scratch: it must miss their VMAs too (``avoid``)
    busy = _busy(remote) + [(v.entry.start, v.entry.end) for v in st.plan.vmas] + list(avoid or ())
    busy = [(s, e) for s, e in busy if s < TASK_SIZE]
    addr = find_free_area(SCRATCH_SIZE, busy)
    got = remote.syscall("mmap", addr, SCRATCH_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0)
    if got != addr:
        raise CriuError(f"scratch area for task {st.plan.pid} landed at {got:#x}, not {addr:#x}", pid=st.plan.pid)
    remote.write_mem(addr, SYSCALL_TRAMPOLINE)
    st.scratch = Scratch(remote, addr)
    # From here on syscalls run from the scratch's own `syscall` insn: the vdso is about to move.
    remote.syscall_ip = st.scratch.syscall_ip
    # `syscall; int3` run with PTRACE_CONT: one stop per injected syscall instead of two syscall-stops
    remote.trampoline = addr
    keep = sorted([(addr, addr + SCRATCH_SIZE)] + [(m.start, m.end) for m in remote.procfs.maps(remote.pid)
                                                   if m.name in _SPECIAL_NAMES])
    cursor = 0
    for start, end in keep + [(TASK_SIZE, TASK_SIZE)]:
        if start > cursor:
            remote.syscall("munmap", cursor, start - cursor)
        cursor = max(cursor, end)


def move_vdso(st: TaskState) -> None:
    """Step 6 of §3: move [vvar], [vvar_vclock] and [vdso] to the dumped addresses, keeping their layout.

    CRIU 4.2 records vvar and vvar_vclock as one VVAR VMA right below the vdso; the seed has the same kernel, so
    the three keep their relative offsets and only the base moves. They are parked in a free gap first, so a
    move never lands on another special mapping still in the way.
    """
    remote = st.remote
    img_vdso = [v.entry for v in st.plan.vmas if v.entry.status & VMA_AREA_VDSO]
    img_vvar = [v.entry for v in st.plan.vmas if v.entry.status & VMA_AREA_VVAR]
    seed = {m.name: (m.start, m.end) for m in remote.procfs.maps(remote.pid) if m.name in _SPECIAL_NAMES}
    if not img_vdso:
        # The task ran without a vdso: drop the seed's (nothing in the image can call it).
        for s, e in seed.values():
            remote.syscall("munmap", s, e - s)
        return
    if "[vdso]" not in seed:
        raise CriuError(f"the seed of task {st.plan.pid} has no [vdso] to move", pid=st.plan.pid)
    vdso = img_vdso[0]
    s_vdso = seed["[vdso]"]
    if vdso.end - vdso.start != s_vdso[1] - s_vdso[0]:
        raise UnsupportedResource("vdso", msg=f"the dumped vdso of task {st.plan.pid} is {vdso.end - vdso.start} "
                                  f"bytes, this kernel's is {s_vdso[1] - s_vdso[0]}: restore on the same kernel")
    delta = vdso.start - s_vdso[0]
    vvar_names = [n for n in ("[vvar]", "[vvar_vclock]") if n in seed]
    if img_vvar and vvar_names:
        lo = min(seed[n][0] for n in vvar_names)
        hi = max(seed[n][1] for n in vvar_names)
        if (img_vvar[0].start, img_vvar[0].end) != (lo + delta, hi + delta):
            raise UnsupportedResource("vvar", msg=f"the dumped vvar of task {st.plan.pid} "
                                      f"({img_vvar[0].start:#x}-{img_vvar[0].end:#x}) does not sit where this "
                                      "kernel puts it relative to the vdso")
    if delta == 0:
        return
    lo = min(s for s, _ in seed.values())
    hi = max(e for _, e in seed.values())
    busy = _busy(remote) + [(v.entry.start, v.entry.end) for v in st.plan.vmas if v.entry.start < TASK_SIZE]
    park = find_free_area(hi - lo, busy)
    for s, e in seed.values():
        remote.syscall("mremap", s, e - s, e - s, MREMAP_MAYMOVE | MREMAP_FIXED, park + (s - lo))
    for s, e in seed.values():
        remote.syscall("mremap", park + (s - lo), e - s, e - s, MREMAP_MAYMOVE | MREMAP_FIXED, s + delta)


def set_mm_map(st: TaskState, exe_path: str) -> None:
    """Step 7 of §3: one PR_SET_MM_MAP with the mm fields, auxv and exe_fd (P1), before any VMA exists (P2)."""
    remote, scratch = st.remote, st.scratch
    exe_fd = open_in_task(st, exe_path, os.O_RDONLY, "exe")
    try:
        scratch.reset()
        auxv = list(st.plan.mm.mm_saved_auxv)
        auxv_at = scratch.put(struct.pack(f"<{len(auxv)}Q", *auxv), 8) if auxv else 0
        f = st.plan.mm_map()
        # struct prctl_mm_map, linux/prctl.h (104 bytes)
        raw = struct.pack("<11QQII", f["start_code"], f["end_code"], f["start_data"], f["end_data"],
                          f["start_brk"], f["brk"], f["start_stack"], f["arg_start"], f["arg_end"],
                          f["env_start"], f["env_end"], auxv_at, 8 * len(auxv), exe_fd)
        at = scratch.put(raw, 8)
        remote.syscall("prctl", PR_SET_MM, PR_SET_MM_MAP, at, len(raw), 0)
    finally:
        remote.syscall("close", exe_fd, check=False)


# ---------------------------------------------------------------------------------------------- pages


def write_pages(st: TaskState) -> int:
    """Step 9 of §3: copy the task's pages from pages-N.img with process_vm_writev; returns bytes written."""
    return write_runs(st.plan.pid, st.plan.pages_path, list(st.plan.pages))


def write_runs(pid: int, pages_path: Path | None, runs: list[PageRun]) -> int:
    """Copy page runs of ``pages_path`` to their addresses in task ``pid``.

    The image is mapped copy-on-write (never written: write access only makes the buffer addressable from
    ctypes); runs whose file offsets follow each other go in one call with one local iovec and up to
    IOV_MAX remote ones.
    """
    if not runs or pages_path is None:
        return 0
    with open(pages_path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        buf = mmap.mmap(f.fileno(), size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    try:
        base = buffer_address(buf)
        total = 0
        with Progress(f"restoring pages of {pid}", sum(r.nr for r in runs) * PAGE_SIZE) as bar:
            for group in _contiguous_groups(runs):
                want = sum(r.nr for r in group) * PAGE_SIZE
                remote = [(r.vaddr, r.nr * PAGE_SIZE) for r in group]
                done = process_vm_writev(pid, [(base + group[0].offset, want)], remote)
                if done != want:
                    raise CriuError(f"wrote {done} of {want} bytes of pages into task {pid} at "
                                    f"{group[0].vaddr:#x}", pid=pid)
                total += done
                bar.advance(done)
        return total
    finally:
        buf.close()


def _contiguous_groups(runs: list[PageRun]) -> list[list[PageRun]]:
    groups: list[list[PageRun]] = []
    for r in runs:
        g = groups[-1] if groups else None
        if g and len(g) < IOV_MAX * 64 and g[-1].offset + g[-1].nr * PAGE_SIZE == r.offset:
            g.append(r)
        else:
            groups.append([r])
    return groups


def finish_vmas(ctx: Any, st: TaskState, host: Any) -> None:
    """After the pages: final protections, madvise bits, mlock; and the plugins' page hook per VMA."""
    remote = st.remote
    for vma in st.plan.vmas:
        e = vma.entry
        if is_special_vma(e):
            continue
        length = e.end - e.start
        if vma.index in st.pages_vmas and not e.prot & PROT_WRITE:
            remote.syscall("mprotect", e.start, length, e.prot)
        madv = e.madv
        bit = 0
        while madv:
            if madv & 1:
                # vma.madv bit n means madvise(n) was in effect (MADV_DONTDUMP=16, NOHUGEPAGE=15, ...; P10)
                remote.syscall("madvise", e.start, length, bit)
            madv >>= 1
            bit += 1
        if e.flags & MAP_LOCKED:
            remote.syscall("mlock", e.start, length)
        name = st.plan.vma_names.get(e.start)  # criu-core-PID.img
        if name is not None:
            name_anon_vma(ctx, st, e, name)
        host.vma_pages_restore(ctx, vma, remote)


def name_anon_vma(ctx: Any, st: TaskState, e: Any, anon_name: str) -> None:
    """Give VMA ``e`` its ``[anon:NAME]`` name ``anon_name`` again (from criu-core's own image, which CRIU 4.2
    does not have: it restores such VMAs unnamed): an injected prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, start,
    len, name).

    A kernel built without CONFIG_ANON_VMA_NAME answers EINVAL to every PR_SET_VMA (the name itself was
    checked when the images were read). The name is cosmetic (only /proc/PID/maps and smaps show it), so
    the restore warns once and goes on without names, as CRIU 4.2 restores such VMAs unnamed.
    """
    if ctx.stash.get(_NO_VMA_NAMES, False):
        return
    st.scratch.reset()
    name = st.scratch.cstr(anon_name)
    ret = st.remote.syscall("prctl", PR_SET_VMA, PR_SET_VMA_ANON_NAME, e.start, e.end - e.start, name, check=False)
    if ret == -errno.EINVAL and e.flags & MAP_SHARED:
        # naming shared anonymous memory came later (Linux 6.2) than private: only this VMA stays unnamed
        ctx.log.warning("this kernel cannot name shared anonymous VMAs (PR_SET_VMA_ANON_NAME: EINVAL): VMA %#x of "
                        "task %d stays unnamed (%r)", e.start, st.plan.pid, anon_name)
    elif ret == -errno.EINVAL:
        ctx.stash[_NO_VMA_NAMES] = True
        ctx.log.warning("this kernel cannot name anonymous VMAs (PR_SET_VMA_ANON_NAME: EINVAL, no "
                        "CONFIG_ANON_VMA_NAME): [anon:NAME] names are not restored, first %r of task %d",
                        anon_name, st.plan.pid)
    elif ret < 0:
        raise CriuError(f"cannot name VMA {e.start:#x}-{e.end:#x} of task {st.plan.pid} [anon:{anon_name}]: "
                        f"{errno.errorcode.get(-ret, -ret)}: {os.strerror(-ret)}", pid=st.plan.pid, errno=-ret)


def unmap_scratch(st: TaskState) -> None:
    """Step 14 of §3: drop the scratch with a syscall from the (moved) vdso, so no code runs from it after."""
    remote = st.remote
    remote.trampoline = None
    remote.syscall_ip = None
    remote.syscall_ip = remote.find_syscall_ip("[vdso]")
    remote.syscall("munmap", st.scratch.addr, st.scratch.size)
    st.scratch = None
