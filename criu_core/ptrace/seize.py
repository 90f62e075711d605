"""Freezing a process tree with PTRACE_SEIZE + PTRACE_INTERRUPT, and releasing or killing it.

Order (reference §3, dump step 1): seize and interrupt every thread of every process, walking
``/proc/PID/task/*/children``, until a pass finds nothing new; collect each task's stop with
``waitpid(__WALL)``. Threads or children created while we freeze are caught two ways: a clone by an already
seized thread is reported as PTRACE_EVENT_CLONE/FORK (the new task is auto-attached and stops by itself), and a
clone by a not yet seized thread shows up in the next pass. A signal that stops a task before our interrupt
does (a signal-delivery-stop) is swallowed, then queued again to the task once it is frozen, so it is pending
in the images and delivered after a release.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from typing import Self

from criu_core.errors import AccessDenied, CriuError, NoSuchProcess, SyscallError
from criu_core.procfs import ProcFS
from criu_core.ptrace.events import Stop, wait_tid
from criu_core.ptrace.task import RemoteTask
from criu_core.records import dataclass, field
from criu_core.sys import ptrace as pt
from criu_core.sys.proc import tgkill

__all__ = ["SEIZE_OPTIONS", "FrozenTree", "collect_stop", "seize_tree"]

SEIZE_OPTIONS = pt.PTRACE_O_TRACECLONE | pt.PTRACE_O_TRACEFORK | pt.PTRACE_O_TRACESYSGOOD
_SIGTRAP = int(signal.SIGTRAP)
_SIGKILL = int(signal.SIGKILL)


@dataclass
class FrozenTree:
    """A frozen process tree. ``processes`` maps pid → tids (leader first), in tree order (root first, parents
    before children); ``tasks`` maps tid → :class:`RemoteTask`; ``zombies`` are pids that were already dead
    (not traced); ``parents`` maps each pid to its parent pid inside the tree."""

    root: int
    processes: dict[int, list[int]] = field(default_factory=dict)
    tasks: dict[int, RemoteTask] = field(default_factory=dict)
    zombies: list[int] = field(default_factory=list)
    parents: dict[int, int] = field(default_factory=dict)
    released: bool = False

    def threads(self, pid: int) -> list[RemoteTask]:
        return [self.tasks[t] for t in self.processes[pid]]

    def leader(self, pid: int) -> RemoteTask:
        return self.tasks[pid]

    def __iter__(self):
        return iter(self.tasks.values())

    def release(self) -> None:
        """Detach every task, leaving it as it was: registers and masks put back, no signal injected."""
        if self.released:
            return
        errors: list[BaseException] = []
        for task in self.tasks.values():
            try:
                task.restore_state()
                task.detach(0)
            except CriuError as e:
                if not isinstance(e, SyscallError) or e.errno != errno.ESRCH:
                    errors.append(e)
        self.released = True
        if errors:
            raise errors[0]

    def kill(self) -> None:
        """SIGKILL every process and reap every traced thread (non-leaders first, P4)."""
        if self.released:
            return
        for pid in self.processes:
            try:
                os.kill(pid, _SIGKILL)
            except ProcessLookupError:
                pass
        for pid, tids in self.processes.items():
            for tid in [t for t in tids if t != pid] + [pid]:
                _reap(tid)
                self.tasks[tid].close()
        self.released = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _reap(tid: int) -> None:
    while True:
        try:
            st = wait_tid(tid)
        except NoSuchProcess:
            return
        if st is None or st.gone:
            return
        # still a stop (e.g. an event queued before the kill): let it go on to die
        try:
            pt.cont(tid, 0)
        except SyscallError:
            pass


def collect_stop(tid: int, timeout: float) -> Stop:
    """Wait for the next stop of ``tid`` with a timeout (so a task stuck in an unkillable wait cannot hang us)."""
    st = wait_tid(tid, nohang=True)
    if st is not None:
        return st
    deadline = time.monotonic() + timeout
    delay = 0.00005
    while True:
        st = wait_tid(tid, nohang=True)
        if st is not None:
            return st
        if time.monotonic() > deadline:
            raise CriuError(f"task {tid} did not stop within {timeout:.0f}s", pid=tid)
        time.sleep(delay)
        delay = min(delay * 2, 0.005)


class _Seizer:
    def __init__(self, root: int, options: int, procfs: ProcFS, timeout: float) -> None:
        self.tree = FrozenTree(root)
        self.options = options
        self.procfs = procfs
        self.timeout = timeout
        self.order: list[int] = [root]
        self.pending: list[int] = []  # seized, stop not collected yet
        self.current: int | None = None  # being collected (may be running)

    def run(self) -> FrozenTree:
        while True:
            changed = self.scan()
            while self.pending:
                self.current = self.pending.pop(0)
                self.collect(self.current)
                self.current = None
                changed = True
            if not changed:
                break
        tree = self.tree
        for pid in list(self.order):
            if pid in tree.zombies:
                continue
            tids = [t for t in self.procfs_tids(pid) if t in tree.tasks]
            if pid in tree.tasks:
                tree.processes[pid] = tids
        for task in tree.tasks.values():
            self.requeue(task)
        return tree

    def procfs_tids(self, pid: int) -> list[int]:
        try:
            return self.procfs.tids(pid)
        except NoSuchProcess:
            return []

    def scan(self) -> bool:
        """One pass over the known processes; returns True if anything new was seized or found."""
        tree = self.tree
        changed = False
        i = 0
        while i < len(self.order):
            pid = self.order[i]
            i += 1
            if pid in tree.zombies:
                continue
            try:
                tids = self.procfs.tids(pid)
            except NoSuchProcess:
                if pid == tree.root:
                    raise
                self.order.remove(pid)
                i -= 1
                continue
            for tid in tids:
                if tid not in tree.tasks and self.seize(pid, tid):
                    changed = True
            try:
                children = self.procfs.children(pid)
            except NoSuchProcess:
                children = []
            for child in children:
                if child not in self.order:
                    self.order.append(child)
                    tree.parents[child] = pid
                    changed = True
        return changed

    def _task(self, tid: int, pid: int) -> RemoteTask:
        task = RemoteTask(tid, pid, procfs=self.procfs, options=self.options)
        task.step_unless_trap_ignored = True  # a dump never sets a signal disposition
        return task

    def seize(self, pid: int, tid: int) -> bool:
        try:
            pt.seize(tid, self.options)
        except SyscallError as e:
            if e.errno == errno.ESRCH:
                return False  # the thread is gone
            if e.errno == errno.EPERM:
                try:
                    state = self.procfs.stat(pid, tid).state
                    tracer = self.procfs.status(pid, tid).tracer_pid
                except NoSuchProcess:
                    return False
                if tracer == os.getpid() and state not in ("Z", "X"):
                    # forked or cloned by a task seized but not stopped yet: auto-attached (TRACEFORK/CLONE)
                    # before its creation event is collected; it stops with PTRACE_EVENT_STOP by itself
                    self.tree.tasks[tid] = self._task(tid, pid)
                    self.pending.append(tid)
                    return True
                if state in ("Z", "X"):
                    if tid == pid and pid not in self.tree.zombies:
                        self.tree.zombies.append(pid)
                    return False
                raise AccessDenied(tid, f"cannot seize task {tid}: already traced or not permitted") from e
            raise
        self.tree.tasks[tid] = self._task(tid, pid)
        try:
            pt.interrupt(tid)
        except SyscallError as e:
            if e.errno != errno.ESRCH:
                raise
        self.pending.append(tid)
        return True

    def collect(self, tid: int) -> None:
        task = self.tree.tasks[tid]
        while True:
            st = collect_stop(tid, self.timeout)
            if st.gone:
                del self.tree.tasks[tid]
                task.close()
                if tid == self.tree.root:
                    raise NoSuchProcess(tid, f"task {tid} exited while being seized")
                return
            if st.interrupt:
                return
            if st.group_stop:
                task.group_stop_sig = st.sig
                return
            if st.kind == "event" and st.event in (pt.PTRACE_EVENT_CLONE, pt.PTRACE_EVENT_FORK, pt.PTRACE_EVENT_VFORK):
                new = pt.geteventmsg(tid)
                if new not in self.tree.tasks:
                    if st.event == pt.PTRACE_EVENT_CLONE and self._is_thread(new, task.pid):
                        self.tree.tasks[new] = self._task(new, task.pid)
                    else:
                        self.tree.tasks[new] = self._task(new, new)
                        if new not in self.order:
                            self.order.append(new)
                            self.tree.parents[new] = task.pid
                    self.pending.append(new)  # auto-attached: it stops with PTRACE_EVENT_STOP by itself
            elif st.kind == "signal":
                task.stashed_signals.append(pt.getsiginfo(tid))
            # resume towards the interrupt stop; re-arm the interrupt in case this stop consumed it
            pt.cont(tid, 0)
            pt.interrupt(tid)

    def _is_thread(self, tid: int, pid: int) -> bool:
        try:
            return self.procfs.status(tid).tgid == pid
        except NoSuchProcess:
            return False

    def requeue(self, task: RemoteTask) -> None:
        """Queue swallowed signals again, with their full siginfo, from inside the task (a process may queue any
        si_code to itself); fall back to tgkill (siginfo reduced to SI_TKILL) if that fails."""
        while task.stashed_signals:
            info = task.stashed_signals.pop(0)
            sig = int.from_bytes(info[:4], "little")
            try:
                with task.scratch() as addr:
                    task.write_mem(addr, info)
                    task.syscall("rt_tgsigqueueinfo", task.pid, task.tid, sig, addr)
            except CriuError:
                tgkill(task.pid, task.tid, sig)
            task.requeued_signals.append(info)


def seize_tree(
    root_pid: int,
    *,
    suspend_seccomp: bool = True,
    procfs: ProcFS | None = None,
    timeout: float = 10.0,
) -> FrozenTree:
    """Freeze ``root_pid`` and all its descendants, every thread of each.

    All or nothing: if any task cannot be seized, everything already seized is detached unchanged and the
    error is raised (:class:`AccessDenied` for a task traced by someone else, :class:`NoSuchProcess` if the
    root vanished). ``suspend_seccomp`` adds PTRACE_O_SUSPEND_SECCOMP (P15) so injected syscalls pass the
    task's seccomp filters. Must be called from the thread that will do every later ptrace call.
    """
    options = SEIZE_OPTIONS | (pt.PTRACE_O_SUSPEND_SECCOMP if suspend_seccomp else 0)
    seizer = _Seizer(root_pid, options, procfs or ProcFS(), timeout)
    try:
        return seizer.run()
    except BaseException:
        _abort(seizer)
        raise


def _abort(seizer: _Seizer) -> None:
    """Detach everything seized so far, first collecting the stop of tasks that have not stopped yet (a running
    tracee cannot be detached)."""
    for tid, task in list(seizer.tree.tasks.items()):
        try:
            if tid in seizer.pending or tid == seizer.current:
                st = collect_stop(tid, 2.0)
                if st.gone:
                    continue
                if st.kind == "signal":
                    task.detach(st.sig)  # deliver it, as if we had never been there
                    continue
            task.restore_state()
            for info in task.stashed_signals:
                tgkill(task.pid, task.tid, int.from_bytes(info[:4], "little"))
            task.detach(0)
        except CriuError:
            continue
