"""The pytest plugin shipped by criu-core (see :mod:`criu_core.testing`)."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from criu_core.testing.recorder import HookRecorder


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "root: needs root and the real kernel interfaces (ptrace, /proc, clone3)")
    config.addinivalue_line("markers", "device(path): needs the device node PATH (e.g. /dev/kfd)")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("root") and os.geteuid() != 0:
        pytest.skip("needs root")
    for mark in item.iter_markers("device"):
        path = mark.args[0] if mark.args else ""
        if not os.path.exists(path):
            pytest.skip(f"device {path} is not present on this machine")


@pytest.fixture
def plugin_host():
    """A fresh PluginHost with the built-in handlers only."""
    from criu_core.plugins import PluginHost

    return PluginHost(load_entry_points=False)


@pytest.fixture
def installed_plugin_host():
    """A PluginHost with every installed plugin distribution loaded."""
    from criu_core.plugins import PluginHost

    return PluginHost()


@pytest.fixture
def hook_recorder() -> Iterator[Callable[[object], HookRecorder]]:
    """``rec = hook_recorder(host)`` records every hook call the host makes."""
    recorders: list[HookRecorder] = []

    def attach(host: object) -> HookRecorder:
        rec = HookRecorder().attach(host)
        recorders.append(rec)
        return rec

    yield attach
    for rec in recorders:
        rec.detach()


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    """An empty image directory."""
    d = tmp_path / "images"
    d.mkdir()
    return d


@pytest.fixture
def recorded_proc(tmp_path: Path) -> Callable[[dict[str, str | bytes]], Path]:
    """``root = recorded_proc({"123/stat": "...", "123/status": "..."})`` builds a fake /proc tree."""

    def build(files: dict[str, str | bytes]) -> Path:
        root = tmp_path / "proc"
        for rel, content in files.items():
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                p.write_bytes(content)
            else:
                p.write_text(content)
        return root

    return build


@pytest.fixture
def subreaper() -> Iterator[list[int]]:
    """Make this process a child subreaper; yields a list where a test appends PIDs to kill at teardown."""
    from criu_core.sys.subreaper import set_child_subreaper

    set_child_subreaper(True)
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _reap_all()


def _reap_all() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
