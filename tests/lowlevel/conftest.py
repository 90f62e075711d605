"""Fixtures for the low-level tests: a subreaper harness, C targets compiled with gcc, live processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
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
def targets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Compile every targets/*.c once per session; name → binary."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc not available")
    out = tmp_path_factory.mktemp("targets")
    built = {}
    for src in sorted(TARGETS.glob("*.c")):
        exe = out / src.stem
        subprocess.run(["gcc", "-O1", "-pthread", "-o", str(exe), str(src)], check=True)
        built[src.stem] = exe
    return built


class Target:
    """A running target process; output goes to a file (read with :meth:`lines`)."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.log = log
        self.fh = open(log, "wb")  # noqa: SIM115 - kept open for the target's lifetime
        self.proc = subprocess.Popen(argv, stdout=self.fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid

    def lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()

    def wait_output(self, pred, timeout: float = 5.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.lines()
            if pred(lines):
                return lines
            time.sleep(0.01)
        raise AssertionError(f"target {self.pid} output never matched; last: {self.lines()[-3:]}")

    def stop(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except (subprocess.TimeoutExpired, ChildProcessError):
            pass
        self.fh.close()


@pytest.fixture
def spawn(tmp_path: Path, targets: dict[str, Path]) -> Iterator:
    started: list[Target] = []

    def _spawn(name: str, *args: str) -> Target:
        t = Target([str(targets[name]), *args], tmp_path / f"{name}-{len(started)}.log")
        started.append(t)
        return t

    yield _spawn
    for t in started:
        t.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="live tests need root")
        for item in items:
            if "live" in item.keywords:
                item.add_marker(skip)
