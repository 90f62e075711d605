"""Fixtures for the dump tests: a subreaper harness, C targets (``targets/`` and the shared ``tests/targets/``,
compiled by ``tests/conftest.py``), a plugin host, a dump helper."""

from __future__ import annotations

import os
from collections.abc import Callable
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
def targets(build_targets: Callable[[Path, str], dict[str, Path]]) -> dict[str, Path]:
    return build_targets(TARGETS, "dump-targets")


@pytest.fixture
def spawn_new_session() -> bool:
    return True  # each target in its own session; stop() kills the whole group (forker's children too)


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
