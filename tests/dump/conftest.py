"""Fixtures for the dump tests: a subreaper harness, C targets compiled with gcc, a plugin host, a dump helper."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from criu_core.context import DumpContext
from criu_core.dump import DumpResult, dump_tree
from criu_core.plugins import PluginHost
from criu_core.sys.proc import set_child_subreaper

TARGETS = Path(__file__).parent / "targets"


@pytest.fixture(scope="session", autouse=True)
def subreaper() -> None:
    if os.geteuid() != 0:
        pytest.skip("dump tests need root")
    set_child_subreaper(True)  # PID 1 on the project's machine does not reap orphans


@pytest.fixture(scope="session")
def targets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if shutil.which("gcc") is None:
        pytest.skip("gcc not available")
    out = tmp_path_factory.mktemp("dump-targets")
    built = {}
    for src in sorted(TARGETS.glob("*.c")):
        exe = out / src.stem
        subprocess.run(["gcc", "-O1", "-pthread", "-o", str(exe), str(src)], check=True)
        built[src.stem] = exe
    return built


class Target:
    """A running target in its own session, stdout to a log file."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.log = log
        self.fh = open(log, "wb")  # noqa: SIM115 - open for the target's lifetime
        self.proc = subprocess.Popen(
            argv, stdout=self.fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
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
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except (subprocess.TimeoutExpired, ChildProcessError):
            pass
        self.fh.close()


@pytest.fixture
def spawn(tmp_path: Path, targets: dict[str, Path]) -> Iterator[Callable[..., Target]]:
    started: list[Target] = []

    def _spawn(name: str, *args: str) -> Target:
        t = Target([str(targets[name]), *args], tmp_path / f"{name}-{len(started)}.log")
        started.append(t)
        return t

    yield _spawn
    for t in started:
        t.stop()


@pytest.fixture
def dump(tmp_path: Path) -> Callable[..., tuple[DumpResult, Path]]:
    def _dump(pid: int, **options: object) -> tuple[DumpResult, Path]:
        host = PluginHost(load_entry_points=False)
        opts = host.options.defaults()
        for k, v in options.items():
            setattr(opts, k, v)
        d = tmp_path / f"images-{pid}"
        ctx = DumpContext(options=opts, host=host, images_dir=d, root_pid=pid)
        try:
            return dump_tree(ctx), d
        finally:
            ctx.close()

    return _dump
