"""Fixtures for the low-level tests: a subreaper harness, C targets compiled with gcc, live processes."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from criu_core.sys.proc import set_child_subreaper

TARGETS = Path(__file__).parent / "targets"
DATA = Path(__file__).parent / "data"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "live: needs root and real processes (ptrace)")


@pytest.fixture(scope="session", autouse=True)
def subreaper() -> None:
    # PID 1 on the project's machine does not reap orphans: every harness adopts its descendants.
    set_child_subreaper(True)


@pytest.fixture(scope="session")
def targets(build_targets: Callable[[Path, str], dict[str, Path]]) -> dict[str, Path]:
    """Compile ``targets/*.c`` and the shared ``tests/targets/*.c`` once per session; name → binary."""
    return build_targets(TARGETS, "targets")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="live tests need root")
        for item in items:
            if "live" in item.keywords:
                item.add_marker(skip)


def free_pid(avoid: tuple[int, ...] = ()) -> int:
    """A PID with no /proc entry, chosen at random away from the allocator's position. It may still be "in use"
    (EEXIST from clone3): a dead session or process-group leader's PID stays reserved while members live."""
    import random

    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())
    with open("/proc/sys/kernel/ns_last_pid") as f:
        last = int(f.read())
    while True:
        pid = random.randrange(1000, pid_max - 1)
        if abs(pid - last) > 2000 and pid not in avoid and not os.path.exists(f"/proc/{pid}"):
            return pid


@pytest.fixture
def at_free_pid():
    """``at_free_pid(fn)`` calls ``fn(pid)`` with free PIDs until it does not raise PidInUse; returns its result."""
    from criu_core.errors import PidInUse

    def _call(fn, avoid: tuple[int, ...] = ()):
        for _ in range(50):
            pid = free_pid(avoid)
            try:
                return fn(pid)
            except PidInUse:
                continue
        raise AssertionError("no usable free PID in 50 tries")

    return _call
