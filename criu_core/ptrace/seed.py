"""Seeds for restore: new traced processes with a chosen PID, and children/threads forked inside them.

``make_seed(pid)`` forks this process with ``clone3(set_tid=[pid])`` (through PyDLL, P13); the child
TRACEMEs and stops itself with SIGSTOP. The seed is then a copy of the restorer that the restore engine empties
and rebuilds with injected syscalls. ``PTRACE_O_EXITKILL`` makes seeds die if the restorer dies.
"""

from __future__ import annotations

import errno
import os
import signal
import struct

from criu_core.errors import CriuError, PidInUse, SyscallError
from criu_core.ptrace.events import wait_tid
from criu_core.ptrace.task import RemoteTask
from criu_core.sys import ptrace as pt
from criu_core.sys.clone import CLONE_THREAD_FLAGS, clone3_traced_seed, own_sigactions
from criu_core.sys.structs import CloneArgs

__all__ = ["SEED_OPTIONS", "clone_thread_in", "fork_child_in", "inject_clone3", "make_seed"]

SEED_OPTIONS = pt.PTRACE_O_EXITKILL | pt.PTRACE_O_TRACECLONE | pt.PTRACE_O_TRACEFORK | pt.PTRACE_O_TRACESYSGOOD
_SIGSTOP = int(signal.SIGSTOP)


def make_seed(pid: int) -> RemoteTask:
    """Create a stopped, traced child of this process whose PID is ``pid``.

    Raises :class:`PidInUse` if ``pid`` is taken. A PID can be taken without a /proc/PID entry: the PID of a dead
    process-group or session leader stays reserved while members of its group or session live (verified here:
    about 1 in 150 "free-looking" random PIDs on the project's machine). The returned task is in a SIGSTOP signal-delivery-stop with
    every signal blocked (its real mask is the restorer's, in ``saved_sigmask``), options
    EXITKILL|TRACECLONE|TRACEFORK set. The caller owns it: kill it (``os.kill`` + ``waitpid``) on failure.
    """
    # The child's dispositions are ours at the clone (its three raw syscalls change none): known without
    # injecting 62 rt_sigaction queries (criu_core.builtin.core_restore.restore_sigactions).
    inherited = own_sigactions()
    child = clone3_traced_seed(pid)
    try:
        st = wait_tid(child)
        if st is None or st.gone or st.kind != "signal" or st.sig != _SIGSTOP:
            raise CriuError(f"seed {child} did not stop as expected: {st}", pid=child)
        pt.setoptions(child, SEED_OPTIONS)
        task = RemoteTask(child, child, options=SEED_OPTIONS)
        task.block_signals()
        task.inherited_sigactions = inherited
        return task
    except BaseException:
        try:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0x40000000)
        except OSError:
            pass
        raise


def inject_clone3(
    task: RemoteTask,
    *,
    flags: int = 0,
    exit_signal: int = 0,
    set_tid: list[int] | tuple[int, ...] = (),
    tls: int = 0,
    child_tid: int = 0,
    parent_tid: int = 0,
    stack: int = 0,
    stack_size: int = 0,
    scratch: int | None = None,
) -> RemoteTask:
    """Inject ``clone3`` into ``task`` and return the new task, stopped and wrapped (signals blocked).

    ``set_tid`` lists the wanted id per pid-namespace level (innermost first, as the kernel wants); EEXIST
    becomes :class:`PidInUse`. ``scratch`` is an address of at least 256 writable bytes in the task to build
    the arguments in; without it a scratch page is mapped and unmapped around the call (a forked child then
    inherits nothing of it). ``task`` needs PTRACE_O_TRACECLONE/TRACEFORK (seeds have them), so the child is
    auto-attached.
    """
    args = CloneArgs(
        flags=flags,
        exit_signal=exit_signal,
        tls=tls,
        child_tid=child_tid,
        parent_tid=parent_tid,
        stack=stack,
        stack_size=stack_size,
    )
    tids = struct.pack(f"<{len(set_tid)}i", *set_tid)

    def run(addr: int) -> int:
        if set_tid:
            args.set_tid = addr + 128
            args.set_tid_size = len(set_tid)
        raw = bytes(args)
        task.write_mem(addr, raw + b"\0" * (128 - len(raw)) + tids)
        return task.syscall("clone3", addr, len(raw), check=False)

    if scratch is not None:
        ret = run(scratch)
    else:
        with task.scratch() as addr:
            ret = run(addr)
    if ret == -errno.EEXIST and set_tid:
        raise PidInUse(set_tid[0])
    if ret < 0:
        raise SyscallError(-ret, "clone3 (injected)", task.tid, detail=f"set_tid={list(set_tid)}")
    return task.wait_new_task(ret)


def fork_child_in(
    parent: RemoteTask, pid: int, exit_signal: int = int(signal.SIGCHLD), *, flags: int = 0, scratch: int | None = None
) -> RemoteTask:
    """Fork ``parent`` (a seed) into a child process with PID ``pid``; returns the stopped child."""
    return inject_clone3(parent, flags=flags, exit_signal=exit_signal, set_tid=[pid], scratch=scratch)


def clone_thread_in(
    task: RemoteTask, tid: int, *, tls: int, child_tid: int, flags: int = CLONE_THREAD_FLAGS, scratch: int | None = None
) -> RemoteTask:
    """Create a thread with TID ``tid`` in ``task``'s process (glibc's clone flags by default: SETTLS and
    CHILD_CLEARTID with the dumped ``tls`` (fs_base) and ``child_tid`` (clear_child_tid))."""
    return inject_clone3(task, flags=flags, set_tid=[tid], tls=tls, child_tid=child_tid, scratch=scratch)
