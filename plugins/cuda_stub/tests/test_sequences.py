"""The exact cuda-checkpoint call sequences of CRIU 4.2's CUDA plugin, driven through a real PluginHost.

Every test registers the plugin in a real host, builds real contexts, uses real target processes (``sleep``) for
the pids and the stand-in ``cuda-checkpoint`` of conftest.py; the hooks are called in the core's order
(DESIGN.md "Dump, in order": init, pause every task, checkpoint every task, fini).
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import criu_cuda_stub.plugin
import pytest
from criu_cuda_stub.cuda_checkpoint import (
    CudaCheckpointError,
    CudaCheckpointTimeout,
    CudaState,
    CudaUnavailable,
    parse_restore_tid,
    parse_state,
)

from criu_core.context import BaseContext, DumpContext, RestoreContext
from criu_core.errors import CriuError, MissingPluginError
from criu_core.plugins import PluginHost
from criu_core.resources import Task

R555 = "cuda-checkpoint --action flag not supported, an r555 or higher version driver is required"


@pytest.fixture
def host(plugin_host: PluginHost) -> PluginHost:
    plugin_host.register(criu_cuda_stub.plugin, "cuda_stub", distribution="criu-plugin-cuda-stub")
    return plugin_host


@pytest.fixture(autouse=True)
def _debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="criu")


class Tracer:
    """Stands in for the core's tracer behind ``ctx.thread_running``: records each (resume, interrupt) of a thread
    with how many cuda-checkpoint calls had run then (``calls``)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int, int, int]] = []
        self.calls: Callable[[], int] = lambda: 0

    def __call__(self, pid: int, tid: int) -> Any:
        tracer = self

        class _Thread:
            @contextmanager
            def running(self) -> Iterator[None]:
                tracer.events.append(("resume", pid, tid, tracer.calls()))
                yield
                tracer.events.append(("interrupt", pid, tid, tracer.calls()))

        return _Thread()

    def kinds(self) -> list[str]:
        return [e[0] for e in self.events]


def dump_ctx(host: PluginHost, tmp_path: Path, stage: str = "dump", **options: object) -> DumpContext:
    opts = host.options.defaults()
    for key, value in options.items():
        setattr(opts, key, value)
    ctx = DumpContext(options=opts, host=host, images_dir=tmp_path / "images", stage=stage)
    ctx.tracee = Tracer()  # the core sets it while it holds the seized tree
    return ctx


def restore_ctx(host: PluginHost, tmp_path: Path, plugins: list[str] | None, **options: object) -> RestoreContext:
    opts = host.options.defaults()
    for key, value in options.items():
        setattr(opts, key, value)
    inventory = None if plugins is None else SimpleNamespace(plugins_entry=SimpleNamespace(plugins=plugins))
    ctx = RestoreContext(options=opts, host=host, images_dir=tmp_path / "images", inventory=inventory)
    ctx.tracee = Tracer()  # the core sets it while it holds the restored threads
    return ctx


def fini(host: PluginHost, ctx: BaseContext, stage: str, ok: bool) -> None:
    """``host.fini``: reaches every plugin, logging failures instead of raising."""
    host.fini(ctx, stage, ok)


def run_dump(host: PluginHost, ctx: DumpContext, pids: list[int]) -> None:
    """The device-hook part of a dump, in the core's order; fini runs after success and failure."""
    tasks = [Task(pid=p) for p in pids]
    host.init(ctx, ctx.stage)
    ok = False
    try:
        for t in tasks:
            host.devices_pause(ctx, t)
        for t in tasks:
            host.devices_checkpoint(ctx, t)
        ok = True
    finally:
        fini(host, ctx, ctx.stage, ok)


def run_restore(host: PluginHost, ctx: RestoreContext, pids: list[int], *, inventory: object = None) -> None:
    host.init(ctx, "restore")
    host.inventory_check(ctx, inventory if inventory is not None else ctx.inventory)
    ok = False
    try:
        for p in pids:
            host.devices_resume_late(ctx, Task(pid=p))
        ok = True
    finally:
        fini(host, ctx, "restore", ok)


def dump_calls(p: int) -> list[str]:
    return ["-h", f"--get-restore-tid --pid {p}", f"--get-state --pid {p}", f"--action lock --pid {p} --timeout 10000",
            f"--get-restore-tid --pid {p}", f"--action checkpoint --pid {p}"]


# ---------------------------------------------------------------------------------------------------- dump


def test_plain_dump_locks_and_checkpoints_and_records_the_plugin(host, fake_cuda, fake_proc, spawn, tmp_path,
                                                                  caplog):
    pid = spawn()
    fake_cuda.mark_cuda(pid)
    ctx = dump_ctx(host, tmp_path)
    run_dump(host, ctx, [pid])
    assert fake_cuda.calls() == dump_calls(pid)
    assert ctx.tracee.kinds() == ["resume", "interrupt"], "checkpoint runs with the helper thread let run"
    assert fake_cuda.state(pid) == "checkpointed"  # the core kills the task; the GPU state is in its memory
    assert ctx.used_plugins == ["cuda_plugin"]
    assert host.check_required(ctx.used_plugins) == ["cuda_stub"]
    text = caplog.text
    assert "cuda_plugin: initialized: cuda_plugin stage dump" in text
    assert f"cuda_plugin: pausing devices on pid {pid}" in text
    assert f"cuda_plugin: Checkpointing CUDA devices on pid {pid} restore_tid {pid}" in text
    assert "cuda_plugin: finished cuda_plugin stage dump err 0" in text


def test_leave_running_dump_restores_and_unlocks(host, fake_cuda, fake_proc, spawn, tmp_path):
    pid = spawn()
    fake_cuda.mark_cuda(pid)
    run_dump(host, dump_ctx(host, tmp_path, leave_running=True), [pid])
    assert fake_cuda.calls() == dump_calls(pid) + [
        f"--get-restore-tid --pid {pid}", f"--action restore --pid {pid}", f"--action unlock --pid {pid}"]
    assert fake_cuda.state(pid) == "running"


def test_lock_timeout_is_the_dump_timeout_in_milliseconds(host, fake_cuda, fake_proc, spawn, tmp_path):
    pid = spawn()
    fake_cuda.mark_cuda(pid)
    run_dump(host, dump_ctx(host, tmp_path, timeout=3), [pid])
    assert f"--action lock --pid {pid} --timeout 3000" in fake_cuda.calls()


def test_tree_without_cuda_costs_one_query_per_task(host, fake_cuda, fake_proc, spawn, tmp_path):
    pids = [spawn() for _ in range(4)]
    ctx = dump_ctx(host, tmp_path, leave_running=True)
    run_dump(host, ctx, pids)
    assert fake_cuda.calls() == ["-h"] + [f"--get-restore-tid --pid {p}" for p in pids]
    assert ctx.used_plugins == []


def test_mixed_tree_only_touches_the_cuda_task(host, fake_cuda, fake_proc, spawn, tmp_path):
    plain, cuda = spawn(), spawn()
    fake_cuda.mark_cuda(cuda)
    run_dump(host, dump_ctx(host, tmp_path, leave_running=True), [plain, cuda])
    assert fake_cuda.calls() == [
        "-h",
        f"--get-restore-tid --pid {plain}",
        f"--get-restore-tid --pid {cuda}", f"--get-state --pid {cuda}",
        f"--action lock --pid {cuda} --timeout 10000",
        f"--get-restore-tid --pid {cuda}", f"--action checkpoint --pid {cuda}",
        f"--get-restore-tid --pid {cuda}", f"--action restore --pid {cuda}", f"--action unlock --pid {cuda}",
    ]


def test_already_locked_task_is_checkpointed_but_left_locked(host, fake_cuda, fake_proc, spawn, tmp_path):
    pid = spawn()
    fake_cuda.mark_cuda(pid, "locked")
    run_dump(host, dump_ctx(host, tmp_path, leave_running=True), [pid])
    assert fake_cuda.calls() == [
        "-h", f"--get-restore-tid --pid {pid}", f"--get-state --pid {pid}",
        f"--get-restore-tid --pid {pid}", f"--action checkpoint --pid {pid}",
        f"--get-restore-tid --pid {pid}", f"--action restore --pid {pid}"]
    assert fake_cuda.state(pid) == "locked"


def test_already_checkpointed_task_is_left_alone(host, fake_cuda, fake_proc, spawn, tmp_path):
    pid = spawn()
    fake_cuda.mark_cuda(pid, "checkpointed")
    run_dump(host, dump_ctx(host, tmp_path, leave_running=True), [pid])
    assert fake_cuda.calls() == ["-h", f"--get-restore-tid --pid {pid}", f"--get-state --pid {pid}",
                                 f"--get-restore-tid --pid {pid}", f"--get-restore-tid --pid {pid}"]
    assert fake_cuda.state(pid) == "checkpointed"


def test_unknown_state_fails_the_dump(host, fake_cuda, fake_proc, spawn, tmp_path):
    pid = spawn()
    fake_cuda.mark_cuda(pid, "confused")
    with pytest.raises(CudaCheckpointError, match=rf"Unknown CUDA state of task {pid}.*'confused'"):
        run_dump(host, dump_ctx(host, tmp_path), [pid])


def test_pre_dump_is_disabled(host, fake_cuda, fake_proc, spawn, tmp_path):
    pid = spawn()
    fake_cuda.mark_cuda(pid)
    ctx = dump_ctx(host, tmp_path, stage="pre-dump")
    run_dump(host, ctx, [pid])
    assert fake_cuda.calls() == []
    assert ctx.used_plugins == []


def test_host_fini_reaches_the_plugin(host, fake_cuda, fake_proc, spawn, tmp_path):
    pid = spawn()
    fake_cuda.mark_cuda(pid)
    ctx = dump_ctx(host, tmp_path, leave_running=True)
    host.init(ctx, "dump")
    host.devices_pause(ctx, Task(pid=pid))
    host.fini(ctx, "dump", True)
    assert fake_cuda.state(pid) == "running"


# ---------------------------------------------------------------------------------------------------- gating


def test_no_gpu_disables_the_plugin_without_a_call(host, fake_cuda, fake_proc, spawn, tmp_path, caplog):
    fake_proc.remove_gpus()
    pid = spawn()
    fake_cuda.mark_cuda(pid)
    run_dump(host, dump_ctx(host, tmp_path), [pid])
    assert fake_cuda.calls() == []
    assert "cuda_plugin: No GPU device found; CUDA plugin is disabled" in caplog.text


def test_fault_138_forces_the_plugin_on_without_a_gpu(host, fake_cuda, fake_proc, spawn, tmp_path, monkeypatch):
    fake_proc.remove_gpus()
    monkeypatch.setenv("CRIU_FAULT", "138")
    pid = spawn()
    fake_cuda.mark_cuda(pid)
    run_dump(host, dump_ctx(host, tmp_path), [pid])
    assert fake_cuda.calls() == dump_calls(pid)


def test_proc_root_option_wins_over_the_environment(host, fake_cuda, fake_proc, spawn, tmp_path, monkeypatch):
    monkeypatch.setenv("CRIU_PY_CUDA_PROC_ROOT", str(tmp_path / "nowhere"))
    pid = spawn()
    fake_cuda.mark_cuda(pid)
    run_dump(host, dump_ctx(host, tmp_path, cuda_proc_root=str(fake_proc.root)), [pid])
    assert fake_cuda.calls() == dump_calls(pid)


def test_missing_binary_warns_and_dumps_a_plain_task(host, fake_cuda, fake_proc, spawn, tmp_path, caplog):
    fake_cuda.remove()
    pid = spawn()
    fake_proc.copy_maps(pid)
    ctx = dump_ctx(host, tmp_path)
    run_dump(host, ctx, [pid])
    assert fake_cuda.calls() == []
    assert "cuda_plugin: check that cuda-checkpoint is present in $PATH" in caplog.text
    assert ctx.used_plugins == []


def test_missing_binary_fails_the_dump_of_a_task_using_cuda(host, fake_cuda, fake_proc, spawn, tmp_path):
    fake_cuda.remove()
    pid = spawn()
    fake_proc.copy_maps(pid, nvidia=True)
    with pytest.raises(CudaUnavailable) as info:
        run_dump(host, dump_ctx(host, tmp_path), [pid])
    msg = str(info.value)
    assert f"task {pid} uses CUDA (it maps /dev/nvidiactl)" in msg
    assert "cuda-checkpoint is present in $PATH" in msg
    assert info.value.pid == pid


def test_old_binary_warns_r555_and_fails_a_cuda_task(host, fake_cuda, fake_proc, spawn, tmp_path, caplog):
    fake_cuda.install_old()
    plain, cuda = spawn(), spawn()
    fake_proc.copy_maps(plain)
    fake_proc.copy_maps(cuda, nvidia=True)
    run_dump(host, dump_ctx(host, tmp_path), [plain])
    assert fake_cuda.calls() == ["-h"]
    assert f"cuda_plugin: {R555}. Disabling CUDA plugin" in caplog.text
    with pytest.raises(CudaUnavailable, match=rf"task {cuda} uses CUDA .*r555 or higher"):
        run_dump(host, dump_ctx(host, tmp_path), [plain, cuda])


# ---------------------------------------------------------------------------------------------------- errors


def test_failing_lock_names_task_action_and_output(host, fake_cuda, fake_proc, spawn, tmp_path, caplog):
    pid = spawn()
    fake_cuda.mark_cuda(pid)
    fake_cuda.fail("lock")
    with pytest.raises(CudaCheckpointError) as info:
        run_dump(host, dump_ctx(host, tmp_path), [pid])
    msg = str(info.value)
    assert f"cuda-checkpoint --action lock failed on task {pid} (exit status 1)" in msg
    assert "CUDA_ERROR_INVALID_VALUE (told to fail)" in msg
    assert (info.value.pid, info.value.action, info.value.returncode) == (pid, "--action lock", 1)
    # Never locked, so never tracked: fini has nothing to undo.
    assert fake_cuda.calls() == dump_calls(pid)[:4]
    assert "cuda_plugin: PAUSE_DEVICES failed with" in caplog.text


def test_failed_dump_unlocks_the_tasks_already_locked(host, fake_cuda, fake_proc, spawn, tmp_path):
    first, second = spawn(), spawn()
    fake_cuda.mark_cuda(first)
    fake_cuda.mark_cuda(second)
    fake_cuda.fail("lock", second)
    with pytest.raises(CudaCheckpointError, match=f"task {second}"):
        run_dump(host, dump_ctx(host, tmp_path), [first, second])
    assert fake_cuda.calls() == [
        "-h",
        f"--get-restore-tid --pid {first}", f"--get-state --pid {first}",
        f"--action lock --pid {first} --timeout 10000",
        f"--get-restore-tid --pid {second}", f"--get-state --pid {second}",
        f"--action lock --pid {second} --timeout 10000",
        f"--get-restore-tid --pid {first}", f"--action unlock --pid {first}",
    ]
    assert fake_cuda.state(first) == "running"


def test_failing_checkpoint_unlocks_in_fini(host, fake_cuda, fake_proc, spawn, tmp_path, caplog):
    pid = spawn()
    fake_cuda.mark_cuda(pid)
    fake_cuda.fail("checkpoint")
    with pytest.raises(CudaCheckpointError, match=rf"--action checkpoint failed on task {pid}"):
        run_dump(host, dump_ctx(host, tmp_path), [pid])
    assert fake_cuda.calls() == dump_calls(pid) + [f"--get-restore-tid --pid {pid}", f"--action unlock --pid {pid}"]
    assert fake_cuda.state(pid) == "running"
    assert "cuda_plugin: CHECKPOINT_DEVICES failed with" in caplog.text
    assert "finished cuda_plugin stage dump err -1" in caplog.text


def test_hanging_checkpoint_is_killed_and_reported(host, fake_cuda, fake_proc, spawn, tmp_path):
    pid = spawn()
    fake_cuda.mark_cuda(pid)
    fake_cuda.hang("checkpoint")
    t0 = time.monotonic()
    with pytest.raises(CudaCheckpointTimeout) as info:
        run_dump(host, dump_ctx(host, tmp_path, cuda_action_timeout=1.0), [pid])
    assert time.monotonic() - t0 < 5
    msg = str(info.value)
    assert f"cuda-checkpoint --action checkpoint on task {pid} did not finish within 1 s and was killed" in msg
    assert f"checkpoint in progress on {pid}" in msg  # what it had said before it hung
    hung = fake_cuda.hang_pid()
    assert hung is not None and not _alive(hung), "the stand-in's child holding the pipe was killed too"
    # fini then unlocks the task that was locked (the hang was only in checkpoint)
    assert fake_cuda.calls() == dump_calls(pid) + [f"--get-restore-tid --pid {pid}", f"--action unlock --pid {pid}"]
    assert fake_cuda.state(pid) == "running"


def test_hanging_lock_is_killed_after_its_own_timeout(host, fake_cuda, fake_proc, spawn, tmp_path, caplog):
    pid = spawn()
    fake_cuda.mark_cuda(pid)
    fake_cuda.hang("lock")
    t0 = time.monotonic()
    with pytest.raises(CudaCheckpointTimeout, match=rf"--action lock on task {pid} did not finish within 2 s"):
        run_dump(host, dump_ctx(host, tmp_path, timeout=1), [pid])
    assert time.monotonic() - t0 < 6
    # As CRIU after its alarm: try to unlock (here the task was never locked, so the unlock is refused).
    assert fake_cuda.calls() == dump_calls(pid)[:3] + [f"--action lock --pid {pid} --timeout 1000",
                                                       f"--action unlock --pid {pid}"]
    assert f"pid {pid} may hang" in caplog.text


def test_hanging_detection_is_killed(host, fake_cuda, fake_proc, spawn, tmp_path):
    pid = spawn()
    fake_cuda.hang("get-restore-tid")
    t0 = time.monotonic()
    with pytest.raises(CudaCheckpointTimeout, match=rf"--get-restore-tid on task {pid} did not finish within 1 s"):
        run_dump(host, dump_ctx(host, tmp_path, timeout=1), [pid])
    assert time.monotonic() - t0 < 5


def test_errors_pickle_with_their_fields():
    err = CudaCheckpointError(42, "--action lock", "boom", 1)
    back = pickle.loads(pickle.dumps(err))
    assert (str(back), back.pid, back.action, back.returncode) == (str(err), 42, "--action lock", 1)
    assert isinstance(back, CriuError)


# ---------------------------------------------------------------------------------------------------- seam


def test_checkpoint_and_resume_run_inside_the_cores_thread_seam(host, fake_cuda, fake_proc, spawn, tmp_path,
                                                                caplog):
    pid = spawn()
    fake_cuda.mark_cuda(pid)

    ctx = dump_ctx(host, tmp_path, leave_running=True)
    ctx.tracee.calls = lambda: len(fake_cuda.calls())
    run_dump(host, ctx, [pid])
    # checkpoint is call 6, restore+unlock are calls 8-9: each inside a resume/interrupt pair
    assert ctx.tracee.events == [("resume", pid, pid, 5), ("interrupt", pid, pid, 6),
                                 ("resume", pid, pid, 7), ("interrupt", pid, pid, 9)]


def test_without_a_traced_tree_checkpoint_fails(host, fake_cuda, fake_proc, spawn, tmp_path):
    pid = spawn()
    fake_cuda.mark_cuda(pid)
    ctx = dump_ctx(host, tmp_path)
    ctx.tracee = None  # what a context outside dump/restore has: the helper thread cannot be let run
    with pytest.raises(CriuError, match="no traced tree"):
        run_dump(host, ctx, [pid])
    assert "--action checkpoint --pid" not in " ".join(fake_cuda.calls())


# ---------------------------------------------------------------------------------------------------- restore


def test_restore_restores_and_unlocks(host, fake_cuda, fake_proc, spawn, tmp_path, caplog):
    pid = spawn()
    fake_cuda.mark_cuda(pid, "checkpointed")
    ctx = restore_ctx(host, tmp_path, ["cuda_plugin"])
    ctx.tracee.calls = lambda: len(fake_cuda.calls())
    run_restore(host, ctx, [pid])
    assert fake_cuda.calls() == ["-h", f"--get-restore-tid --pid {pid}", f"--action restore --pid {pid}",
                                 f"--action unlock --pid {pid}"]
    # restore and unlock run inside one resume/interrupt of the helper thread
    assert ctx.tracee.events == [("resume", pid, pid, 2), ("interrupt", pid, pid, 4)]
    assert fake_cuda.state(pid) == "running"
    assert f"cuda_plugin: resuming devices on pid {pid}" in caplog.text


def test_restore_gates_on_the_inventory_when_init_ran_before_it_was_read(host, fake_cuda, fake_proc, spawn,
                                                                         tmp_path):
    pid = spawn()
    fake_cuda.mark_cuda(pid, "checkpointed")
    ctx = restore_ctx(host, tmp_path, None)
    host.init(ctx, "restore")
    assert fake_cuda.calls() == []
    inventory = SimpleNamespace(plugins_entry=SimpleNamespace(plugins=["cuda_plugin"]))
    run_restore(host, ctx, [pid], inventory=inventory)
    assert fake_cuda.calls() == ["-h", f"--get-restore-tid --pid {pid}", f"--action restore --pid {pid}",
                                 f"--action unlock --pid {pid}"]


def test_restore_of_images_without_cuda_plugin_makes_no_call(host, fake_cuda, fake_proc, spawn, tmp_path):
    pid = spawn()
    fake_cuda.mark_cuda(pid, "checkpointed")
    run_restore(host, restore_ctx(host, tmp_path, ["amdgpu_plugin"]), [pid])
    run_restore(host, restore_ctx(host, tmp_path, []), [pid])
    assert fake_cuda.calls() == []


def test_restore_of_plain_images_works_without_the_binary(host, fake_cuda, fake_proc, spawn, tmp_path):
    fake_cuda.remove()
    fake_proc.remove_gpus()
    run_restore(host, restore_ctx(host, tmp_path, []), [spawn()])


@pytest.mark.parametrize("broken", ["missing", "old", "no-gpu"])
def test_restore_of_cuda_images_is_refused_where_the_plugin_cannot_work(host, fake_cuda, fake_proc, spawn,
                                                                        tmp_path, broken):
    {"missing": fake_cuda.remove, "old": fake_cuda.install_old, "no-gpu": fake_proc.remove_gpus}[broken]()
    ctx = restore_ctx(host, tmp_path, ["cuda_plugin"])
    with pytest.raises(CudaUnavailable, match="the images hold CUDA state .* cannot be restored here"):
        host.init(ctx, "restore")


def test_restore_failure_names_the_task(host, fake_cuda, fake_proc, spawn, tmp_path, caplog):
    pid = spawn()
    fake_cuda.mark_cuda(pid, "checkpointed")
    fake_cuda.fail("restore")
    with pytest.raises(CudaCheckpointError, match=rf"--action restore failed on task {pid}"):
        run_restore(host, restore_ctx(host, tmp_path, ["cuda_plugin"]), [pid])
    assert "cuda_plugin: RESUME_DEVICES RESTORE failed with" in caplog.text


def test_images_needing_the_plugin_are_refused_by_a_host_without_it(plugin_host):
    with pytest.raises(MissingPluginError, match="cuda_stub.*criu-plugin-cuda-stub"):
        plugin_host.check_required(["cuda_plugin"])


# ---------------------------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("text, state", [("running\n", CudaState.RUNNING), ("locked", CudaState.LOCKED),
                                         ("checkpointed\n", CudaState.CHECKPOINTED), ("Running", CudaState.UNKNOWN),
                                         ("", CudaState.UNKNOWN)])
def test_parse_state(text, state):
    assert parse_state(text) is state


@pytest.mark.parametrize("text, tid", [("1234\n", 1234), ("  77 ", 77), ("", None), ("error", None), ("0", None)])
def test_parse_restore_tid(text, tid):
    assert parse_restore_tid(text) == tid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie counts as dead
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False



def test_zero_timeout_falls_back_to_the_default(host, fake_cuda, fake_proc, spawn, tmp_path):
    pid = spawn()
    fake_cuda.mark_cuda(pid)
    run_dump(host, dump_ctx(host, tmp_path, timeout=0, cuda_action_timeout=0), [pid])
    assert fake_cuda.calls() == dump_calls(pid)
