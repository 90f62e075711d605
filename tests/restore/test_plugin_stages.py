"""Plugin stages of a restore: their order, a VMA claimant ahead of the built-in, a task hook injecting."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from criu_core.context import RestoreContext
from criu_core.hookspecs import hookimpl
from criu_core.options import Options
from criu_core.plugins import PluginHost
from criu_core.resources import MappedVma
from criu_core.restore import run

GOLDEN = Path("/work/shared/fixtures/criu-4.2")
pytestmark = [pytest.mark.root, pytest.mark.skipif(not GOLDEN.exists(), reason="golden dumps are not available")]


class HeapPlugin:
    """Claims the heap: maps it itself; and injects a getpid from criu_task_restore."""

    def __init__(self) -> None:
        self.claimed: list[int] = []
        self.getpid: int | None = None
        self.stages: list[str] = []

    @hookimpl
    def criu_vma_restore(self, ctx: Any, vma: Any, remote: Any) -> MappedVma | None:
        e = vma.entry
        if not e.status & 0x20:  # VMA_AREA_HEAP
            return None
        got = remote.syscall("mmap", e.start, e.end - e.start, 3, 0x10 | 0x2 | 0x20, -1, 0)
        assert got == e.start
        self.claimed.append(e.start)
        return MappedVma("heap-test")

    @hookimpl
    def criu_task_restore(self, ctx: Any, task: Any, remote: Any) -> None:
        self.getpid = remote.syscall("getpid")

    @hookimpl
    def criu_init(self, ctx: Any, stage: str) -> None:
        self.stages.append(f"init:{stage}")

    @hookimpl
    def criu_fini(self, ctx: Any, stage: str, success: bool) -> None:
        self.stages.append(f"fini:{stage}:{success}")


def _images(tmp_path: Path) -> Path:
    dst = tmp_path / "sleep"
    shutil.copytree(GOLDEN / "sleep", dst)
    for p in dst.iterdir():
        p.chmod(0o644)
    os.makedirs("/tmp/golden", exist_ok=True)
    return dst


def test_stage_order_and_claimants(tmp_path: Path, restored: list[int], hook_recorder: Any) -> None:
    if os.path.exists("/proc/31001"):
        pytest.skip("PID 31001 is taken")
    host = PluginHost(load_entry_points=False)
    plugin = HeapPlugin()
    host.register(plugin, "heap-test")
    rec = hook_recorder(host)
    ctx = RestoreContext(options=Options(restore_detached=True), host=host, images_dir=_images(tmp_path),
                         log=logging.getLogger("criu"))
    assert run(ctx) == 0
    restored.append(31001)
    names = rec.names()
    first = {n: names.index(n) for n in dict.fromkeys(names)}
    # criu_vma_restore is not in this order: as in CRIU (prepare_mappings before create_children_and_session),
    # a task's memory is mapped and filled before it forks its children, so they inherit it copy-on-write;
    # POST_FORKING comes once every task exists, before the pages hook, descriptors and the rest.
    order = ["criu_init", "criu_inventory_check", "criu_devices_restore_init", "criu_devices_post_fork",
             "criu_vma_pages_restore", "criu_file_restore", "criu_task_restore",
             "criu_devices_resume_late"]
    assert [first[n] for n in order] == sorted(first[n] for n in order), names
    heap = [line for line in Path("/proc/31001/maps").read_text().splitlines() if line.endswith("[heap]")]
    assert plugin.claimed and heap and heap[0].startswith(f"{plugin.claimed[0]:x}-")
    assert plugin.getpid == 31001
    assert plugin.stages == ["init:restore", "fini:restore:True"]


def test_plugin_failure_kills_the_seed_and_reaches_fini(tmp_path: Path, restored: list[int]) -> None:
    if os.path.exists("/proc/31001"):
        pytest.skip("PID 31001 is taken")
    host = PluginHost(load_entry_points=False)

    class Boom(HeapPlugin):
        @hookimpl
        def criu_devices_post_fork(self, ctx: Any) -> None:
            raise RuntimeError("device went away")

    plugin = Boom()
    host.register(plugin, "boom")
    ctx = RestoreContext(options=Options(restore_detached=True), host=host, images_dir=_images(tmp_path),
                         log=logging.getLogger("criu"))
    restored.append(31001)  # killed at teardown even if the restore wrongly succeeds
    with pytest.raises(Exception, match="plugin boom failed in criu_devices_post_fork: device went away"):
        run(ctx)
    assert not os.path.exists("/proc/31001")
    assert plugin.stages == ["init:restore", "fini:restore:False"]
