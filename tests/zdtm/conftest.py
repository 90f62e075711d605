"""Fixtures of the ZDTM-like suite: the ``zdtm`` session helper and the engine-availability gate.

``ZDTM_NOCR=1`` runs every target without dumping or restoring it (the harness still snapshots and compares):
a self-test of the targets and the harness, usable before the engines exist.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import zdtmlib
from zdtmlib import Builder, CliResult, Target

NOCR = zdtmlib.NOCR


def _in_checkout(mod: str) -> bool:
    """Is ``mod`` part of the checkout the CLI runs from (PYTHONPATH=REPO), whatever this pytest imports?"""
    base = zdtmlib.REPO.joinpath(*mod.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def missing_engines() -> list[str]:
    return [m for m in ("criu_core.cli.main", "criu_core.dump", "criu_core.restore") if not _in_checkout(m)]


def need_engines() -> None:
    """Skip the calling test while the dump or restore engine (or the CLI) is not part of this checkout."""
    missing = missing_engines()
    if missing:
        pytest.skip("engine not merged yet: " + ", ".join(missing) + " not importable")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.root)


@pytest.fixture(scope="session")
def builder(tmp_path_factory: pytest.TempPathFactory) -> Builder:
    return Builder(tmp_path_factory.mktemp("zdtm-bin"))


class Zdtm:
    """What a test uses: start targets, run C/R cycles, call the CLI. Cleans up after itself."""

    def __init__(self, builder: Builder, tmp: Path, reaper: list[int]) -> None:
        self.builder = builder
        self.tmp = tmp
        self.reaper = reaper
        self.targets: list[Target] = []
        self.ctls: list[Path] = []
        self._n = 0

    # -- starting targets

    def ctl(self) -> Path:
        d = zdtmlib.new_ctl_dir()
        self.ctls.append(d)
        return d

    def start(self, name: str, *args: str, flags: Sequence[str] = (), ready: bool = True, **kw: object) -> Target:
        exe = self.builder.build(name, flags)
        return self._started(zdtmlib.start_process([str(exe), *args], name, self.ctl(), ready=False, **kw), ready)

    def start_python(self, prog: str, *args: str, ready: bool = True, **kw: object) -> Target:
        argv = [zdtmlib.SYS_PYTHON, "-c", prog, *args]
        return self._started(zdtmlib.start_process(argv, "python3", self.ctl(), ready=False, **kw), ready)

    def start_process_argv(self, argv: Sequence[str], name: str, **kw: object) -> Target:
        """Any command, without the READY protocol (the test polls for its own condition)."""
        return self._started(zdtmlib.start_process(argv, name, self.ctl(), ready=False, **kw), False)

    def _started(self, t: Target, ready: bool) -> Target:
        self.targets.append(t)  # killed and reaped by PID in close(), before the subreaper fixture ends
        if ready:
            try:
                t.wait_ready()
            except AssertionError:
                skip = [line for line in t.lines() if line.startswith("SKIP:")]
                if skip:
                    pytest.skip(skip[0][5:].strip())
                raise
        return t

    # -- the CLI

    def images(self, tag: str = "img") -> Path:
        self._n += 1
        d = self.tmp / f"{tag}{self._n}"
        d.mkdir()
        return d

    def dump(self, t: Target, images: Path | None = None, *extra: str) -> CliResult:
        need_engines()
        return zdtmlib.dump(t.pid, images or self.images(), *extra)

    def restore(self, images: Path, *extra: str, detach: bool = True) -> CliResult:
        need_engines()
        return zdtmlib.restore(images, *extra, detach=detach)

    def cycle(
        self,
        t: Target,
        dump_args: Sequence[str] = (),
        restore_args: Sequence[str] = (),
        allow: dict[str, str] | None = None,
    ) -> tuple[CliResult | None, CliResult | None]:
        """Dump (killing), reap, restore -d, check the PID is back and /proc matches; return both results."""
        before = zdtmlib.snapshot(t.pid)
        if NOCR:
            after = zdtmlib.snapshot(t.pid)
            diffs = zdtmlib.compare(before, after, allow)
            assert not diffs, "state changed without any C/R:\n" + "\n".join(diffs)
            return None, None
        images = self.images()
        tree = zdtmlib.descendants(t.pid)
        d = self.dump(t, images, *dump_args)
        assert d.rc == 0, d.explain() + "\n" + t.describe()
        self.forget(t)
        zdtmlib.wait_all_gone({*tree, *zdtmlib.dumped_pids(images)} - {t.pid})
        r = self.restore(images, *restore_args)
        assert r.rc == 0, r.explain() + "\n" + t.describe()
        t.restored = True
        assert zdtmlib.pid_alive(t.pid), f"PID {t.pid} is not running after restore\n" + r.explain()
        after = zdtmlib.snapshot(t.pid)
        diffs = zdtmlib.compare(before, after, allow)
        assert not diffs, f"/proc state of {t.name} (pid {t.pid}) differs after restore:\n" + "\n".join(diffs)
        return d, r

    def forget(self, t: Target, timeout: float = 10.0) -> None:
        """After a killing dump: reap the original task and wait until its PID is free."""
        if t.popen is not None and not t.restored:
            try:
                t.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"{t.name} (pid {t.pid}) still runs after the dump\n" + t.describe()) from None
        zdtmlib.wait_gone(t.pid, timeout)

    def close(self) -> None:
        for t in self.targets:
            tree = zdtmlib.descendants(t.pid)
            for pid in tree:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                os.kill(t.pid, signal.SIGKILL)
            except ProcessLookupError:
                zdtmlib.wait_all_gone(tree)
                continue
            if t.popen is not None and not t.restored:
                t.popen.wait(10)
            else:
                zdtmlib.reap(t.pid, 10)
            zdtmlib.wait_all_gone(tree)
        for d in self.ctls:
            shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def zdtm(builder: Builder, tmp_path: Path, subreaper: list[int]) -> Iterator[Zdtm]:
    z = Zdtm(builder, tmp_path, subreaper)
    yield z
    z.close()


@pytest.fixture
def engines() -> None:
    """Skip unless the engines (and the CLI) are importable, and in ZDTM_NOCR mode: such tests need C/R."""
    if NOCR:
        pytest.skip("ZDTM_NOCR=1: this test is about dump/restore themselves")
    need_engines()
