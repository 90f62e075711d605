"""Fixtures of the restore tests."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest


@pytest.fixture
def restored(subreaper: list[int]) -> Iterator[list[int]]:
    """PIDs a test restored: killed and *waited for* at teardown, so the next test finds the PID free.

    (The ``subreaper`` fixture's reaping is WNOHANG: a task SIGKILLed an instant before is not a zombie yet.)
    """
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
