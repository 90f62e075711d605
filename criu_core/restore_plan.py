"""Read and validate the images of a dump into a restore plan, before anything is created.

Everything here is pure: it reads image files and checks them against each other (VMAs against pagemaps,
pagemaps against the size of pages-N.img, descriptors against files.img, the exe and cwd against their file
entries). Images are untrusted input (DESIGN.md "Bad input"): every inconsistency raises
:class:`~criu_core.errors.ImageFormatError` naming the file, so a restore that would fail half-way fails here
instead, with nothing to clean up.
"""

from __future__ import annotations

import os
import signal
import stat
from bisect import bisect_right
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from criu_core.errors import ImageFormatError, UnsupportedResource
from criu_core.images.criu_core_task import EXIT_SIGNAL_MAX
from criu_core.images.framing import read_image
from criu_core.images.pagemap import PAGE_SIZE, PE_PRESENT, nr_pages
from criu_core.images.pagemap import flags as pe_flags
from criu_core.images.vma import (
    VMA_ANON_PRIVATE,
    VMA_ANON_SHARED,
    VMA_AREA_MEMFD,
    VMA_AREA_SYSVIPC,
    VMA_AREA_VDSO,
    VMA_AREA_VSYSCALL,
    VMA_AREA_VVAR,
    VMA_FILE_PRIVATE,
    VMA_FILE_SHARED,
    anon_name_problem,
    cow_key,
)
from criu_core.records import dataclass, field
from criu_core.resources import VmaImage
from criu_core.stash import StashKey

__all__ = [
    "FD_TYPE_REG",
    "NR_SIGNALS",
    "PID_MAX",
    "FdPlan",
    "PageRun",
    "RestorePlan",
    "TaskPlan",
    "is_special_vma",
    "load_plan",
]

PID_MAX = 4194304  # PID_MAX_LIMIT on 64-bit (linux/threads.h); this machine's pid_max is lower
NR_SIGNALS = 64
MAX_FD = 1 << 20  # the default fs.nr_open; a larger fd number in an image is corrupt, not a real table

FD_TYPE_REG = 1  # fdinfo.proto fd_types
TASK_DEAD = 2  # task_core_entry.task_state of a zombie (compel/include/uapi/task-state.h)
_MARCH_X86_64 = 1


def is_special_vma(entry: Any) -> bool:
    """vdso, vvar (vvar_vclock included) and vsyscall: the kernel's own mappings, moved or skipped, never mapped."""
    return bool(entry.status & (VMA_AREA_VDSO | VMA_AREA_VVAR | VMA_AREA_VSYSCALL))


@dataclass(frozen=True)
class PageRun:
    """``nr`` pages for address ``vaddr`` of the task, stored at byte ``offset`` of pages-N.img."""

    vaddr: int
    nr: int
    offset: int

    @property
    def end(self) -> int:
        return self.vaddr + self.nr * PAGE_SIZE


@dataclass(frozen=True)
class FdPlan:
    """One descriptor of a task: number ``fd`` refers to ``files.img`` entry ``file_id``."""

    fd: int
    file_id: int
    type: int
    cloexec: bool


@dataclass
class TaskPlan:
    """Everything needed to rebuild one process, read and cross-checked."""

    pid: int
    ppid: int
    pgid: int
    sid: int
    tids: tuple[int, ...]
    core: Any  # the leader's core_entry
    thread_cores: dict[int, Any]  # tid -> core_entry, leader included
    ids: Any
    mm: Any
    vmas: tuple[VmaImage, ...]
    pages: tuple[PageRun, ...]  # sorted, split at VMA boundaries, special VMAs left out
    pages_path: Path | None
    fs: Any
    fds: tuple[FdPlan, ...]
    # From criu-core's own image criu-core-PID.img (absent for most tasks):
    # (vaddr, nr) of pages left to the parent task at dump (--dedup-cow-pages): the child keeps them as it
    # inherits them from its restored parent (cow_restore)
    parent_pages: tuple[tuple[int, int], ...] = ()
    exit_signal: int = int(signal.SIGCHLD)  # the signal its parent gets when it ends (clone's exit_signal)
    vma_names: dict[int, str] = field(default_factory=dict)  # VMA start -> its [anon:NAME] name

    @property
    def dead(self) -> bool:
        """A zombie (TASK_DEAD): only its pstree entry and core (comm, exit_code) are in the images."""
        return self.core.tc.task_state == TASK_DEAD

    @property
    def files_id(self) -> int:
        return self.ids.files_id

    @property
    def nr_pages(self) -> int:
        return sum(r.nr for r in self.pages)

    def mm_map(self) -> dict[str, int]:
        """The fields of ``struct prctl_mm_map`` (linux/prctl.h), without auxv and exe_fd."""
        mm = self.mm
        return {
            "start_code": mm.mm_start_code, "end_code": mm.mm_end_code,
            "start_data": mm.mm_start_data, "end_data": mm.mm_end_data,
            "start_brk": mm.mm_start_brk, "brk": mm.mm_brk, "start_stack": mm.mm_start_stack,
            "arg_start": mm.mm_arg_start, "arg_end": mm.mm_arg_end,
            "env_start": mm.mm_env_start, "env_end": mm.mm_env_end,
        }


@dataclass(frozen=True)
class ShmemPlan:
    """A shared anonymous memory object (VMA_ANON_SHARED, one ``shmid``): its size (the furthest byte any
    VMA maps) and its pages, whose ``vaddr`` is the offset inside the object (pagemap-shmem-SHMID.img)."""

    shmid: int
    size: int
    pages: tuple[PageRun, ...]
    pages_path: Path | None


@dataclass
class RestorePlan:
    """The whole tree: tasks parents first (pstree order), the shared ``files.img`` entries by id, and the
    shared anonymous memory objects by shmid."""

    images_dir: Path
    inventory: Any
    tasks: list[TaskPlan]
    files: dict[int, Any]
    seccomp: Any = None
    timens: Any = None  # timens-0.img: the host's monotonic/boottime clocks at dump time
    shmem: dict[int, ShmemPlan] = field(default_factory=dict)
    memfd: dict[int, Any] = field(default_factory=dict)  # memfd.img: inode_id -> memfd_inode_entry
    remaps: dict[int, Any] = field(default_factory=dict)  # remap-fpath.img: orig file id -> its remap entry

    @property
    def root(self) -> TaskPlan:
        return self.tasks[0]

    def file(self, file_id: int) -> Any:
        return self.files[file_id]


# --------------------------------------------------------------------------------------------------------
# reading


def _read(d: Path, name: str, *, required: bool = True) -> Any:
    path = d / name
    if not path.exists():
        if required:
            raise ImageFormatError(str(path), 0, "missing image")
        return None
    return read_image(path)


def _one(img: Any, path: str) -> Any:
    if len(img.entries) != 1:
        raise ImageFormatError(path, 0, f"expected exactly one entry, found {len(img.entries)}")
    return img.entries[0].msg


def _check_inventory(inv: Any, path: str) -> None:
    if inv.img_version not in (1, 2):
        raise ImageFormatError(path, 0, f"Not supported images version {inv.img_version}")
    if not inv.fdinfo_per_id:
        raise ImageFormatError(path, 0, "Too old image: fdinfo_per_id is not set")


def _check_vmas(vmas: list[Any], path: str, files: dict[int, Any]) -> None:
    prev_end = 0
    for i, v in enumerate(vmas):
        if v.start % PAGE_SIZE or v.end % PAGE_SIZE or v.start >= v.end:
            raise ImageFormatError(path, 0, f"VMA {i} {v.start:#x}-{v.end:#x} is empty or not page aligned")
        if v.start < prev_end:
            raise ImageFormatError(path, 0, f"VMA {i} {v.start:#x}-{v.end:#x} overlaps or is out of order")
        if v.pgoff % PAGE_SIZE:
            raise ImageFormatError(path, 0, f"VMA {i} {v.start:#x}: pgoff {v.pgoff:#x} is not page aligned")
        if v.prot & ~7:
            raise ImageFormatError(path, 0, f"VMA {i} {v.start:#x}: bad prot {v.prot:#x}")
        if v.status & VMA_ANON_SHARED and not v.flags & 1:  # MAP_SHARED
            raise ImageFormatError(path, 0, f"VMA {i} {v.start:#x}: shared anonymous but not MAP_SHARED")
        if v.status & (VMA_FILE_PRIVATE | VMA_FILE_SHARED):
            f = files.get(v.shmid)
            kind = "memfd" if v.status & VMA_AREA_MEMFD else "reg"
            if f is None or not f.HasField(kind):
                raise ImageFormatError(path, 0, f"VMA {v.start:#x}: no {kind} file entry with id {v.shmid}")
        prev_end = v.end


def _page_runs(entries: list[Any], vmas: list[Any], path: str, pages_size: int) -> tuple[PageRun, ...]:
    """Pagemap entries as runs inside one VMA each; pages of special VMAs (the vdso) are skipped.

    A pagemap entry may span adjacent VMAs (CRIU merges contiguous runs), so each is cut at VMA boundaries;
    every page must lie inside some VMA, and the present pages must fit in pages-N.img.
    """
    runs: list[PageRun] = []
    offset = 0
    prev_end = 0
    vi = 0
    for e in entries:
        n = nr_pages(e)
        fl = pe_flags(e)
        if e.vaddr % PAGE_SIZE or n <= 0 or n > (1 << 52) // PAGE_SIZE:
            raise ImageFormatError(path, 0, f"pagemap entry {e.vaddr:#x} x {n} pages is malformed")
        if e.vaddr < prev_end:
            raise ImageFormatError(path, 0, f"pagemap entry {e.vaddr:#x} overlaps or is out of order")
        end = e.vaddr + n * PAGE_SIZE
        prev_end = end
        if not fl & PE_PRESENT:
            raise UnsupportedResource(f"pagemap entry {e.vaddr:#x} with flags {fl:#x}",
                                      msg=f"{path}: pages at {e.vaddr:#x} are not in this image (flags {fl:#x}): "
                                          "parent images and lazy pages are not supported")
        addr = e.vaddr
        while addr < end:
            while vi < len(vmas) and vmas[vi].end <= addr:
                vi += 1
            if vi == len(vmas) or vmas[vi].start > addr:
                raise ImageFormatError(path, 0, f"pages at {addr:#x} lie outside every VMA")
            cut = min(end, vmas[vi].end)
            cnt = (cut - addr) // PAGE_SIZE
            if not is_special_vma(vmas[vi]):
                runs.append(PageRun(addr, cnt, offset))
            offset += cnt * PAGE_SIZE
            addr = cut
    if offset > pages_size:
        raise ImageFormatError(path, 0, f"pagemap needs {offset} bytes of pages, the pages image has {pages_size}")
    return tuple(runs)


def _load_own_image(d: Path, pid: int, vmas: list[Any],
                    runs: tuple[PageRun, ...]) -> tuple[int, dict[int, str], tuple[tuple[int, int], ...]]:
    """criu-core-PID.img, criu-core's own image (most tasks have none): (exit signal, VMA names by start, pages
    left to the parent), each checked against the task's VMAs and pagemap: a name belongs to the start of an
    anonymous VMA and is one the kernel takes; a range left to the parent is page aligned, lies inside one
    private anonymous VMA and is not also in the pagemap; the exit signal is 0 (none) to 64."""
    path = d / f"criu-core-{pid}.img"
    img = _read(d, path.name, required=False)
    if img is None:
        return int(signal.SIGCHLD), {}, ()
    p = str(path)
    e = _one(img, p)
    off = img.entries[0].offset
    exit_signal = int(signal.SIGCHLD)
    if e.HasField("exit_signal"):
        if e.exit_signal > EXIT_SIGNAL_MAX:
            raise ImageFormatError(p, off, f"exit signal {e.exit_signal} is not a signal (0 to {EXIT_SIGNAL_MAX})")
        exit_signal = e.exit_signal
    starts = [v.start for v in vmas]

    def vma_at(addr: int) -> Any:
        i = bisect_right(starts, addr) - 1
        return vmas[i] if i >= 0 and addr < vmas[i].end else None

    names: dict[int, str] = {}
    for n in e.vma_names:
        v = vma_at(n.start)
        if v is None or v.start != n.start:
            raise ImageFormatError(p, off, f"name {n.name!r} for {n.start:#x}: no VMA of mm-{pid}.img starts there")
        if n.start in names:
            raise ImageFormatError(p, off, f"VMA {n.start:#x} is named twice")
        if (not v.status & (VMA_ANON_PRIVATE | VMA_ANON_SHARED) or is_special_vma(v)
                or v.status & (VMA_AREA_SYSVIPC | VMA_AREA_MEMFD)):
            raise ImageFormatError(p, off, f"VMA {n.start:#x} named {n.name!r} is not anonymous memory")
        if why := anon_name_problem(n.name):
            raise ImageFormatError(p, off, f"VMA {n.start:#x}: name {n.name!r} {why}")
        names[n.start] = n.name
    run_starts = [r.vaddr for r in runs]
    parent: list[tuple[int, int]] = []
    prev_end = 0
    for r in e.parent_pages:
        n = r.nr_pages
        if r.vaddr % PAGE_SIZE or n <= 0 or n > (1 << 52) // PAGE_SIZE:
            raise ImageFormatError(p, off, f"pages left to the parent {r.vaddr:#x} x {n} are malformed")
        end = r.vaddr + n * PAGE_SIZE
        if r.vaddr < prev_end:
            raise ImageFormatError(p, off, f"pages left to the parent at {r.vaddr:#x} overlap or are out of order")
        prev_end = end
        v = vma_at(r.vaddr)
        if v is None or end > v.end or cow_key(v) is None:
            raise ImageFormatError(p, off, f"pages at {r.vaddr:#x} x {n} left to the parent task are not inside "
                                   "one private anonymous VMA")
        i = bisect_right(run_starts, r.vaddr) - 1
        if (i >= 0 and runs[i].end > r.vaddr) or (i + 1 < len(runs) and runs[i + 1].vaddr < end):
            raise ImageFormatError(p, off, f"pages at {r.vaddr:#x} x {n} left to the parent task are also in "
                                   f"pagemap-{pid}.img")
        parent.append((r.vaddr, n))
    return exit_signal, names, tuple(parent)


def _check_core(core: Any, path: str, leader: bool) -> None:
    if core.mtype != _MARCH_X86_64:
        raise UnsupportedResource(f"architecture {core.mtype}", msg=f"{path}: not an x86_64 task (mtype {core.mtype})")
    if leader and core.HasField("tc") and core.tc.task_state == TASK_DEAD:
        if core.tc.exit_code > 0xFFFF:
            raise ImageFormatError(path, 0, f"zombie exit code {core.tc.exit_code:#x} is not a wait status")
        return  # a zombie's core has no thread_info (CRIU: core_entry_alloc(0, 1))
    if not core.HasField("thread_info"):
        raise ImageFormatError(path, 0, "core has no thread_info")
    if leader and not core.HasField("tc"):
        raise ImageFormatError(path, 0, "leader core has no task_core")
    if not leader and (core.HasField("tc") or core.HasField("ids")):
        raise ImageFormatError(path, 0, "Thread has optional fields present")
    if leader:
        n = len(core.tc.sigactions)
        if n not in (0, NR_SIGNALS - 2):
            raise ImageFormatError(path, 0, f"Bad number of sigactions: {n}")
        for rl in core.tc.rlimits.rlimits:
            if rl.cur > rl.max:
                raise ImageFormatError(path, 0, f"rlimit with cur {rl.cur} above max {rl.max}")


def _fds(entries: list[Any], path: str, files: dict[int, Any]) -> tuple[FdPlan, ...]:
    seen: set[int] = set()
    out = []
    for e in entries:
        if not 0 <= e.fd < MAX_FD or e.fd in seen:
            raise ImageFormatError(path, 0, f"bad or duplicate fd {e.fd}")
        if e.id not in files:
            raise ImageFormatError(path, 0, f"fd {e.fd}: no file entry with id {e.id}")
        seen.add(e.fd)
        out.append(FdPlan(e.fd, e.id, e.type, bool(e.flags & 1)))  # FD_CLOEXEC
    return tuple(sorted(out, key=lambda p: p.fd))


def _load_task(d: Path, ps: Any, files: dict[int, Any]) -> TaskPlan:
    pid = ps.pid
    tids = tuple(ps.threads) or (pid,)
    if tids[0] != pid or len(set(tids)) != len(tids) or any(not 0 < t < PID_MAX for t in tids):
        raise ImageFormatError(str(d / "pstree.img"), 0, f"task {pid}: bad thread list {list(tids)}")
    cores = {}
    for tid in tids:
        cpath = d / f"core-{tid}.img"
        core = _one(_read(d, cpath.name), str(cpath))
        _check_core(core, str(cpath), tid == pid)
        cores[tid] = core
    if cores[pid].HasField("tc") and cores[pid].tc.task_state == TASK_DEAD:
        if len(tids) != 1:
            raise ImageFormatError(str(d / "pstree.img"), 0, f"zombie {pid} with threads {list(tids)}")
        return TaskPlan(pid=pid, ppid=ps.ppid, pgid=ps.pgid, sid=ps.sid, tids=tids, core=cores[pid],
                        thread_cores=cores, ids=None, mm=None, vmas=(), pages=(), pages_path=None, fs=None, fds=())
    ids = _one(_read(d, f"ids-{pid}.img"), str(d / f"ids-{pid}.img"))
    mpath = str(d / f"mm-{pid}.img")
    mm = _one(_read(d, f"mm-{pid}.img"), mpath)
    vmas = list(mm.vmas)
    _check_vmas(vmas, mpath, files)
    exe = files.get(mm.exe_file_id)
    if exe is None or not exe.HasField("reg"):
        raise ImageFormatError(mpath, 0, f"No entry for reg-file-ID {mm.exe_file_id:#x} (the exe)")
    if len(mm.mm_saved_auxv) % 2 or len(mm.mm_saved_auxv) > 2 * 64:
        raise ImageFormatError(mpath, 0, f"saved auxv has {len(mm.mm_saved_auxv)} words")

    pm_path = d / f"pagemap-{pid}.img"
    pm = _read(d, pm_path.name)
    if not pm.entries:
        raise ImageFormatError(str(pm_path), 0, "pagemap has no head")
    head = pm.entries[0].msg
    pages_path = d / f"pages-{head.pages_id}.img"
    pages_size = pages_path.stat().st_size if pages_path.exists() else 0
    runs = _page_runs([e.msg for e in pm.entries[1:]], vmas, str(pm_path), pages_size)
    if runs and not pages_path.exists():
        raise ImageFormatError(str(pages_path), 0, "missing image")
    exit_signal, vma_names, parent_pages = _load_own_image(d, pid, vmas, runs)

    fs_path = str(d / f"fs-{pid}.img")
    fs = _one(_read(d, f"fs-{pid}.img"), fs_path)
    for what, fid in (("cwd", fs.cwd_id), ("root", fs.root_id)):
        f = files.get(fid)
        if f is None or not f.HasField("reg") or not stat.S_ISDIR(f.reg.mode or stat.S_IFDIR):
            raise ImageFormatError(fs_path, 0, f"{what} id {fid} is not a directory entry of files.img")
    fd_path = d / f"fdinfo-{ids.files_id}.img"
    fdimg = _read(d, fd_path.name)
    fds = _fds([e.msg for e in fdimg.entries], str(fd_path), files)
    return TaskPlan(pid=pid, ppid=ps.ppid, pgid=ps.pgid, sid=ps.sid, tids=tids, core=cores[pid],
                    thread_cores=cores, ids=ids, mm=mm,
                    vmas=tuple(VmaImage(pid, i, v) for i, v in enumerate(vmas)),
                    pages=runs, pages_path=pages_path if runs else None, fs=fs, fds=fds,
                    parent_pages=parent_pages, exit_signal=exit_signal, vma_names=vma_names)


def _load_memfd(d: Path, files: dict[int, Any]) -> dict[int, Any]:
    """memfd.img by inode_id; every MEMFD file entry must name one of them."""
    path = d / "memfd.img"
    inodes: dict[int, Any] = {}
    img = _read(d, "memfd.img", required=False)
    for ent in img.entries if img is not None else ():
        m = ent.msg
        if m.inode_id in inodes:
            raise ImageFormatError(str(path), ent.offset, f"duplicate memfd inode {m.inode_id}")
        if m.size >= 1 << 48 or "/" in m.name or "\0" in m.name:
            raise ImageFormatError(str(path), ent.offset, f"memfd inode {m.inode_id}: bad name or size")
        inodes[m.inode_id] = m
    for f in files.values():
        if f.HasField("memfd") and f.memfd.inode_id not in inodes:
            raise ImageFormatError(str(path), 0, f"file id {f.id}: no memfd inode {f.memfd.inode_id}")
    return inodes


def _load_shmem(d: Path, tasks: list[TaskPlan], memfd: dict[int, Any]) -> dict[int, ShmemPlan]:
    """Every shared memory object: shared anonymous ones the VMAs name (sized by the furthest byte mapped)
    and memfd inodes (sized as dumped), each with its pages from pagemap-shmem-SHMID.img."""
    sizes: dict[int, int] = {m.shmid: m.size for m in memfd.values()}
    for t in tasks:
        for v in t.vmas:
            e = v.entry
            if e.status & VMA_ANON_SHARED and not e.status & (VMA_AREA_SYSVIPC | VMA_AREA_MEMFD):
                sizes[e.shmid] = max(sizes.get(e.shmid, 0), e.pgoff + e.end - e.start)
    out = {}
    for shmid, size in sizes.items():
        path = d / f"pagemap-shmem-{shmid}.img"
        runs: tuple[PageRun, ...] = ()
        pages_path = None
        if path.exists():
            img = read_image(path)
            if img.entries:
                pages_path = d / f"pages-{img.entries[0].msg.pages_id}.img"
                psize = pages_path.stat().st_size if pages_path.exists() else 0
                whole = SimpleNamespace(start=0, end=size, status=0)  # offsets inside the object
                runs = _page_runs([e.msg for e in img.entries[1:]], [whole], str(path), psize)
        out[shmid] = ShmemPlan(shmid, size, runs, pages_path if runs else None)
    return out


def load_plan(images_dir: str | os.PathLike[str]) -> RestorePlan:
    """Read inventory, pstree and every task's images; raise on the first inconsistency."""
    d = Path(images_dir)
    inv_path = d / "inventory.img"
    inv = _one(_read(d, "inventory.img"), str(inv_path))
    _check_inventory(inv, str(inv_path))
    pstree = _read(d, "pstree.img")
    entries = [e.msg for e in pstree.entries]
    if not entries:
        raise ImageFormatError(str(d / "pstree.img"), 0, "no tasks")
    if entries[0].ppid != 0:
        raise ImageFormatError(str(d / "pstree.img"), 0, f"root task {entries[0].pid} has ppid {entries[0].ppid}")
    seen: set[int] = set()
    for e in entries:
        if not 0 < e.pid < PID_MAX or e.pid in seen:
            raise ImageFormatError(str(d / "pstree.img"), 0, f"bad or duplicate pid {e.pid}")
        if e is not entries[0] and e.ppid not in seen:
            raise ImageFormatError(str(d / "pstree.img"), 0, f"task {e.pid}: parent {e.ppid} is not listed before it")
        seen.add(e.pid)
    files_img = _read(d, "files.img")
    files: dict[int, Any] = {}
    for ent in files_img.entries:
        fe = ent.msg
        if fe.id in files:
            raise ImageFormatError(str(d / "files.img"), ent.offset, f"duplicate file id {fe.id}")
        files[fe.id] = fe
    tasks = [_load_task(d, e, files) for e in entries]
    if tasks[0].parent_pages:
        raise ImageFormatError(str(d / f"criu-core-{tasks[0].pid}.img"), 0, "the root task has pages left to a "
                               "parent task, which is not in the images")
    dead = {t.pid for t in tasks if t.dead}
    for t in tasks:
        if t.ppid in dead:
            raise ImageFormatError(str(d / "pstree.img"), 0, f"task {t.pid}: its parent {t.ppid} is a zombie")
    memfd = _load_memfd(d, files)
    remaps = {}
    rimg = _read(d, "remap-fpath.img", required=False)
    for ent in rimg.entries if rimg is not None else ():
        f = files.get(ent.msg.orig_id)
        if f is None or not f.HasField("reg") or ent.msg.orig_id in remaps:
            raise ImageFormatError(str(d / "remap-fpath.img"), ent.offset,
                                   f"remap of file id {ent.msg.orig_id}: no such regular file, or remapped twice")
        remaps[ent.msg.orig_id] = ent.msg
    shmem = _load_shmem(d, tasks, memfd)
    seccomp = _read(d, "seccomp.img", required=False)
    timens = _read(d, "timens-0.img", required=False)
    if timens is not None:
        timens = _one(timens, str(d / "timens-0.img"))
        for clk in (timens.monotonic, timens.boottime):
            if clk.tv_nsec >= 1_000_000_000 or clk.tv_sec >= 1 << 62:
                raise ImageFormatError(str(d / "timens-0.img"), 0, f"bad clock value {clk.tv_sec}.{clk.tv_nsec}")
    return RestorePlan(images_dir=d, inventory=inv, tasks=tasks, files=files,
                       seccomp=seccomp.messages[0] if seccomp and seccomp.entries else None, timens=timens,
                       shmem=shmem, memfd=memfd, remaps=remaps)


# --------------------------------------------------------------------------------------------------------
# per-task state while a restore runs (shared by the orchestrator and the built-in handlers through the stash)


@dataclass
class TaskState:
    """The restore of one task in progress.

    ``remote`` is the seed's leader (a :class:`criu_core.ptrace.RemoteTask`), ``scratch`` its argument area,
    ``pages_vmas`` the indexes of VMAs that receive pages (mapped writable until they are written, P5),
    ``map_fds`` the task-side descriptors opened for file mappings (keyed by files.img id and access mode),
    closed once every VMA is mapped.
    """

    plan: TaskPlan
    files: dict[int, Any]
    remote: Any = None
    scratch: Any = None
    pages_vmas: frozenset[int] = frozenset()
    map_fds: dict[Any, int] = field(default_factory=dict)
    shm_fds: dict[int, int] = field(default_factory=dict)  # shmid -> fd in the task, closed with map_fds
    threads: dict[int, Any] = field(default_factory=dict)  # tid -> RemoteTask of each non-leader thread
    warnings: list[str] = field(default_factory=list)
    helpers: list[Any] = field(default_factory=list)  # children holding a group whose leader is gone
    sigactions_now: dict[int, tuple[int, ...]] = field(default_factory=dict)  # signal -> action it has now
    inheritable: set[int] = field(default_factory=set)  # VMAs mapped by the built-in handler, not a plugin
    pages_compared: int = 0  # pages of a child compared with its parent's (copy-on-write sharing)
    pages_skipped_cow: int = 0  # ... and left shared, not written
    next_fd: int = -1  # alloc_fd()'s next candidate
    sid_now: int | None = None  # the session the seed is in now (None: the one criu-py was started in)
    joiners: list[Any] = field(default_factory=list)  # tasks forked before it, waiting to join its group
    setsid_pending: bool = False  # its setsid waits until the children that stay in its earlier session exist
    born: int | None = None  # the session it is forked in, when a descendant needs one it left (CRIU's born_sid)
    forker: int = 0  # the live session leader whose helper forks it (its memory is that leader's), else 0
    vm_from: int = 0  # the process whose mm it shares (CLONE_VM): its parent, or a sibling (CLONE_PARENT)

    def alloc_fd(self) -> int:
        """A descriptor number above every dumped fd of the task and not open in it now (CRIU's ``fd_next``)."""
        n = max(self.next_fd, max((p.fd for p in self.plan.fds), default=-1) + 1)
        try:
            busy = {int(x) for x in os.listdir(f"/proc/{self.plan.pid}/fd")}
        except OSError:
            busy = set()
        while n in busy:
            n += 1
        self.next_fd = n + 1
        return n

    def thread(self, tid: int) -> Any:
        """The RemoteTask of thread ``tid`` (the leader's is :attr:`remote`)."""
        if tid == self.plan.pid:
            if self.remote is None:
                raise KeyError(tid)
            return self.remote
        return self.threads[tid]


TASKS_KEY: StashKey[dict[int, TaskState]] = StashKey("restore.tasks")
PLAN_KEY: StashKey[RestorePlan] = StashKey("restore.plan")


def task_state(ctx: Any, pid: int) -> TaskState:
    """The state of task ``pid`` of the restore running in ``ctx``."""
    return ctx.stash[TASKS_KEY][pid]
