"""Sessions and process groups at restore: where each task is forked so that it ends in its session and group.

CRIU's prepare_pstree_ids and create_children_and_session, for seeds built one injected syscall at a time:
:func:`plan_sessions` decides, before anything is created, which tasks are forked before their parent's
setsid (``born``) and which by a helper (``forker``); the rest runs while :mod:`criu_core.restore` forks the
tree: :func:`start_session` in each new seed, :func:`child_session` and :func:`join_group` for each child, and
the helpers (a gone session leader's PID, a live leader's helper, a gone group leader) that fork tasks and exit.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from criu_core.builtin import core_restore
from criu_core.errors import PidInUse, UnsupportedResource
from criu_core.ptrace import fork_child_in
from criu_core.restore_plan import TaskState
from criu_core.sys.clone import CLONE_FILES, CLONE_FS, CLONE_SIGHAND, CLONE_VM

if TYPE_CHECKING:
    from criu_core.context import RestoreContext

__all__ = [
    "check_session_helper",
    "child_session",
    "forked_before_setsid",
    "group_helper",
    "group_made",
    "join_group",
    "leader_helper",
    "pid_exists",
    "pid_max",
    "plan_sessions",
    "session_helper",
    "shared_with_parent",
    "start_session",
]


def start_session(ctx: RestoreContext, st: TaskState, states: dict[int, TaskState]) -> None:
    """setsid/setpgid before anything else runs in the seed (P9: before it would fork its children), except
    a setsid that waits for the children that stayed in the root's earlier session (see _fork_children)."""
    p = st.plan
    st.sid_now = None
    if p.sid == p.pid:
        setsid_or_defer(ctx, st, states)
    elif ctx.options.shell_job:
        if p.pgid == p.pid:
            st.remote.syscall("setpgid", 0, 0)
    else:
        raise UnsupportedResource(
            "session",
            msg=f"task {p.pid} belongs to session {p.sid}, whose leader is not in the images: restore with --shell-job",
        )


def setsid_or_defer(ctx: RestoreContext, st: TaskState, states: dict[int, TaskState]) -> None:
    """setsid now, or once the children that stay in the task's present session are forked: a child made
    before its parent's setsid keeps the parent's earlier session (P forks C, then setsid: C's sid is not P's
    nor, after the setsid, its parent's), so it is forked from the seed before the seed's setsid."""
    if any(forked_before_setsid(ctx, c, st, states) for c in states.values() if c.plan.ppid == st.plan.pid):
        st.setsid_pending = True
        ctx.log.info(
            "task %d: setsid after forking the children that stay in session %s",
            st.plan.pid,
            st.sid_now if st.sid_now is not None else "of criu-py",
        )
        return
    st.remote.syscall("setsid")
    st.sid_now = st.plan.pid


def forked_before_setsid(ctx: RestoreContext, child: TaskState, st: TaskState, states: dict[int, TaskState]) -> bool:
    """``child`` is forked in the session its parent ``st`` is in before the parent's own setsid (its own
    session, or the one a descendant of it stays in: ``born``, see plan_sessions)."""
    c, p = child.plan, st.plan
    if p.sid != p.pid or child.forker:
        return False
    born = child.born if child.born is not None else (c.sid if c.sid != c.pid else None)
    return born is not None and born != p.pid and born == st.born


def plan_sessions(ctx: RestoreContext, states: dict[int, TaskState]) -> None:
    """Where each task is forked so that it ends in its session, before anything is created (CRIU's
    prepare_pstree_ids). A task whose session is neither its own nor its parent's:

    - if an ancestor leads that session, every task between them was forked before its own setsid, still in
      it: they are marked ``born`` in it (a task marked with two sessions cannot be made: refused, as CRIU);
      the root's earlier session is criu-py's, with --shell-job, when it is the same one;
    - else if the leader is gone (not in the images), a helper with its PID forks it (_fork_children);
    - else the leader lives elsewhere in the tree: as CRIU, a helper forked by the leader after its setsid
      forks the task and exits, and the task is reparented to its parent, which must be the child subreaper
      nearest to the leader (checked here; refused with the reason otherwise).
    """
    tasks = list(states.values())
    root = tasks[0]
    for st in tasks:
        p = st.plan
        if st is root or p.sid == p.pid or states[p.ppid].plan.sid == p.sid:
            continue
        chain: list[TaskState] = []
        a: TaskState | None = states[p.ppid]
        found = False
        while a is not None:
            ap = a.plan
            if p.sid in (ap.pid, ap.sid):
                found = True
                break
            if ap.sid != ap.pid:
                break  # a task that never called setsid forks its children in its own session only
            chain.append(a)
            a = states.get(ap.ppid) if a is not root else None
        else:  # past the root: criu-py's session, which the root is in before its setsid
            found = bool(ctx.options.shell_job) and p.sid not in states and p.sid == os.getsid(0)
        if found:
            for a in chain:
                if a.born is not None and a.born != p.sid:
                    raise UnsupportedResource(
                        "session",
                        msg=f"Can't figure out which sid ({a.born} or {p.sid}) the process {a.plan.pid} was born with",
                    )
                a.born = p.sid
            continue
        leader = states.get(p.sid)
        if leader is None or p.dead:
            continue  # a session whose leader is gone: a helper with its PID (check_session_helper refuses zombies)
        why = _leader_helper_why(st, leader, states)
        if why:
            raise UnsupportedResource(
                "session",
                msg=f"Can't find a session leader for {p.sid}: task {p.pid} is "
                f"in session {p.sid}, whose leader is alive in the tree but not an ancestor "
                f"of it, and a helper forked by {p.sid} cannot make it: {why}",
            )
        st.forker = leader.plan.pid


def _leader_helper_why(st: TaskState, leader: TaskState, states: dict[int, TaskState]) -> str | None:
    """Why a helper forked by the session ``leader`` cannot make ``st`` (None if it can): the helper's
    orphans go to the nearest child subreaper above it, which must be ``st``'s parent."""
    p = st.plan
    parent = states[p.ppid]
    if leader.plan.dead:
        return "the leader is a zombie"
    if not parent.plan.core.tc.child_subreaper:
        return f"its parent {p.ppid} is not a child subreaper, which the helper's orphan would be reparented to"
    if shared_with_parent(st, parent):
        return "it shares its parent's descriptor table, fs info or memory"
    if st.vm_from:
        return f"it shares the memory of task {st.vm_from}, which must make it"
    if p.parent_pages:
        # those pages are its parent's as dumped; the helper would give it the leader's memory instead
        return f"it leaves pages to its parent {p.ppid} (--dedup-cow-pages), but the helper is a copy of the leader"
    a: TaskState | None = leader
    while a is not None and a is not parent:
        if a.plan.core.tc.child_subreaper:
            return f"task {a.plan.pid}, a child subreaper, would adopt it instead of its parent {p.ppid}"
        a = states.get(a.plan.ppid)
    if a is None:
        return f"its parent {p.ppid} is not an ancestor of the leader"
    return None


def check_session_helper(child: TaskState, st: TaskState) -> None:
    c, p = child.plan, st.plan
    why = None
    if c.sid == os.getsid(0):
        why = "it is criu-py's own session, which only --shell-job lets the root's children stay in"
    elif not p.core.tc.child_subreaper:
        why = f"its parent {p.pid} is not a child subreaper, which the member of a session helper reparents to"
    elif c.dead:
        why = "it is a zombie"
    elif shared_with_parent(child, st):
        why = "it shares its parent's descriptor table, fs info or memory"
    if why:
        raise UnsupportedResource(
            "session",
            msg=f"task {c.pid} is in session {c.sid}, whose leader is not in "
            f"the images and not its parent's earlier session ({p.pid} is in {p.sid}); a "
            f"helper cannot make it: {why}",
        )


def session_helper(ctx: RestoreContext, st: TaskState, sid: int) -> object:
    """A session whose leader is gone: as CRIU, a helper with the leader's PID calls setsid and forks the
    members; it exits once every task exists, and its children reparent to ``st``, a child subreaper (made
    one now, before the helper ends; restore_task_misc sets it again later)."""
    st.remote.syscall("prctl", core_restore.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    st.scratch.reset()
    helper = fork_child_in(st.remote, sid, scratch=st.scratch.alloc(256, 64))
    st.helpers.append(helper)
    helper.syscall_ip, helper.trampoline = st.remote.syscall_ip, st.remote.trampoline
    helper.syscall("setsid")
    ctx.log.info("helper %d forked from %d for session %d", sid, st.plan.pid, sid)
    return helper


def leader_helper(ctx: RestoreContext, st: TaskState, states: dict[int, TaskState], adopted: list[TaskState]) -> object:
    """A helper forked by the session leader ``st`` (after its setsid) with a PID no task of the images uses, as
    CRIU's; it forks ``adopted`` in the session and exits once every task exists, and they are reparented to
    their parent, a child subreaper (made one now; restore_task_misc sets it again later)."""
    for child in adopted:
        states[child.plan.ppid].remote.syscall("prctl", core_restore.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    used = {t for s in states.values() for t in (*s.plan.tids, s.plan.pgid, s.plan.sid)}
    pid, top = max(used) + 1, pid_max()
    while True:
        pid = pid + 1 if pid + 1 < top else 301  # as CRIU's get_free_pid: above the reserved PIDs
        if pid in used or pid_exists(pid):
            continue
        st.scratch.reset()
        try:
            helper = fork_child_in(st.remote, pid, scratch=st.scratch.alloc(256, 64))
        except PidInUse:
            continue
        break
    st.helpers.append(helper)
    helper.syscall_ip, helper.trampoline = st.remote.syscall_ip, st.remote.trampoline
    ctx.log.info(
        "helper %d forked from %d for session %d (tasks %s)",
        pid,
        st.plan.pid,
        st.plan.pid,
        [c.plan.pid for c in adopted],
    )
    return helper


def pid_max() -> int:
    """This machine's kernel.pid_max (4194304, the kernel's ceiling, if it cannot be read)."""
    try:
        with open("/proc/sys/kernel/pid_max") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 1 << 22


def _leader_pending(states: dict[int, TaskState], pgid: int) -> bool:
    """The group's leader is a task of the tree not forked yet (it lives elsewhere in the tree)."""
    leader = states.get(pgid)
    return leader is not None and leader.remote is None


def join_group(ctx: RestoreContext, child: TaskState, states: dict[int, TaskState]) -> None:
    """setpgid into the dumped group now, or once its leader, forked later, has made it (group_made)."""
    pgid = child.plan.pgid
    if _leader_pending(states, pgid):
        states[pgid].joiners.append(child)
        ctx.log.info("task %d joins group %d once its leader is forked", child.plan.pid, pgid)
    else:
        child.remote.syscall("setpgid", 0, pgid)


def group_made(ctx: RestoreContext, leader: TaskState) -> None:
    """The members forked before their group's leader join the group, now that it exists (still seeds)."""
    for m in leader.joiners:
        m.remote.syscall("setpgid", 0, leader.plan.pid)
        ctx.log.info("task %d joined group %d", m.plan.pid, leader.plan.pid)
    leader.joiners.clear()


def pid_exists(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


def group_helper(ctx: RestoreContext, st: TaskState, pgid: int) -> None:
    """A process group whose leader is not in the images: as CRIU, a helper child with the leader's PID makes
    the group (setpgid) for the members to join; it exits and is reaped once every task exists."""
    st.scratch.reset()
    helper = fork_child_in(st.remote, pgid, scratch=st.scratch.alloc(256, 64))
    st.helpers.append(helper)
    helper.syscall_ip, helper.trampoline = st.remote.syscall_ip, st.remote.trampoline
    helper.syscall("setpgid", 0, 0)
    ctx.log.info("helper %d forked from %d for process group %d", pgid, st.plan.pid, pgid)


def shared_with_parent(child: TaskState, parent: TaskState) -> int:
    """CLONE_FILES / CLONE_FS / CLONE_VM / CLONE_SIGHAND where the dump saw the child share its parent's
    descriptor table, fs info, address space or signal handlers (equal ids, as CRIU derives its clone flags);
    the parent restores them, once, for both. (The kernel shares handlers only with the address space:
    CLONE_SIGHAND needs CLONE_VM, and execve unshares both.)"""
    c, p = child.plan, parent.plan
    if c.dead:
        return 0
    vm = c.ids.vm_id == p.ids.vm_id
    return (
        (CLONE_FILES if c.ids.files_id == p.ids.files_id else 0)
        | (CLONE_FS if c.ids.fs_id == p.ids.fs_id else 0)
        | (CLONE_VM if vm else 0)
        | (CLONE_SIGHAND if vm and c.ids.sighand_id == p.ids.sighand_id else 0)
    )


def child_session(
    ctx: RestoreContext, child: TaskState, parent: TaskState, states: dict[int, TaskState], early: bool, outside: bool
) -> None:
    c, p = child.plan, parent.plan
    if c.sid == c.pid:
        setsid_or_defer(ctx, child, states)
    elif early:  # in the parent's earlier session, where the parent's group is not (yet) p.pgid
        if c.pgid == c.pid:
            child.remote.syscall("setpgid", 0, 0)
        elif not outside:
            join_group(ctx, child, states)
    elif c.sid != p.sid:
        raise UnsupportedResource(
            "session",
            msg=f"task {c.pid} is in session {c.sid}, its parent {p.pid} in "
            f"{p.sid}: sessions inherited from outside the parent are not supported",
        )
    elif c.pgid == c.pid:
        child.remote.syscall("setpgid", 0, 0)
    elif c.pgid != p.pgid or _leader_pending(states, c.pgid):
        join_group(ctx, child, states)
