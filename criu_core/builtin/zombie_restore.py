"""Zombies: a dead, unreaped child comes back dead, with its PID, group, session and wait status.

CRIU (cr-restore.c, restore_one_zombie) forks the zombie like any child, lets it set its name and then exit
with the dumped code, or kill itself with the dumped signal (dumpable dropped first, so no core file; a
signal that is not fatal becomes SIGABRT). We do the same to the forked seed with injected syscalls, before
any task is built: the parent is still a clean seed with every signal blocked, so the SIGCHLD the exit sends
it is only queued, and is taken back here (CRIU's restorer swallows it the same way, in its own SIGCHLD
handler), leaving the parent's pending signals as dumped.
"""

from __future__ import annotations

import signal
import struct
from typing import Any

from criu_core.arch.x86_64.regs import set_syscall
from criu_core.arch.x86_64.syscalls import nr
from criu_core.errors import CriuError
from criu_core.ptrace.events import wait_tid
from criu_core.restore_plan import TaskState
from criu_core.sys import ptrace as pt

__all__ = ["end_helper", "make_zombie"]

PR_SET_NAME = 15
_WALL = 0x40000000
PR_SET_DUMPABLE = 4
_SIG_DFL_ACTION = bytes(32)  # struct kernel_sigaction: handler SIG_DFL, flags, restorer, mask all 0
# signals whose default action ends the task (kernel sig_fatal: neither ignored nor stop by default)
_NOT_FATAL = {signal.SIGCHLD, signal.SIGCONT, signal.SIGURG, signal.SIGWINCH, signal.SIGSTOP, signal.SIGTSTP,
              signal.SIGTTIN, signal.SIGTTOU}


def make_zombie(st: TaskState, parent: TaskState) -> None:
    """Turn the forked seed ``st`` into a zombie of ``parent`` with the dumped wait status."""
    p = st.plan
    remote, scratch = st.remote, st.scratch
    code = p.core.tc.exit_code
    sig = code & 0x7F
    scratch.reset()
    name = scratch.alloc(16, 8)
    remote.write_mem(name, p.core.tc.comm.encode()[:15] + b"\0")
    remote.syscall("prctl", PR_SET_NAME, name)
    if sig:
        if sig in _NOT_FATAL or sig >= 64:
            sig = int(signal.SIGABRT)  # as CRIU: "Exit with non fatal signal ignored"
        remote.syscall("prctl", PR_SET_DUMPABLE, 0)  # no core file
        act = scratch.alloc(32, 8)
        remote.write_mem(act, _SIG_DFL_ACTION)
        remote.syscall("rt_sigaction", sig, act, 0, 8)  # the seed is a copy of the restorer: reset it
        remote.inherited_sigactions = None
        last = (nr("kill"), (p.pid, sig))
    else:
        last = (nr("exit_group"), ((code >> 8) & 0xFF,))
    _run_to_exit(remote, *last)
    st.remote = None
    _take_sigchld(parent, p.pid)


def end_helper(helper: Any, parent: TaskState) -> None:
    """A helper that held a process group whose leader is gone (so that a member could join it) exits, and
    its parent reaps it with an injected wait4, as CRIU's restorer waits for its helpers; the group lives on
    in its members."""
    _run_to_exit(helper, nr("exit_group"), (0,))
    parent.remote.syscall("wait4", helper.pid, 0, _WALL, 0)
    _take_sigchld(parent, helper.pid)


def _run_to_exit(remote: Any, number: int, args: tuple[int, ...]) -> None:
    """Run a last syscall that does not come back: PTRACE_CONT, every signal unblocked, a fatal signal passed
    on at its signal-delivery-stop; our wait as its tracer then hands the dead task to its parent."""
    regs = remote.get_regs()
    set_syscall(regs, remote.syscall_ip, number, args)
    pt.setregs(remote.tid, regs)
    pt.setsigmask(remote.tid, 0)
    remote.close()
    pt.cont(remote.tid, 0)
    while True:
        stop = wait_tid(remote.tid)
        assert stop is not None
        if stop.gone:
            break
        pt.cont(remote.tid, stop.sig if stop.kind == "signal" else 0)


def _take_sigchld(parent: TaskState, pid: int) -> None:
    """Dequeue the SIGCHLD the zombie's exit queued in its (blocked) parent seed: rt_sigtimedwait, no wait."""
    scratch = parent.scratch
    scratch.reset()
    mask = scratch.alloc(8, 8)
    ts = scratch.alloc(16, 8)
    parent.remote.write_mem(mask, struct.pack("<Q", 1 << (signal.SIGCHLD - 1)))
    parent.remote.write_mem(ts, bytes(16))
    got = parent.remote.syscall("rt_sigtimedwait", mask, 0, ts, 8, check=False)
    if got != signal.SIGCHLD:
        raise CriuError(f"zombie {pid}: its parent {parent.plan.pid} got no SIGCHLD ({got})", pid=pid)
