"""Decoding ``waitpid`` statuses of traced tasks, and waiting for one stop."""

from __future__ import annotations

import os
import signal

from criu_core.errors import NoSuchProcess, SyscallError
from criu_core.records import dataclass
from criu_core.sys.proc import WALL
from criu_core.sys.ptrace import PTRACE_EVENT_STOP

__all__ = ["Stop", "decode", "wait_tid"]

_SIGTRAP = int(signal.SIGTRAP)


@dataclass(frozen=True)
class Stop:
    """One waitpid result for a tracee.

    ``kind`` is ``"exited"`` (``code`` = exit status), ``"killed"`` (``sig`` = terminating signal),
    ``"event"`` (a PTRACE_EVENT_* stop: ``event`` set; for EVENT_STOP ``sig`` is SIGTRAP for an interrupt or
    the stop signal for a group-stop), or ``"signal"`` (a signal-delivery-stop of ``sig``).
    """

    tid: int
    kind: str
    sig: int = 0
    event: int = 0
    code: int = 0
    status: int = 0

    @property
    def gone(self) -> bool:
        return self.kind in ("exited", "killed")

    @property
    def interrupt(self) -> bool:
        """The PTRACE_INTERRUPT (or auto-attach) stop of a seized task."""
        return self.kind == "event" and self.event == PTRACE_EVENT_STOP and self.sig == _SIGTRAP

    @property
    def group_stop(self) -> bool:
        """A group-stop of a seized task (SIGSTOP/SIGTSTP/SIGTTIN/SIGTTOU)."""
        return self.kind == "event" and self.event == PTRACE_EVENT_STOP and self.sig != _SIGTRAP


def decode(tid: int, status: int) -> Stop:
    """Turn a raw wait status into a :class:`Stop`."""
    if os.WIFEXITED(status):
        return Stop(tid, "exited", code=os.WEXITSTATUS(status), status=status)
    if os.WIFSIGNALED(status):
        return Stop(tid, "killed", sig=os.WTERMSIG(status), status=status)
    if os.WIFSTOPPED(status):
        sig = os.WSTOPSIG(status)
        event = (status >> 16) & 0xFF
        if event:
            return Stop(tid, "event", sig=sig, event=event, status=status)
        return Stop(tid, "signal", sig=sig, status=status)
    return Stop(tid, "unknown", status=status)  # WIFCONTINUED is not requested


def wait_tid(tid: int, *, nohang: bool = False) -> Stop | None:
    """``waitpid(tid, __WALL)`` decoded; ``None`` if ``nohang`` and nothing is ready.

    ECHILD (not our tracee or child any more) becomes :class:`NoSuchProcess`.
    """
    try:
        pid, status = os.waitpid(tid, WALL | (os.WNOHANG if nohang else 0))
    except ChildProcessError as e:
        raise NoSuchProcess(tid, f"task {tid} is not traced by us (or already reaped)") from e
    except OSError as e:
        raise SyscallError(e.errno or 0, "waitpid", tid) from e
    if pid == 0:
        return None
    return decode(pid, status)
