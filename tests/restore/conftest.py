"""Fixtures of the restore tests."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[1])


@pytest.fixture
def restored(subreaper: list[int]) -> Iterator[list[int]]:
    """PIDs a test restored (or might have): killed and *waited for* at teardown, so the next test finds the
    PID free.

    Only our own descendants are killed: a PID listed by a test whose restore failed may belong to someone
    else by then. (The ``subreaper`` fixture's reaping is WNOHANG: a task SIGKILLed an instant before is not a
    zombie yet, hence the blocking wait here.)
    """
    pids: list[int] = []
    yield pids
    ours = {os.getpid()}
    changed = True
    while changed:  # parents before children may be listed in any order: grow the set of our descendants
        changed = False
        for pid in pids:
            if pid not in ours and _ppid(pid) in ours:
                ours.add(pid)
                changed = True
    for pid in pids:
        if pid not in ours or pid == os.getpid():
            continue
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
    for pid in pids:
        if pid in ours and pid != os.getpid():
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
