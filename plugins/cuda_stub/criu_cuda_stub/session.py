"""One run of the cuda_stub plugin: gating, per-task tracking and the call sequences of CRIU 4.2's CUDA plugin.

The state of a run (is the plugin usable, which tasks are CUDA tasks, what state each was in) lives in the
context's stash under :data:`SESSION`; nothing is kept in module globals.

Gating, in CRIU's order (``cuda_plugin.c: cuda_plugin_init``):

1. stage ``pre-dump`` → off (CUDA state cannot be pre-dumped); stages other than dump/restore → off.
2. stage ``restore`` → off unless the images' inventory lists ``cuda_plugin``.
3. no GPU under ``<proc root>/driver/nvidia/gpus/`` → off, with CRIU's info line (``CRIU_FAULT=138`` bypasses it).
4. ``cuda-checkpoint -h`` cannot run → warning; its usage lacks ``--action`` → the r555 warning.

Where CRIU then simply disables itself, we distinguish *off* (nothing here can be CUDA: zero calls, zero cost) from
*unusable* (a GPU is present but the utility is missing or too old). An unusable plugin cannot ask
``cuda-checkpoint`` which tasks use CUDA, so at pause it reads ``/proc/PID/maps``: a task that maps a
``/dev/nvidia*`` device (done by the driver when a CUDA context exists) fails the dump with the reason, instead of
being dumped without its device state. ``libcuda.so`` alone is not evidence: a loaded library without a context has
no device state. On restore, images that list ``cuda_plugin`` on a machine where the plugin is off or unusable are
refused before anything is created (CRIU would restore a task that stays locked forever).

Cost for a tree without CUDA tasks: zero calls when off; one ``--get-restore-tid`` per task when enabled (at pause;
CRIU asks again at checkpoint, we remember the answer); one read of ``maps`` per task when unusable.
"""

from __future__ import annotations

import contextlib
import enum
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from criu_core.errors import CriuError
from criu_core.records import dataclass, field
from criu_core.stash import StashKey
from criu_cuda_stub.cuda_checkpoint import (
    CudaCheckpoint,
    CudaCheckpointError,
    CudaCheckpointTimeout,
    CudaState,
    CudaUnavailable,
)

if TYPE_CHECKING:
    from criu_core.context import BaseContext, DumpContext, RestoreContext

__all__ = [
    "DEFAULT_ACTION_TIMEOUT_S",
    "DEFAULT_TIMEOUT_S",
    "FAULT_FORCE_ENABLE",
    "INVENTORY_NAME",
    "PROC_ROOT_ENV",
    "SESSION",
    "CudaSession",
    "Mode",
    "TaskRecord",
    "checkpoint_task",
    "cuda_evidence",
    "finish",
    "inventory_plugins",
    "pause_task",
    "resume_task",
    "session_of",
    "start",
]

INVENTORY_NAME = "cuda_plugin"  # CRIU 4.2's plugin name, written to inventory.plugins_entry
PROC_ROOT_ENV = "CRIU_PY_CUDA_PROC_ROOT"
FAULT_FORCE_ENABLE = "138"  # CRIU_FAULT=138: FI_PLUGIN_CUDA_FORCE_ENABLE, skip the GPU directory check
DEFAULT_TIMEOUT_S = 10.0  # CRIU's --timeout default
DEFAULT_ACTION_TIMEOUT_S = 300.0
LOG = "cuda_plugin: "

class Mode(enum.Enum):
    ENABLED = "enabled"
    OFF = "off"  # nothing to do, zero calls
    UNUSABLE = "unusable"  # a GPU exists but cuda-checkpoint cannot be used


@dataclass
class TaskRecord:
    """A CUDA task met at pause (CRIU's ``struct pid_info``)."""

    pid: int
    restore_tid: int
    initial: CudaState
    checkpointed: bool = False


@dataclass
class CudaSession:
    """The plugin's state for one run."""

    stage: str
    mode: Mode
    reason: str
    tool: CudaCheckpoint
    proc_root: Path
    lock_timeout_ms: int
    tasks: dict[int, TaskRecord] = field(default_factory=dict)  # CUDA tasks, in pause order
    seen: set[int] = field(default_factory=set)  # every pid met at pause
    finished: bool = False


SESSION: StashKey[CudaSession] = StashKey("cuda_stub.session")


# ---------------------------------------------------------------------------------------------------- set-up


def _options(ctx: BaseContext) -> tuple[Path, float, float]:
    opts = ctx.options
    root = opts.get("cuda_proc_root") or os.environ.get(PROC_ROOT_ENV) or "/proc"
    timeout = float(opts.get("timeout", DEFAULT_TIMEOUT_S))
    action_timeout = float(opts.get("cuda_action_timeout", DEFAULT_ACTION_TIMEOUT_S))
    # A zero or negative value would kill every call at once: fall back to the defaults.
    if timeout <= 0:
        timeout = DEFAULT_TIMEOUT_S
    if action_timeout <= 0:
        action_timeout = DEFAULT_ACTION_TIMEOUT_S
    return Path(root), timeout, action_timeout


def inventory_plugins(inventory: Any) -> list[str]:
    """The plugin names an ``inventory_entry`` lists (``plugins_entry.plugins``, field 12)."""
    entry = getattr(inventory, "plugins_entry", None) if inventory is not None else None
    return list(getattr(entry, "plugins", None) or ())


def _has_gpu(proc_root: Path) -> bool:
    gpus = proc_root / "driver" / "nvidia" / "gpus"
    try:
        return any(gpus.iterdir())
    except OSError:
        return False


def start(ctx: BaseContext, stage: str, inventory: Any = None) -> CudaSession | None:
    """Gate the plugin for ``stage`` and store the session; ``None`` while a restore's inventory is unknown.

    Raises :class:`CudaUnavailable` for a restore of CUDA images on a machine where the plugin cannot work.
    """
    proc_root, timeout, action_timeout = _options(ctx)
    # lock gets its own --timeout; we kill it a grace later (never more than the timeout itself).
    tool = CudaCheckpoint(query_timeout=timeout, action_timeout=action_timeout, lock_grace=min(5.0, timeout))

    def done(mode: Mode, reason: str = "") -> CudaSession:
        sess = CudaSession(stage, mode, reason, tool, proc_root, int(timeout * 1000))
        ctx.stash[SESSION] = sess
        return sess

    if stage == "pre-dump":
        ctx.log.info("%sCUDA devices cannot be pre-dumped; CUDA plugin is disabled for pre-dump", LOG)
        return done(Mode.OFF, "pre-dump")
    if stage not in ("dump", "restore"):
        return done(Mode.OFF, f"stage {stage}")
    if stage == "restore":
        if inventory is None:
            inventory = getattr(ctx, "inventory", None)
        if inventory is None:
            return None  # decided in criu_inventory_check, or lazily at the first task
        if INVENTORY_NAME not in inventory_plugins(inventory):
            return done(Mode.OFF, "the images need no CUDA plugin")

    reason = ""
    if os.environ.get("CRIU_FAULT") != FAULT_FORCE_ENABLE and not _has_gpu(proc_root):
        if stage == "dump":
            ctx.log.info("%sNo GPU device found; CUDA plugin is disabled", LOG)
            return done(Mode.OFF, "no GPU device found")
        reason = f"no NVIDIA GPU found (nothing in {proc_root}/driver/nvidia/gpus/)"
    if not reason:
        reason = tool.probe() or ""
        if reason:
            ctx.log.warning("%s%s", LOG, reason)
    if reason:
        sess = done(Mode.UNUSABLE, reason)
        if stage == "restore":
            raise CudaUnavailable(None, "", reason, images=True)
        return sess
    ctx.log.info("%sinitialized: %s stage %s", LOG, INVENTORY_NAME, stage)
    return done(Mode.ENABLED)


def session_of(ctx: BaseContext) -> CudaSession | None:
    """This run's session, gating now if ``criu_init`` has not (or could not, for lack of an inventory)."""
    sess = ctx.stash.get(SESSION, None)
    if sess is None and ctx.stage:
        sess = start(ctx, ctx.stage)
    return sess


# ---------------------------------------------------------------------------------------------------- detection


def cuda_evidence(proc_root: Path, pid: int) -> str | None:
    """Why ``pid`` looks like a CUDA task without asking cuda-checkpoint: a ``/dev/nvidia*`` mapping, or ``None``."""
    try:
        text = (proc_root / str(pid) / "maps").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[5].startswith("/dev/nvidia"):
            return f"it maps {parts[5].strip()}"
    return None


def _vet_unusable(sess: CudaSession, pid: int) -> None:
    evidence = cuda_evidence(sess.proc_root, pid)
    if evidence is not None:
        raise CudaUnavailable(pid, evidence, sess.reason)


@contextlib.contextmanager
def _helper_running(ctx: BaseContext, sess: CudaSession, pid: int, tid: int) -> Iterator[None]:
    """Let the CUDA helper thread run while cuda-checkpoint works: the core's tracer resumes it for the block
    and interrupts it afterwards (CRIU: resume_restore_thread / interrupt_restore_thread)."""
    with ctx.thread_running(pid, tid):
        yield


# ---------------------------------------------------------------------------------------------------- hooks


def pause_task(ctx: DumpContext, pid: int) -> None:
    """PAUSE_DEVICES: detect a CUDA task and lock it, while it still runs."""
    sess = session_of(ctx)
    if sess is None or sess.mode is Mode.OFF:
        return
    sess.seen.add(pid)
    if sess.mode is Mode.UNUSABLE:
        _vet_unusable(sess, pid)
        return
    tool = sess.tool
    tid = tool.get_restore_tid(pid)
    if tid is None:
        ctx.log.debug("%sno need to pause devices on pid %d", LOG, pid)
        return
    ctx.mark_plugin_used(INVENTORY_NAME)
    ctx.log.info("%spausing devices on pid %d", LOG, pid)
    state, raw = tool.get_state(pid, tid)
    if state is CudaState.UNKNOWN:
        raise CudaCheckpointError(pid, "--get-state", raw,
                                  msg=f"cuda_stub: Unknown CUDA state of task {pid}: cuda-checkpoint --get-state "
                                      f"said {raw.strip()!r}")
    if state in (CudaState.LOCKED, CudaState.CHECKPOINTED):
        ctx.log.info("%spid %d already in a %s state", LOG, pid, state.name.lower())
        sess.tasks[pid] = TaskRecord(pid, tid, state)
        return
    try:
        res = tool.lock(pid, sess.lock_timeout_ms)
    except CudaCheckpointTimeout:
        # CRIU unlocks after its alarm fired: the lock may have half-happened.
        _try_unlock(ctx, sess, pid)
        raise
    if not res.ok:
        ctx.log.error("%sPAUSE_DEVICES failed with %s", LOG, res.output.strip())
        raise CudaCheckpointError(pid, "--action lock", res.output, res.returncode)
    sess.tasks[pid] = TaskRecord(pid, tid, CudaState.RUNNING)


def _try_unlock(ctx: BaseContext, sess: CudaSession, pid: int) -> None:
    try:
        res = sess.tool.action(pid, "unlock")
        said, ok = res.output, res.ok
    except CudaCheckpointError as exc:
        said, ok = str(exc), False
    if not ok:
        ctx.log.error("%sFailed to unlock process status %s, pid %d may hang", LOG, said.strip(), pid)


def checkpoint_task(ctx: DumpContext, pid: int) -> None:
    """CHECKPOINT_DEVICES: move a locked task's device memory into its host memory (tree seized)."""
    sess = session_of(ctx)
    if sess is None or sess.mode is Mode.OFF:
        return
    if sess.mode is Mode.UNUSABLE:
        if pid not in sess.seen:
            _vet_unusable(sess, pid)
        return
    if pid in sess.seen and pid not in sess.tasks:
        return  # answered "not CUDA" at pause: no second call for plain tasks
    tool = sess.tool
    tid = tool.get_restore_tid(pid)
    rec = sess.tasks.get(pid)
    if tid is None:
        if rec is None:
            return  # a task that appeared after pause and does not use CUDA
        raise CudaCheckpointError(pid, "--get-restore-tid", "",
                                  msg=f"cuda_stub: task {pid} was locked as a CUDA task but cuda-checkpoint "
                                      f"--get-restore-tid no longer answers for it")
    if rec is None:
        raise CriuError(f"cuda_stub: Failed to track pid {pid}: a CUDA task that was not paused", pid=pid)
    if rec.initial is CudaState.CHECKPOINTED:
        ctx.log.info("%spid %d is already checkpointed", LOG, pid)
        return
    ctx.log.info("%sCheckpointing CUDA devices on pid %d restore_tid %d", LOG, pid, tid)
    with _helper_running(ctx, sess, pid, tid):
        res = tool.action(pid, "checkpoint")
    if not res.ok:
        ctx.log.error("%sCHECKPOINT_DEVICES failed with %s", LOG, res.output.strip())
        raise CudaCheckpointError(pid, "--action checkpoint", res.output, res.returncode)
    rec.checkpointed = True


def _resume(ctx: BaseContext, sess: CudaSession, pid: int, checkpointed: bool, initial: CudaState) -> None:
    """CRIU's ``resume_device``: restore (if checkpointed here) then unlock (if it was running)."""
    tool = sess.tool
    tid = tool.get_restore_tid(pid)
    if tid is None:
        ctx.log.info("%sNo need to resume devices on pid %d", LOG, pid)
        return
    ctx.log.info("%sresuming devices on pid %d", LOG, pid)
    with _helper_running(ctx, sess, pid, tid):
        if checkpointed and initial in (CudaState.RUNNING, CudaState.LOCKED):
            res = tool.action(pid, "restore")
            if not res.ok:
                ctx.log.error("%sRESUME_DEVICES RESTORE failed with %s", LOG, res.output.strip())
                raise CudaCheckpointError(pid, "--action restore", res.output, res.returncode)
        if initial is CudaState.RUNNING:
            res = tool.action(pid, "unlock")
            if not res.ok:
                ctx.log.error("%sRESUME_DEVICES UNLOCK failed with %s", LOG, res.output.strip())
                raise CudaCheckpointError(pid, "--action unlock", res.output, res.returncode)


def resume_task(ctx: RestoreContext, pid: int) -> None:
    """RESUME_DEVICES_LATE: restore and unlock a restored CUDA task before it runs."""
    sess = session_of(ctx)
    if sess is None or sess.mode is not Mode.ENABLED:
        return
    # The user wants the restored task running (CRIU's comment): as if checkpointed from a running state.
    _resume(ctx, sess, pid, True, CudaState.RUNNING)


def finish(ctx: BaseContext, stage: str, success: bool) -> None:
    """FINI: after a failed or ``--leave-running`` dump, give every paused task its GPU back.

    Every task is tried; the first error is raised afterwards (the host logs it), the others are logged.
    """
    sess = ctx.stash.get(SESSION, None)
    if sess is None or sess.finished:
        return
    sess.finished = True
    if sess.mode is not Mode.ENABLED:
        return
    ctx.log.info("%sfinished %s stage %s err %d", LOG, INVENTORY_NAME, stage, 0 if success else -1)
    if stage != "dump":
        return
    errors: list[CriuError] = []
    if ctx.options.get("leave_running") or not success:
        for rec in list(sess.tasks.values()):
            try:
                _resume(ctx, sess, rec.pid, rec.checkpointed, rec.initial)
            except CriuError as exc:
                ctx.log.error("%s%s", LOG, exc)
                errors.append(exc)
    sess.tasks.clear()
    if errors:
        raise errors[0]
