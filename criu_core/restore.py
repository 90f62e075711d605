"""Restore orchestration: images -> plan -> seeds with the dumped PIDs -> rebuilt tasks -> running.

``run(ctx)`` is what ``criu-py restore`` (and RPC RESTORE) calls. The order is DESIGN.md's "Restore, in order"
and reference/ptrace-dump-restore.md §3, with the plugin stages where CRIU has them:

1. read and validate every image into a :class:`~criu_core.restore_plan.RestorePlan` (nothing exists yet);
   the inventory's plugins must be loaded (``check_required``), then ``inventory_check``; sessions, PIDs and
   unsupported state are checked; ``init``, ``devices_restore_init``;
2. create the root seed (``clone3`` with ``set_tid``: the PID must be free; with ``--restore-sibling`` a child
   of our parent, seized), empty it, give it its session and the time namespace of the dump's clocks, then
   fork each child from its clean parent seed (injected clone3, P9); a child left in its parent's earlier
   session is forked before the parent's setsid (several generations down: CRIU's born_sid), the members of a
   session whose leader is gone by a helper with the leader's PID, those of a live leader's session that were
   reparented to a subreaper by a helper the leader forks, and a member forked before its group's leader
   joins the group once it exists (CRIU's helpers and create_children_and_session, in
   :mod:`criu_core.restore_sessions`); a child that shares its
   parent's address space (CLONE_VM without CLONE_THREAD) is cloned with CLONE_VM once the parent's memory is
   built, and a child keeps its exit signal; ``devices_post_fork``;
3. build each task: vdso, PR_SET_MM_MAP, VMAs (``vma_restore``, claimants first; shared anonymous memory,
   memfds and deleted files included), pages, protections; descriptors (sockets to the socket hooks, then
   ``file_restore``, claimants first; ``--inherit-fd`` replacements), cwd/root/umask; signals, timers, limits;
   ``task_restore``; threads (injected clone3 with their TIDs); per-thread registrations; pending signals;
   creds; seccomp; registers and the real signal masks; memfd seals once every task is built;
4. ``devices_resume_late``, pidfile, detach (children before parents): the tasks run; stats-restore;
5. with ``-d`` return 0; otherwise wait for the root task and return its exit status, as CRIU does.

A failure at any step kills every seed made so far (they are our children or traced by us: SIGKILL and reap)
and leaves the images untouched; the error propagates as one :class:`~criu_core.errors.CriuError`.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING

from criu_core.builtin import (
    core_restore,
    cow_restore,
    files_restore,
    ghost_restore,
    mem_restore,
    memfd_restore,
    timens_restore,
    zombie_restore,
)
from criu_core.errors import CriuError, ImageFormatError, PidInUse, UnsupportedResource
from criu_core.images.framing import write_image
from criu_core.images.messages import new as new_message
from criu_core.ptrace import clone_thread_in, fork_child_in, make_seed
from criu_core.ptrace.restore_scratch import Scratch
from criu_core.ptrace.restore_seed import make_sibling_seed
from criu_core.ptrace.seed import SEED_OPTIONS
from criu_core.resources import Task
from criu_core.restore_plan import PLAN_KEY, TASKS_KEY, RestorePlan, TaskPlan, TaskState, load_plan
from criu_core.restore_sessions import (
    check_session_helper,
    child_session,
    forked_before_setsid,
    group_helper,
    group_made,
    join_group,
    leader_helper,
    pid_exists,
    pid_max,
    plan_sessions,
    session_helper,
    shared_with_parent,
    start_session,
)
from criu_core.sys import ptrace as pt
from criu_core.sys.clone import CLONE_PARENT

if TYPE_CHECKING:
    from criu_core.context import RestoreContext

__all__ = ["restore_tree", "run", "wait_status"]

_WALL = 0x40000000
_ALL_BUT_SIGCHLD = set(range(1, 65)) - {int(signal.SIGCHLD)}


def run(ctx: RestoreContext) -> int:
    """Restore the images in ``ctx.images_dir``; the command's exit code (0 with ``-d`` once running)."""
    opts = ctx.options
    plan = load_plan(ctx.images_dir)
    ctx.inventory = plan.inventory
    inv = plan.inventory
    ctx.host.check_required(list(inv.plugins_entry.plugins) if inv.HasField("plugins_entry") else [])
    if inv.HasField("allow_uprobes") and inv.allow_uprobes and "allow-uprobes" not in ctx.host.options.specs:
        # The option (and the check with CRIU's wording) belongs to the uprobes plugin; without it, say what to do.
        raise CriuError(
            "Dumped with --allow-uprobes. Need to set it on restore as well: install "
            "criu-plugin-uprobes, which provides the option"
        )
    files_restore.inherit_fds(opts.inherit_fd or [])  # a bad --inherit-fd fails before anything exists
    root = restore_tree(ctx, plan)
    ctx.root_pid = root
    if opts.restore_detached:
        return 0
    return wait_status(root)


def wait_status(pid: int) -> int:
    """Wait for the restored root and turn its end into an exit code (128 + signal if it was killed)."""
    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            return 0  # reaped elsewhere (a harness): nothing more to report
        except InterruptedError:
            continue
        if os.WIFEXITED(status):
            return os.WEXITSTATUS(status)
        if os.WIFSIGNALED(status):
            return 128 + os.WTERMSIG(status)


def restore_tree(ctx: RestoreContext, plan: RestorePlan) -> int:
    """Create and build every task of ``plan``; returns the root's PID once it runs (detached)."""
    host, log, opts = ctx.host, ctx.log, ctx.options
    states = {t.pid: TaskState(t, plan.files) for t in plan.tasks}
    ctx.stash[TASKS_KEY] = states
    ctx.stash[PLAN_KEY] = plan
    for st in states.values():
        core_restore.check_supported(st)
    root = plan.root
    if root.sid != root.pid and not opts.shell_job:
        raise UnsupportedResource(
            "session",
            msg=f"task {root.pid} belongs to session {root.sid}, whose leader is "
            "not in the images: restore with --shell-job",
        )
    for pid, maker in _check_vm_sharing(plan).items():
        states[pid].vm_from = maker
    plan_sessions(ctx, states)
    _check_pids_free(plan)

    def tracee(pid: int, tid: int) -> object:
        st = states.get(pid)
        try:
            if st is None:
                raise KeyError(tid)
            return st.thread(tid)
        except KeyError:
            raise CriuError(
                f"thread {tid} of task {pid} is not a restored thread held by the restorer", pid=pid
            ) from None

    ctx.tracee = tracee
    host.init(ctx, "restore")
    success = False
    t0 = time.monotonic()
    try:
        # CRIU initialises plugins after reading the inventory, so init sees ctx.inventory; plugins vet it next.
        host.inventory_check(ctx, plan.inventory)
        host.devices_restore_init(ctx)
        root_st = states[root.pid]
        # --restore-sibling (runc): the root becomes a child of our parent, as it was before the dump
        ctx.notify("pre-restore")
        root_st.remote = make_sibling_seed(root.pid) if opts.restore_sibling else make_seed(root.pid)
        log.info("seed %d created%s", root.pid, " as our sibling" if opts.restore_sibling else "")
        _prepare_root(ctx, plan, root_st, states)
        # pstree order, but a task after the one that forks it: a parent's (or a session leader's, whose helper
        # forks it) memory is built before it forks its children
        todo = [st for st in states.values() if not st.plan.dead]
        while todo:
            st = next((s for s in todo if s.remote is not None), None)
            if st is None:
                raise CriuError(f"tasks {[s.plan.pid for s in todo][:10]} were never forked (restore bug)")
            todo.remove(st)
            _build_memory(ctx, plan, st, states)
            _fork_children(ctx, st, states)
        forked = time.monotonic()
        host.devices_post_fork(ctx)
        for st in states.values():
            if st.plan.dead:
                zombie_restore.make_zombie(st, states[st.plan.ppid])
        for st in states.values():
            while st.helpers:
                zombie_restore.end_helper(st.helpers.pop(), st)
        for st in states.values():
            if not st.plan.dead:
                _build_task(ctx, plan, st)
        memfd_restore.apply_seals(ctx)
        for st in states.values():  # a failure here is fatal: the tree is killed, as any other restore failure
            if not st.plan.dead:
                host.devices_resume_late(ctx, _task(st))
        for st in states.values():
            for w in st.warnings:
                log.warning("%s", w)
        if opts.pidfile:
            _write_pidfile(opts.pidfile, plan.root.pid)
        ctx.notify("post-restore", pid=plan.root.pid)
        ctx.notify("pre-resume")
        for st in reversed(list(states.values())):  # children before parents
            if st.remote is None:
                continue  # a zombie, already dead
            for thread in list(st.threads.values()):
                thread.detach(0)
            st.threads.clear()
            tc = st.plan.core.tc
            # detaching from the signal-delivery-stop with SIGSTOP stops the task before its first instruction
            stop = opts.leave_stopped or tc.task_state == core_restore.TASK_STOPPED
            sig = (tc.stop_signo or int(signal.SIGSTOP)) if stop else 0
            st.remote.detach(sig)
            st.remote = None
        log.info("Restore finished successfully. Tasks resumed.")
        ctx.notify("post-resume")
        success = True
        _write_stats(ctx, forked - t0, time.monotonic() - t0, states)
        return plan.root.pid
    except BaseException:
        _kill_seeds(reversed(list(states.values())))
        raise
    finally:
        ctx.tracee = None
        host.fini(ctx, "restore", success)


def _check_vm_sharing(plan: RestorePlan) -> dict[int, int]:
    """Processes that share one mm (equal vm_id: CLONE_VM without CLONE_THREAD) are made by clone3(CLONE_VM)
    from a process that has it already: their parent, or else an earlier sibling that clones them with
    CLONE_PARENT as well (the shape ``clone(CLONE_VM | CLONE_PARENT)`` makes, and the one a sharer reparented
    to its grandparent ends in). Returns pid -> the process that makes each sharer; refuses other shapes.
    The images of one mm must agree."""
    first: dict[int, TaskPlan] = {}
    by_pid = {t.pid: t for t in plan.tasks}
    makers: dict[int, int] = {}
    for t in plan.tasks:
        if t.dead:
            continue
        owner = first.setdefault(t.ids.vm_id, t)
        if owner is t:
            continue
        parent = by_pid.get(t.ppid)
        if parent is not None and not parent.dead and parent.ids.vm_id == t.ids.vm_id:
            makers[t.pid] = t.ppid
        else:
            sibling = next(
                (s for s in plan.tasks if s is not t and s.ppid == t.ppid and not s.dead
                 and s.ids.vm_id == t.ids.vm_id and (s.pid in makers or s is owner)),
                None,
            )  # fmt: skip
            if sibling is None:
                raise UnsupportedResource(
                    "address space",
                    msg=f"task {t.pid} shares its address space with task {owner.pid} (CLONE_VM without "
                    f"CLONE_THREAD) but neither its parent {t.ppid} nor a sibling made before it does: such a "
                    "tree cannot be restored",
                )
            makers[t.pid] = sibling.pid
        if (
            t.mm.SerializeToString() != owner.mm.SerializeToString()
            or t.pages != owner.pages
            or t.vma_names != owner.vma_names
            or t.parent_pages != owner.parent_pages
        ):
            raise ImageFormatError(
                str(plan.images_dir / f"mm-{t.pid}.img"),
                0,
                f"task {t.pid} shares the mm of "
                f"task {owner.pid} (same vm_id) but its mm, pagemap or criu-core image differs",
            )
    return makers


def _shares_vm(st: TaskState, states: dict[int, TaskState]) -> bool:
    """``st`` lives in the address space of the process that made it (CLONE_VM): nothing of its memory is
    built, that one's is."""
    return st.vm_from != 0


def _last_of_mm(st: TaskState, states: dict[int, TaskState]) -> bool:
    """``st`` is the last task built of those sharing its mm (it drops the scratch area they all use)."""
    vm = st.plan.ids.vm_id
    last = [s for s in states.values() if not s.plan.dead and s.plan.ids.vm_id == vm][-1]
    return last is st


def _check_pids_free(plan: RestorePlan) -> None:
    """Every PID and TID must be free and below pid_max (clone3's set_tid fails with EEXIST / EINVAL)."""
    top = pid_max()
    for t in plan.tasks:
        for tid in t.tids:
            if tid >= top:
                raise UnsupportedResource(
                    f"PID {tid}",
                    msg=f"PID {tid} is not below this machine's pid_max ({top}): raise kernel.pid_max to restore it",
                )
            if pid_exists(tid):
                raise PidInUse(tid)


def _task(st: TaskState) -> Task:
    p = st.plan
    return Task(pid=p.pid, ppid=p.ppid, pgid=p.pgid, sid=p.sid, tids=p.tids, comm=p.core.tc.comm)


def _write_pidfile(path: str, pid: int) -> None:
    """The bare number, in a file created exclusively (as CRIU does: a stale pidfile is an error)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, str(pid).encode())
        finally:
            os.close(fd)
    except OSError as err:
        raise CriuError(f"Can't write pidfile {path}: {err.strerror}", path=path) from None


def _write_stats(ctx: RestoreContext, forking: float, total: float, states: dict[int, TaskState]) -> None:
    """stats-restore in the work dir, as CRIU writes it (times in microseconds); a failure only warns."""
    entry = new_message("stats.stats_entry")
    r = entry.restore
    r.pages_compared = sum(st.pages_compared for st in states.values())
    r.pages_skipped_cow = sum(st.pages_skipped_cow for st in states.values())
    # a CLONE_VM sharer's pages are its parent's: counted once
    pages = sum(st.plan.nr_pages for st in states.values() if not _shares_vm(st, states)) - r.pages_skipped_cow
    r.forking_time, r.restore_time, r.pages_restored = int(forking * 1e6), int(total * 1e6), pages
    try:
        write_image(Path(ctx.work_dir or ctx.images_dir) / "stats-restore", "STATS", [entry])
    except OSError as err:
        ctx.log.warning("cannot write stats-restore: %s", err)


def _kill_seeds(states: object) -> None:
    for st in states:  # type: ignore[attr-defined]
        for helper in st.helpers:
            try:
                os.kill(helper.tid, signal.SIGKILL)
                os.waitpid(helper.tid, _WALL)
            except OSError:
                pass
        st.helpers.clear()
        remote = st.remote
        if remote is None:
            continue
        try:
            remote.close()
        except OSError:
            pass
        try:
            os.kill(remote.tid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        # traced threads first: the leader's exit is not reported while they are unreaped (P4)
        for tid in [*st.threads, remote.tid]:
            try:
                os.waitpid(tid, _WALL)
            except ChildProcessError:
                pass
        st.threads.clear()
        st.remote = None


def _create_threads(st: TaskState) -> None:
    """Step 12 of §3: each other thread by an injected clone3 with its TID, TLS and clear_child_tid, once the
    memory (TLS, stacks) is in place; it comes up stopped and auto-attached, every signal blocked."""
    p = st.plan
    for tid in p.tids[1:]:
        ti = p.thread_cores[tid].thread_info
        st.scratch.reset()
        args = st.scratch.alloc(256, 64)
        st.threads[tid] = clone_thread_in(
            st.remote, tid, tls=ti.gpregs.fs_base, child_tid=ti.clear_tid_addr, scratch=args
        )


def _prepare_root(ctx: RestoreContext, plan: RestorePlan, st: TaskState, states: dict[int, TaskState]) -> None:
    """Empty the root seed, give it its session (P9: before it forks anything) and the dump's time namespace.

    The scratch area it maps is inherited by every task forked below it, so it avoids every task's VMAs.
    """
    mem_restore.clean_seed(st, [(v.entry.start, v.entry.end) for s in states.values() for v in s.plan.vmas])
    start_session(ctx, st, states)
    if plan.timens is not None:
        timens_restore.enter_timens(st, plan.timens)


def _fork_children(ctx: RestoreContext, st: TaskState, states: dict[int, TaskState]) -> None:
    """Fork the children of ``st`` from it once its memory is built, so they inherit its private anonymous
    memory copy-on-write (cow_restore), with its session, time namespace and scratch area; then each child's
    own session or group (P9: before it forks its own children). Children that stay in the session ``st``
    had before its own setsid are forked first, then ``st`` calls setsid, then the others."""
    p = st.plan
    # group leaders first: a sibling joins a group (setpgid) only once its leader exists (zombies included)
    children = sorted((s for s in states.values() if s.plan.ppid == p.pid), key=lambda s: s.plan.pgid != s.plan.pid)
    early = [c for c in children if st.setsid_pending and forked_before_setsid(ctx, c, st, states)]
    for child in early:
        _fork_child(ctx, st, child, states, early=True)
    if st.setsid_pending:
        st.remote.syscall("setsid")
        st.sid_now, st.setsid_pending = p.pid, False
        ctx.log.info("task %d: setsid", p.pid)
        group_made(ctx, st)
    session_helpers: dict[int, object] = {}
    for child in children:
        if child in early or child.forker or child.vm_from not in (0, p.pid):
            continue  # (a sharer of a sibling's mm: that sibling makes it, with CLONE_PARENT, below)
        c = child.plan
        if c.sid in (c.pid, p.sid) or c.sid in states:
            _fork_child(ctx, st, child, states, early=False)
            continue
        check_session_helper(child, st)
        if c.sid not in session_helpers:
            session_helpers[c.sid] = session_helper(ctx, st, c.sid)
        _fork_child(ctx, st, child, states, early=False, via=session_helpers[c.sid])
    for sib in (s for s in states.values() if s.vm_from == p.pid and s.plan.ppid != p.pid):
        _fork_child(ctx, st, sib, states, early=False, sibling=True)
    adopted = [s for s in states.values() if s.forker == p.pid]
    if adopted:
        helper = leader_helper(ctx, st, states, adopted)
        for child in adopted:
            _fork_child(ctx, st, child, states, early=False, via=helper)


def _fork_child(
    ctx: RestoreContext,
    st: TaskState,
    child: TaskState,
    states: dict[int, TaskState],
    early: bool,
    via: object = None,
    sibling: bool = False,
) -> None:
    """Fork ``child`` from ``st`` (or from the helper ``via``); with ``sibling``, ``st`` is the child's sibling
    whose mm it shares, and clones it with CLONE_PARENT (the child inherits ``st``'s session and group)."""
    p, c = st.plan, child.plan
    outside = early and st.sid_now is None  # stays in criu-py's session (--shell-job), and in its group
    if (
        via is None
        and not outside
        and c.pgid not in (c.pid, p.pgid)
        and c.pgid not in states
        and not pid_exists(c.pgid)
    ):
        group_helper(ctx, st, c.pgid)
    st.scratch.reset()
    if via is None:
        # its exit signal only when forked by its own parent: reparenting resets it to SIGCHLD in the kernel
        flags = shared_with_parent(child, st) | (CLONE_PARENT if sibling else 0)
        # clone3 wants exit_signal 0 with CLONE_PARENT: the child gets that of st, the caller (kernel/fork.c)
        child.remote = fork_child_in(
            st.remote, c.pid, 0 if sibling else c.exit_signal, flags=flags, scratch=st.scratch.alloc(256, 64)
        )
    else:  # forked by a session helper, a copy of st (same memory, same scratch address)
        scratch = Scratch(via, st.scratch.addr, st.scratch.size)
        child.remote = fork_child_in(via, c.pid, scratch=scratch.alloc(256, 64))
    child.scratch = Scratch(child.remote, st.scratch.addr, st.scratch.size)
    child.remote.syscall_ip = child.scratch.syscall_ip
    child.remote.trampoline = st.remote.trampoline  # the scratch's `syscall; int3`, inherited
    child.sigactions_now = dict(st.sigactions_now)
    child.sid_now = st.sid_now if via is None else c.sid
    ctx.log.info(
        "task %d forked from %d%s",
        c.pid,
        p.pid if via is None else via.tid,  # type: ignore[attr-defined]
        " before its setsid" if early else "",
    )
    if via is not None:
        if c.pgid == c.pid:
            child.remote.syscall("setpgid", 0, 0)
        elif c.pgid != c.sid:
            join_group(ctx, child, states)
    else:
        child_session(ctx, child, st, states, early, outside)
    if c.pgid == c.pid and not child.setsid_pending:
        group_made(ctx, child)


def _shares(st: TaskState, states: dict[int, TaskState], what: str) -> bool:
    """``st`` shares ``what`` (an ids field) with the process that forked it: its parent, or the sibling that
    cloned it with CLONE_PARENT (``vm_from``)."""
    maker = states.get(st.vm_from or st.plan.ppid)
    return maker is not None and getattr(st.plan.ids, what) == getattr(maker.plan.ids, what)


def _build_memory(ctx: RestoreContext, plan: RestorePlan, st: TaskState, states: dict[int, TaskState]) -> None:
    """vdso, PR_SET_MM_MAP, VMAs and pages; protections and madvise come later (_build_task), after the
    children are forked. A child starts from its parent's memory and keeps what it shares (cow_restore)."""
    host, log = ctx.host, ctx.log
    p = st.plan
    remote = st.remote
    zombies = any(s.plan.dead and s.plan.ppid == p.pid for s in states.values())
    if _shares_vm(st, states):  # made with CLONE_VM: its maker's memory, built already, is its own
        maker = states[st.vm_from]
        st.inheritable, st.pages_vmas = set(maker.inheritable), maker.pages_vmas
        log.info("task %d: shares the address space of task %d", p.pid, maker.plan.pid)
        core_restore.restore_sigactions(st, only=_ALL_BUT_SIGCHLD if zombies else None)
        return
    with_pages = {r.vaddr for r in p.pages}
    st.pages_vmas = frozenset(v.index for v in p.vmas if any(v.entry.start <= a < v.entry.end for a in with_pages))
    # the memory it was forked with: its parent's, or the session leader's whose helper forked it
    parent = states.get(st.forker or p.ppid) if p is not plan.root else None
    kept = cow_restore.inherit_memory(st, parent) if parent is not None else {}
    mem_restore.move_vdso(st)
    with ghost_restore.opened_path(ctx, p.mm.exe_file_id, plan.file(p.mm.exe_file_id).reg.name) as exe:
        mem_restore.set_mm_map(st, exe)
    for vma in p.vmas:
        if vma.index not in kept and host.vma_restore(ctx, vma, remote).plugin == mem_restore.PLUGIN:
            st.inheritable.add(vma.index)  # mapped by the built-in handler: a child may keep it (cow_restore)
    mem_restore.close_map_fds(st)
    if parent is not None:
        written, st.pages_compared, st.pages_skipped_cow = cow_restore.write_pages_cow(
            st, parent, kept, mem_restore.write_runs
        )
    else:
        written = mem_restore.write_pages(st)
    log.info(
        "task %d: %d VMAs mapped, %d inherited, %d bytes of pages written, %d pages left shared",
        p.pid,
        len(p.vmas) - len(kept),
        len(kept),
        written,
        st.pages_skipped_cow,
    )
    # Signal actions before forking the children, which inherit them and set only theirs that differ. Not
    # SIGCHLD while a zombie child is to be made: ignoring it (or SA_NOCLDWAIT) would reap the zombie at once.
    core_restore.restore_sigactions(st, only=_ALL_BUT_SIGCHLD if zombies else None)


def _build_task(ctx: RestoreContext, plan: RestorePlan, st: TaskState) -> None:
    host, log = ctx.host, ctx.log
    p = st.plan
    remote = st.remote
    states = ctx.stash[TASKS_KEY]
    if not _shares_vm(st, states):  # a shared mm is finished through the task that built it
        mem_restore.finish_vmas(ctx, st, host)
    if not _shares(st, states, "files_id"):  # a shared table was filled through the parent
        files_restore.install_fds(ctx, st, host)
    if not _shares(st, states, "fs_id"):  # chroot again in a shared fs would resolve inside the new root
        files_restore.restore_fs(ctx, st)
    core_restore.restore_sigactions(st)  # SIGCHLD if it was left for after the zombies (nothing else is left)
    core_restore.restore_itimers(st)
    core_restore.restore_posix_timers(st)
    core_restore.restore_rlimits(st)
    core_restore.restore_task_misc(st)
    host.task_restore(ctx, _task(st), remote)
    _create_threads(st)
    core_restore.restore_thread(st, remote, p.core)
    for tid, thread in st.threads.items():
        core_restore.restore_thread(st, thread, p.thread_cores[tid])
    core_restore.restore_pending_signals(st)
    core_restore.restore_creds(st)
    if p.core.thread_core.HasField("seccomp_mode") and p.core.thread_core.seccomp_mode:
        # the filter would apply to our own injected syscalls after it (P15)
        pt.setoptions(remote.tid, SEED_OPTIONS | pt.PTRACE_O_SUSPEND_SECCOMP)
    core_restore.restore_seccomp(st, plan.seccomp)
    if _last_of_mm(st, states):
        mem_restore.unmap_scratch(st)
    else:  # the others of its mm still need the scratch area: only stop using it
        remote.trampoline = None
        remote.syscall_ip = None
        remote.syscall_ip = remote.find_syscall_ip("[vdso]")
    for tid, thread in st.threads.items():
        core_restore.restore_registers(st, thread, p.thread_cores[tid], leader=False)
    core_restore.restore_registers(st, remote, p.core, leader=True)
    log.info("task %d: %d syscalls injected", p.pid, remote.injected)
