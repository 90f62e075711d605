"""Fixtures shared by the live test directories: C targets compiled with gcc and running target processes.

The C sources every directory uses live in ``tests/targets/``; a directory adds its own with a session
``targets`` fixture calling :func:`build_targets` (a fixture here) on its ``targets/`` folder. ``spawn``
starts one of them with its output in a log file; a directory that wants each target in its own session (and
the whole process group killed at the end) overrides ``spawn_new_session``. ``golden_copy`` gives a test a
writable copy of one of CRIU 4.2's golden dumps.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

SHARED_TARGETS = Path(__file__).parent / "targets"
GOLDEN = Path(os.environ.get("CRIU_GOLDEN") or "/work/shared/fixtures/criu-4.2")  # CRIU 4.2's own dumps


@pytest.fixture
def golden_copy(tmp_path: Path) -> Callable[..., Path]:
    """``golden_copy("tree")``: a writable copy of golden dump ``tree`` under tmp_path (``golden_copy("tree",
    "again")`` for a second one)."""

    def copy(name: str, dest: str | None = None) -> Path:
        dst = tmp_path / (dest or name)
        shutil.copytree(GOLDEN / name, dst)
        for p in dst.iterdir():
            p.chmod(0o644)
        return dst

    return copy


@pytest.fixture(scope="session", autouse=True)
def _session_subreaper() -> Iterator[None]:
    """The test process is a child subreaper for the whole run: PID 1 on this machine does not reap orphans,
    so whatever a target leaves behind (its children, restored tasks) comes back to us and is reaped here."""
    from criu_core.sys.subreaper import set_child_subreaper

    set_child_subreaper(True)
    yield
    _reap_children()


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    kids = [int(k) for k in f.read().split()]
                out.extend(kids)
                todo.extend(kids)
        except (OSError, ValueError):
            continue
    return out


def _reap_children() -> None:
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                return
        except ChildProcessError:
            return


@pytest.fixture(scope="session")
def build_targets(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path, str], dict[str, Path]]:
    """``build_targets(folder, name)`` compiles ``tests/targets/*.c`` and ``folder/*.c`` into a fresh temporary
    directory called ``name``; returns name → binary. Skips the test where gcc is missing."""

    def build(folder: Path, name: str) -> dict[str, Path]:
        if shutil.which("gcc") is None:
            pytest.skip("gcc not available")
        out = tmp_path_factory.mktemp(name)
        built = {}
        for src in sorted([*SHARED_TARGETS.glob("*.c"), *folder.glob("*.c")]):
            exe = out / src.stem
            subprocess.run(["gcc", "-O1", "-pthread", "-o", str(exe), str(src)], check=True)
            built[src.stem] = exe
        return built

    return build


class Target:
    """A running target process; output goes to a file (read with :meth:`lines`).

    With ``new_session`` it runs in its own session and :meth:`stop` kills its whole process group.
    """

    def __init__(self, argv: list[str], log: Path, *, new_session: bool = False) -> None:
        self.log = log
        self.new_session = new_session
        self.fh = open(log, "wb")  # noqa: SIM115 - kept open for the target's lifetime
        self.proc = subprocess.Popen(
            argv, stdout=self.fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=new_session
        )
        self.pid = self.proc.pid

    def lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()

    def wait_output(self, pred: Callable[[list[str]], bool], timeout: float = 5.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.lines()
            if pred(lines):
                return lines
            time.sleep(0.01)
        raise AssertionError(f"target {self.pid}: output never matched; last: {self.lines()[-3:]}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        # the target's children too (a forker's): they reparent to us, the session's subreaper, and are reaped
        victims = [*_descendants(self.pid), self.pid]
        try:
            if self.new_session:
                os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=5)
        except (subprocess.TimeoutExpired, ChildProcessError):
            pass
        _reap_children()
        self.fh.close()


@pytest.fixture
def spawn_new_session() -> bool:
    """Whether ``spawn`` starts targets in a session of their own (override in a directory's conftest)."""
    return False


@pytest.fixture
def spawn(tmp_path: Path, targets: dict[str, Path], spawn_new_session: bool) -> Iterator[Callable[..., Target]]:
    """``spawn(name, *args)`` starts target ``name`` (from the directory's ``targets`` fixture); all are killed
    at the end of the test."""
    started: list[Target] = []

    def _spawn(name: str, *args: str) -> Target:
        t = Target([str(targets[name]), *args], tmp_path / f"{name}-{len(started)}.log", new_session=spawn_new_session)
        started.append(t)
        return t

    yield _spawn
    for t in started:
        t.stop()
