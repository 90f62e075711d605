"""Seeds for ``--restore-sibling``: the restored root becomes a child of the restorer's parent.

:func:`make_sibling_seed` creates the child with CLONE_PARENT (it sleeps in ``pause()``), waits until it is
asleep there, then seizes it with the seed options and interrupts it: from then on it is an ordinary seed
(a :class:`~criu_core.ptrace.RemoteTask` in a ptrace-stop, every signal blocked). It is not our child, but as
its tracer we still wait for it, and kill and reap it on failure the same way.
"""

from __future__ import annotations

import os
import signal
import time

from criu_core.errors import CriuError
from criu_core.ptrace.events import wait_tid
from criu_core.ptrace.seed import SEED_OPTIONS
from criu_core.ptrace.task import RemoteTask
from criu_core.sys import ptrace as pt
from criu_core.sys.restore_clone import clone3_sibling_seed

__all__ = ["make_sibling_seed"]

_PAUSE_NR = 34
_WALL = 0x40000000


def _in_pause(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/syscall") as f:
            return f.read().split(" ", 1)[0] == str(_PAUSE_NR)
    except OSError:
        return False


def make_sibling_seed(pid: int, timeout: float = 5.0) -> RemoteTask:
    """A seed with PID ``pid`` whose parent is our parent, seized and stopped, signals blocked."""
    child = clone3_sibling_seed(pid)
    try:
        deadline = time.monotonic() + timeout
        while not _in_pause(child):
            if time.monotonic() > deadline:
                raise CriuError(f"sibling seed {child} did not reach pause() in {timeout}s", pid=child)
            time.sleep(0.0005)
        pt.seize(child, SEED_OPTIONS)
        pt.interrupt(child)
        st = wait_tid(child)
        if st is None or not st.interrupt:
            raise CriuError(f"sibling seed {child} did not stop as expected: {st}", pid=child)
        task = RemoteTask(child, child)
        task.block_signals()
        return task
    except BaseException:
        try:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, _WALL)  # as its tracer, if we got that far; its parent reaps it
        except OSError:
            pass
        raise
