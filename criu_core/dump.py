"""Dump orchestration: seize the tree, collect every process, write CRIU 4.2 images, then kill or release.

Engine entry point for the command line and RPC: :func:`run` (``criu_core.dump.run(ctx) -> int``). Plugins are
reached only through ``ctx.host`` (:class:`criu_core.plugins.PluginHost`): ``criu_tree_frozen``,
``criu_vma_dump`` per mapping, ``criu_file_dump`` per descriptor, ``criu_task_dump`` per process, the device
broadcasts, ``criu_init``/``criu_fini``. Every hook is called from this (the tracer) thread, never from a pool:
the kernel accepts some requests on a traced task only from its ptrace parent thread. Device order, as CRIU:
pause (tree still running), seize, checkpoint (all tasks, before any memory), per task memory, files then
dump-late; fini before the tree is released or killed, success or not. Any failure before the end releases every task exactly as it was
(registers and signal masks put back, PTRACE_DETACH); images already written are left for inspection.

Order per process (reference §3): threads (registers first, then injected queries), process-wide state, then
/proc (smaps is read after the scratch page is gone), memory, descriptors, images.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from typing import Any

from criu_core.context import DumpContext
from criu_core.dumping.files import FD_CLOEXEC, close_fds, collect_fds
from criu_core.dumping.filetable import FileTable
from criu_core.dumping.ids import DumpIds
from criu_core.dumping.messages import core_entry, inventory_entry, msg, stats_entry, timens_entry, zombie_core
from criu_core.dumping.mm import (
    MAP_ANONYMOUS,
    MAP_SHARED,
    PROT_READ,
    PSEUDO_NO_PAGES,
    madv_bits,
    to_vmas,
)
from criu_core.dumping.pages import (
    PAGE_SIZE,
    PE_PRESENT,
    PageRun,
    PageSelector,
    PfnSnapshot,
    copy_pages,
    read_shared_by_mem,
    split_shared_with_parent,
)
from criu_core.dumping.task import ProcessState, collect_process
from criu_core.dumping.thread import collect_thread, read_rseq_cs
from criu_core.errors import CriuError, DumpFailed, UnsupportedResource
from criu_core.images.criu_core_task import COW_PAGES_INVENTORY_NAME, task_entry
from criu_core.images.imagedir import ImageDir
from criu_core.images.pagemap import make_entry, make_head
from criu_core.images.vma import (
    VMA_ANON_PRIVATE,
    VMA_ANON_SHARED,
    VMA_AREA_MEMFD,
    VMA_AREA_VDSO,
    VMA_FILE_PRIVATE,
    VMA_FILE_SHARED,
    cow_key,
)
from criu_core.procfs import ProcFS
from criu_core.progress import Progress
from criu_core.ptrace import FrozenTree, seize_tree
from criu_core.records import dataclass, field
from criu_core.resources import FdInfo, SocketInfo, Task

__all__ = ["DumpResult", "dump_tree", "run"]

O_RDWR = 2


@dataclass
class DumpResult:
    """What a dump did: processes and threads dumped, pages written, timings in microseconds."""

    pids: list[int] = field(default_factory=list)
    threads: int = 0
    pages_scanned: int = 0
    pages_written: int = 0
    freezing_time: int = 0
    frozen_time: int = 0
    memdump_time: int = 0


def run(ctx: DumpContext) -> int:
    """The ``dump`` command: returns 0, or raises a CriuError."""
    # Plugins may set inventory fields during the dump (uprobes: allow_uprobes); the core fills the rest at the end.
    if ctx.inventory is None:
        ctx.inventory = msg("inventory.inventory_entry")
    ctx.host.init(ctx, ctx.stage)
    try:
        dump_tree(ctx, fini=True)
    except OSError as exc:  # the images dir, a full disk: the tree was released, say so in one line
        where = exc.filename or ctx.images_dir
        raise DumpFailed(f"Dumping FAILED: can't write the images in {where}: {exc.strerror or exc}") from exc
    return 0


class _Dumper:
    def __init__(self, ctx: DumpContext, tree: FrozenTree, images: ImageDir, procfs: ProcFS) -> None:
        self.ctx = ctx
        self.tree = tree
        self.images = images
        self.procfs = procfs
        self.ids = DumpIds()
        self.ft = FileTable(images, self.ids, ghost_limit=int(ctx.options.get("ghost_limit") or (1 << 20)))
        self.fdinfo_written: set[int] = set()
        self.pstree: list[Any] = []
        self.vm_owner: dict[int, int] = {}  # vm_id -> the first process seen with it
        self.vm_of: dict[int, int] = {}  # pid -> vm_id
        # vm_id -> (mm entry, pagemap entries, [anon:NAME] names, pages left to the parent) of its owner
        self.vm_images: dict[int, tuple[Any, list[Any], list[tuple[int, str]], list[tuple[int, int]]]] = {}
        self.seccomp_filters: list[Any] = []
        self.result = DumpResult()
        self.local_fds: list[FdInfo] = []
        # --dedup-cow-pages: pid -> (cow_key of each VMA a child may share with it, PFNs of its pages there)
        self.cow_pfns: dict[int, tuple[set[Any], PfnSnapshot]] | None = (
            {} if ctx.options.get("dedup_cow_pages") else None
        )

    def fd_file_id(self, fd: FdInfo) -> tuple[int, int]:
        """(file id, fd type) for a descriptor: shared descriptions (kcmp KCMP_FILE) get one entry."""
        known = self.ft.shared_with(fd)
        if known is not None:
            return known
        # The id is chosen before the hooks run: a plugin names its own images after it (CRIU's DUMP_EXT_FILE).
        fid = self.ids.new_file_id()
        fd = dataclasses.replace(fd, file_id=fid)
        claim = None
        if fd.kind == "socket":
            claim = self.socket_claim(fd)
        if claim is None:
            claim = self.ctx.host.file_dump(self.ctx, fd)
        self.ft.add_claimed(fd, fid, claim)
        return fid, claim.fd_type

    def socket_claim(self, fd: FdInfo) -> Any:
        """Offer a socket to the socket hooks by family (AF_UNIX, AF_INET/AF_INET6); None if nobody claims."""
        import socket  # only trees with sockets pay for the import (1.5 ms)

        with socket.socket(fileno=os.dup(fd.local_fd)) as sk:
            family = sk.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN)
            stype = sk.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
            proto = sk.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL)
        info = SocketInfo(fd=fd, family=family, type=stype, protocol=proto, ino=fd.ino)
        if family == socket.AF_UNIX:
            return self.ctx.host.unix_sk_dump(self.ctx, info)
        if family in (socket.AF_INET, socket.AF_INET6):
            return self.ctx.host.inet_sk_dump(self.ctx, info)
        return None

    # -- one process ----------------------------------------------------------------------------------------

    def dump_process(self, pid: int, task: Task) -> None:
        tree, procfs = self.tree, self.procfs
        leader = tree.leader(pid)
        # the exe first: CRIU gives it the first file id of the process
        exe_id = self.ft.path_file_id(f"/proc/{pid}/exe", procfs.exe(pid))
        # rseq->rseq_cs before anything is injected: the kernel clears it on the way back from any syscall
        pre = {}
        for t in tree.threads(pid):
            ptr = t.get_rseq_config().rseq_abi_pointer
            pre[t.tid] = read_rseq_cs(t, ptr) if ptr else (0, None)
        with leader.scratch() as scratch:
            threads = [collect_thread(t, scratch, procfs, pre[t.tid]) for t in tree.threads(pid)]
            proc = collect_process(leader, scratch, procfs)
        # Every injected syscall made the kernel clear rseq->rseq_cs (the ip was outside the section); arm it again
        # so a thread left running (--leave-running, a failed dump) is still inside its critical section.
        for t, th in zip(tree.threads(pid), threads):
            if th.rseq and th.rseq[3]:
                t.write_mem(th.rseq[0] + 8, th.rseq[3].to_bytes(8, "little"))
        if leader.group_stop_sig:
            proc.extra["stop_signo"] = leader.group_stop_sig
        self.ctx.host.task_dump(self.ctx, task, leader)

        kobj = self.ids.kobj_ids(pid)
        vm_id = kobj["vm_id"]
        owner = self.vm_owner.setdefault(vm_id, pid)
        self.vm_of[pid] = vm_id
        if (
            owner != pid
            and self.vm_of.get(task.ppid) != vm_id
            and not any(
                self.vm_of.get(q) == vm_id for q, pp in self.tree.parents.items() if pp == task.ppid and q != pid
            )
        ):
            # Restore makes a sharer with clone3(CLONE_VM) injected into its parent, or into a sibling dumped
            # before it (with CLONE_PARENT), which must have that mm.
            raise UnsupportedResource(
                f"address space of task {pid}",
                msg=f"task {pid} shares its address space with task {owner} (CLONE_VM without CLONE_THREAD) but "
                f"neither its parent {task.ppid} nor a sibling dumped before it does: such a tree cannot be restored",
            )
        ns = self.ids.ns_ids(pid)
        root_ns = self.ids.ns_ids(os.getpid())
        if ns != root_ns:
            raise UnsupportedResource(
                f"namespaces of task {pid}",
                msg=f"task {pid} lives in other namespaces than criu-py; namespaces are not supported yet",
            )
        self.images.write_one("ids", msg("core.task_kobj_ids_entry", **kobj, **ns), pid)

        if owner == pid:
            vmas, runs, names = self.dump_mm(pid, proc, exe_id, task.ppid)
            pagemap, left = self.write_pages(pid, leader, runs)
            mm = msg(
                "mm.mm_entry",
                **proc.mm,
                exe_file_id=exe_id,
                mm_saved_auxv=proc.auxv,
                vmas=vmas,
                dumpable=proc.dumpable,
                thp_disabled=proc.thp_disabled,
            )
            self.vm_images[vm_id] = (mm, pagemap, names, left)
        else:
            # CLONE_VM without CLONE_THREAD: one mm, dumped once with its first task. CRIU 4.2 refuses such a
            # tree ("Can't make VM id"); here the sharer gets the same vm_id in ids-PID.img and a copy of the
            # owner's mm and pagemap images, whose head names the owner's pages-N.img: the pages are stored
            # once, and a restorer that ignores the sharing (CRIU) still finds a complete mm for each task.
            mm, pagemap, names, left = self.vm_images[vm_id]
            self.images.write("pagemap", pagemap, pid)
        self.images.write_one("mm", mm, pid)
        # criu-core's own image, only for a task that has something CRIU's images cannot say
        # (the root's exit signal is not carried: the restore forks the root from criu-py with SIGCHLD, as CRIU)
        exit_signal = proc.exit_signal if pid != self.ctx.root_pid else int(signal.SIGCHLD)
        ext = task_entry(exit_signal, names, left)
        if ext is not None:
            self.images.write_one("criu-core", ext, pid)

        files_id = kobj["files_id"]
        fds = collect_fds(pid, procfs)
        self.local_fds.extend(fds)
        fdinfos = []
        for fd in fds:
            fid, ftype = self.fd_file_id(fd)
            fdinfos.append(
                msg("fdinfo.fdinfo_entry", id=fid, flags=FD_CLOEXEC if fd.cloexec else 0, type=ftype, fd=fd.fd)
            )
        if files_id not in self.fdinfo_written:
            self.images.write("fdinfo", fdinfos, files_id)
            self.fdinfo_written.add(files_id)

        cwd_id = self.ft.path_file_id(f"/proc/{pid}/cwd", procfs.cwd(pid))
        root_id = self.ft.path_file_id(f"/proc/{pid}/root", procfs.root_link(pid))
        self.images.write_one("fs", msg("fs.fs_entry", cwd_id=cwd_id, root_id=root_id, umask=proc.umask), pid)

        for th in threads:
            self.images.write_one("core", core_entry(th, proc if th.tid == pid else None, self.seccomp_filters), th.tid)
        self.result.threads += len(threads)
        self.result.pids.append(pid)

    def dump_mm(
        self, pid: int, proc: ProcessState, exe_id: int, ppid: int = 0
    ) -> tuple[list[Any], list[PageRun], list[tuple[int, str]]]:
        """The VMAs of ``pid`` (vma_entry messages), the page runs to dump and the ``[anon:NAME]`` names of
        VMAs by start (criu-core-PID.img)."""
        vmas_out: list[Any] = []
        runs: list[PageRun] = []
        names: list[tuple[int, str]] = []
        selector = PageSelector(pid)
        # --dedup-cow-pages: the pages of a private anonymous VMA the child has just as its parent (dumped
        # before it) has it, and that are still the parent's own physical pages, are left to the parent.
        my_keys: set[Any] = set()
        my_pfns = PfnSnapshot()
        # pages shared copy-on-write with another process of the tree are read so as to stay shared
        has_children = any(pp == pid for pp in self.tree.parents.values())
        forked = ppid in self.tree.processes or has_children
        parent_keys: set[Any] = set()
        parent_pfns = my_pfns
        if self.cow_pfns is not None and ppid in self.cow_pfns:
            parent_keys, parent_pfns = self.cow_pfns[ppid]
        try:
            for vma in to_vmas(pid, self.procfs.smaps(pid)):
                claim = self.ctx.host.vma_dump(self.ctx, vma)
                if claim.skip:
                    continue
                status = claim.status
                entry = {
                    "start": vma.start,
                    "end": vma.end,
                    "pgoff": 0,
                    "shmid": 0,
                    "prot": vma.prot,
                    "flags": vma.flags,
                    "status": status,
                    "fd": -1,
                }
                madv = madv_bits(vma.vmflags)
                if madv:
                    entry["madv"] = madv
                map_file = f"/proc/{pid}/map_files/{vma.start:x}-{vma.end:x}"
                if status & VMA_AREA_MEMFD:
                    fflags = O_RDWR if "mw" in vma.vmflags or vma.flags & MAP_SHARED == 0 else 0
                    entry["pgoff"] = vma.pgoff
                    entry["shmid"] = self.ft.memfd_map_id(map_file, vma.name, fflags)
                    entry["fdflags"] = fflags
                elif status & (VMA_FILE_PRIVATE | VMA_FILE_SHARED):
                    writable_shared = bool(vma.flags & MAP_SHARED and "mw" in vma.vmflags)
                    fflags = O_RDWR if writable_shared else 0
                    entry["pgoff"] = vma.pgoff
                    entry["shmid"] = self.ft.path_file_id(map_file, vma.path or vma.name, flags=fflags)
                    entry["fdflags"] = fflags
                elif status & VMA_ANON_SHARED:
                    entry["flags"] = vma.flags | MAP_ANONYMOUS
                    entry["pgoff"] = vma.pgoff
                    entry["shmid"] = self.ft.shmem_object(map_file, vma.inode, vma.pgoff + vma.size)
                entry.update(claim.entry_updates)
                vmsg = msg("vma.vma_entry", **entry)
                vmas_out.append(vmsg)
                if claim.anon_name is not None:
                    names.append((vma.start, claim.anon_name))
                key = cow_key(vmsg, claim.anon_name) if claim.plugin == "builtin.memory" else None
                if key is not None:
                    my_keys.add(key)
                if claim.skip_content or vma.name in PSEUDO_NO_PAGES:
                    continue
                readable = bool(vma.prot & PROT_READ)
                if status & VMA_AREA_VDSO:
                    runs.append(PageRun(vma.start, vma.size // PAGE_SIZE, PE_PRESENT, readable))
                elif status & VMA_ANON_PRIVATE:
                    vruns = selector.runs(vma.start, vma.end, anon=True, lazy=True, readable=readable)
                    if key is not None and self.cow_pfns is not None:
                        if has_children:
                            my_pfns.add(selector.fd, vruns)  # before any copy: see PfnSnapshot
                        if key in parent_keys:
                            vruns = split_shared_with_parent(vruns, selector.fd, parent_pfns)
                    runs += read_shared_by_mem(vruns, selector.fd) if forked else vruns
                elif status & VMA_FILE_PRIVATE:
                    vruns = selector.runs(vma.start, vma.end, anon=False, lazy=False, readable=readable)
                    runs += read_shared_by_mem(vruns, selector.fd) if forked else vruns
        finally:
            self.result.pages_scanned += selector.scanned
            selector.close()
        if self.cow_pfns is not None:
            self.cow_pfns[pid] = (my_keys, my_pfns)
        return vmas_out, runs, names

    def write_pages(self, pid: int, leader: Any, runs: list[PageRun]) -> tuple[list[Any], list[tuple[int, int]]]:
        """pages-N.img and pagemap-PID.img of one mm; returns the pagemap entries (head first) and the (vaddr,
        nr) ranges left to the parent task (--dedup-cow-pages), which are not in the pagemap: they go to
        criu-core-PID.img."""
        t0 = time.monotonic()
        pages_id = self.images.next_pages_id()
        stored = [r for r in runs if not r.in_parent]  # in_parent: the parent's pages (--dedup-cow-pages)
        total = sum(r.npages for r in stored) * PAGE_SIZE
        with self.images.open_pages_writer(pages_id) as out, Progress(f"dumping pages of {pid}", total) as bar:
            self.result.pages_written += copy_pages(leader, stored, out, bar)
        left = [(r.start, r.npages) for r in runs if r.in_parent]
        if left:
            # CRIU 4.2 cannot restore such images: naming a plugin it does not have makes it refuse them
            self.ctx.mark_plugin_used(COW_PAGES_INVENTORY_NAME)
        pagemap = [make_head(pages_id), *(make_entry(r.start, r.npages, r.flags) for r in stored)]
        self.images.write("pagemap", pagemap, pid)
        self.result.memdump_time += int((time.monotonic() - t0) * 1e6)
        return pagemap, left

    def dump_zombie(self, pid: int, stat: Any) -> None:
        """core-PID.img of a zombie: task_state TASK_DEAD and the wait status, as CRIU's dump_one_zombie."""
        self.images.write_one("core", zombie_core(stat), pid)
        self.result.pids.append(pid)

    def write_common(self) -> None:
        images = self.images
        images.write("pstree", self.pstree)
        self.ft.write()
        images.write_one("seccomp", msg("seccomp.seccomp_entry", seccomp_filters=self.seccomp_filters))
        images.write_one("timens", timens_entry(), 0)
        inv = inventory_entry(self.ids.root_ids(), list(self.ctx.used_plugins))
        if self.ctx.inventory is not None:
            plugin_fields, inv = inv, self.ctx.inventory
            inv.MergeFrom(plugin_fields)  # the core's fields over what plugins set (which the core leaves alone)
        self.ctx.inventory = inv
        images.write_one("inventory", inv)


def _pause_devices(ctx: DumpContext, procfs: ProcFS) -> None:
    """CRIU's PAUSE_DEVICES: every process of the tree, while it still runs, before it is seized.

    The tree is walked through /proc here; a process forked after this walk is seized without a pause, as in
    CRIU, whose plugins then meet it in checkpoint-devices.
    """
    todo, seen = [ctx.root_pid], set()
    while todo:
        pid = todo.pop(0)
        if pid in seen:
            continue
        seen.add(pid)
        try:
            stat = procfs.stat(pid)
            children = procfs.children(pid)
        except CriuError:
            continue  # gone already: seize_tree will say so if it was the root
        ctx.host.devices_pause(
            ctx, Task(pid=pid, ppid=stat.ppid, pgid=stat.pgrp, sid=stat.session, tids=(pid,), comm=stat.comm)
        )
        todo.extend(children)


def dump_tree(ctx: DumpContext, *, procfs: ProcFS | None = None, fini: bool = False) -> DumpResult:
    """Dump the tree rooted at ``ctx.root_pid`` into ``ctx.images_dir``.

    Honours ``ctx.options.leave_running`` (detach, tasks continue) and ``leave_stopped`` (detach, tasks stay
    stopped); by default the tasks are killed after a successful dump.

    With ``fini`` (what :func:`run` asks), ``criu_fini`` runs here, after success and after failure, while the
    tree is still seized (CRIU's cr_dump_finish calls the plugins' fini before it switches the tasks' state):
    a plugin can still talk to the traced tasks (unpause a device) before they are released or killed.
    """
    procfs = procfs or ProcFS()
    finished = False

    def finish(ok: bool) -> None:
        nonlocal finished
        try:
            if fini and not finished:
                finished = True
                ctx.host.fini(ctx, ctx.stage, ok)
        finally:
            ctx.tracee = None  # the tree is released or killed next

    try:
        images = ImageDir(ctx.images_dir, create=True)
        ctx.images = images
        t0 = time.monotonic()
        ctx.notify("pre-dump")
        _pause_devices(ctx, procfs)
        tree = seize_tree(ctx.root_pid)
    except BaseException:
        finish(False)
        raise
    t_frozen = time.monotonic()
    dumper = _Dumper(ctx, tree, images, procfs)
    dumper.result.freezing_time = int((t_frozen - t0) * 1e6)
    ctx.tracee = lambda pid, tid: _tracee(tree, pid, tid)
    try:
        zombies = _zombie_tasks(tree, procfs)
        tasks = _tasks(ctx, tree, procfs, zombies)
        ctx.notify("query-ext-files")
        ctx.host.tree_frozen(ctx, tuple(tasks.values()))
        # CRIU's CHECKPOINT_DEVICES: right after the tree is collected, before any task's memory is dumped.
        for task in tasks.values():
            ctx.host.devices_checkpoint(ctx, task)
        for pid, task in tasks.items():
            dumper.pstree.append(
                msg(
                    "pstree.pstree_entry",
                    pid=pid,
                    ppid=task.ppid,
                    pgid=task.pgid,
                    sid=task.sid,
                    threads=list(task.tids),
                )
            )
            dumper.dump_process(pid, task)
            # DUMP_DEVICES_LATE: the task's files are dumped, it is still seized, and this is the tracer thread.
            ctx.host.devices_dump_late(ctx, task)
        for pid, (task, stat) in zombies.items():  # after every live task: their parents are listed first
            dumper.pstree.append(
                msg("pstree.pstree_entry", pid=pid, ppid=task.ppid, pgid=task.pgid, sid=task.sid, threads=[pid])
            )
            dumper.dump_zombie(pid, stat)
        dumper.write_common()
        ctx.notify("post-dump")
        dumper.result.frozen_time = int((time.monotonic() - t_frozen) * 1e6)
        dumper.images.write_one("stats", stats_entry(dumper.result), "dump")
    except BaseException:
        try:
            finish(False)  # the plugins' fini may still use the fd copies (FdInfo.local_fd): close them after
        finally:
            try:
                close_fds(dumper.local_fds)
            finally:
                tree.release()
        raise
    try:
        finish(True)
    finally:
        try:
            close_fds(dumper.local_fds)
        finally:
            _finish(ctx, tree)
    return dumper.result


def _zombie_tasks(tree: FrozenTree, procfs: ProcFS) -> dict[int, tuple[Task, Any]]:
    """The dead but unreaped processes of the tree with their /proc stat (pgrp, session, exit_code, comm).

    A zombie has no threads, memory or files left: CRIU writes a pstree entry and a core with TASK_DEAD and
    the wait status (``exit_code``, stat field 52) and nothing else (cr-dump.c, dump_one_zombie).
    """
    out: dict[int, tuple[Task, Any]] = {}
    for pid in tree.zombies:
        try:
            stat = procfs.stat(pid)
        except CriuError:
            continue  # reaped meanwhile
        out[pid] = (
            Task(pid=pid, ppid=tree.parents.get(pid, 0), pgid=stat.pgrp, sid=stat.session, tids=(pid,), comm=stat.comm),
            stat,
        )
    return out


def _tracee(tree: FrozenTree, pid: int, tid: int) -> Any:
    task = tree.tasks.get(tid)
    if tree.released or task is None or task.pid != pid:
        raise CriuError(f"thread {tid} of task {pid} is not a thread of the seized tree", pid=pid)
    return task


def _tasks(ctx: DumpContext, tree: FrozenTree, procfs: ProcFS, zombies: dict[int, Any]) -> dict[int, Task]:
    """The seized processes as Tasks, after the checks that refuse a tree as a whole."""
    tasks: dict[int, Task] = {}
    for pid, tids in tree.processes.items():
        stat = procfs.stat(pid)
        tasks[pid] = Task(
            pid=pid,
            ppid=tree.parents.get(pid, 0),
            pgid=stat.pgrp,
            sid=stat.session,
            tids=tuple(tids),
            comm=stat.comm,
        )
    # As CRIU (pstree.c, dump_pstree): only the root must lead its session without --shell-job. Another task
    # in a session whose leader is outside the tree is in a session the root (or an ancestor) left, or whose
    # leader is gone: the restore makes those (a helper, or the task forked before its parent's setsid) or
    # refuses them with the reason.
    root = tasks.get(ctx.root_pid)
    if root is not None and root.sid != root.pid and not ctx.options.get("shell_job"):
        raise CriuError(
            f"The root process {root.pid} is not a session leader and its session leader {root.sid} is "
            "outside the dumped tree. Consider using --shell-job option",
            pid=root.pid,
        )
    return tasks


def _finish(ctx: DumpContext, tree: FrozenTree) -> None:
    opts = ctx.options
    if opts.get("leave_running"):
        tree.release()
    elif opts.get("leave_stopped"):
        for pid in tree.processes:
            os.kill(pid, signal.SIGSTOP)  # pending; takes effect at detach
        tree.release()
    else:
        tree.kill()
