"""Device hooks: pause, checkpoint and dump-late at dump; restore-init, post-fork and resume-late at restore."""

from __future__ import annotations

from typing import TYPE_CHECKING

from criu_core.hookspecs import hookspec

if TYPE_CHECKING:
    from criu_core.context import DumpContext, RestoreContext
    from criu_core.resources import Task

__all__ = [
    "criu_devices_checkpoint",
    "criu_devices_dump_late",
    "criu_devices_pause",
    "criu_devices_post_fork",
    "criu_devices_restore_init",
    "criu_devices_resume_late",
]


@hookspec
def criu_devices_pause(ctx: DumpContext, task: Task) -> None:
    """Quiesce a task's devices before it is frozen (CRIU's PAUSE_DEVICES).

    Runs in the dumper once per process, while the process still runs, before it is seized. Honour
    ``ctx.options.timeout`` (seconds). Raising fails the dump; already paused tasks get ``criu_fini``.

    Broadcast: every implementation runs.

    .. versionadded:: 0.1
    """


@hookspec
def criu_devices_checkpoint(ctx: DumpContext, task: Task) -> None:
    """Move a frozen task's device state where the dump can save it (CRIU's CHECKPOINT_DEVICES).

    Runs once per process after the whole tree is seized (and ``criu_tree_frozen``) and before any task's memory
    is dumped, from the tracer thread. A driver that needs a thread of the task alive while it works uses
    ``ctx.thread_running(pid, tid)``.

    Broadcast: every implementation runs. Raising fails the dump; ``criu_fini`` then runs while the tree is
    still seized.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
        before memory, as CRIU (it ran after every task's files before).
    """


@hookspec
def criu_devices_dump_late(ctx: DumpContext, task: Task) -> None:
    """Finish a task's devices once its descriptors are dumped (CRIU's DUMP_DEVICES_LATE): write the images that
    needed every descriptor, give the device back (KFD: UNPAUSE).

    Runs once per process right after its files were dumped, while the tree is still seized, from the tracer
    thread (the kernel lets only the ptrace parent thread issue some device ioctls on a traced task).

    Broadcast: every implementation runs. Raising fails the dump; ``criu_fini`` then runs, tree still seized.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
        called by the dump engine.
    """


@hookspec
def criu_devices_restore_init(ctx: RestoreContext) -> None:
    """Prepare device restore before any task is created (CRIU's RESTORE_INIT): match GPUs, open devices.

    Broadcast: every implementation runs. Raising stops the restore before anything was created.

    .. versionadded:: 0.1
    """


@hookspec
def criu_devices_post_fork(ctx: RestoreContext) -> None:
    """Every task of the tree exists (CRIU's POST_FORKING): start work that overlaps the rest of the restore.

    Thread pools must come from ``ctx.executor()`` and be joined before ``criu_devices_resume_late`` needs
    their results.

    Broadcast: every implementation runs.

    .. versionadded:: 0.1
    """


@hookspec
def criu_devices_resume_late(ctx: RestoreContext, task: Task) -> None:
    """Resume a restored task's devices, after its registers are set and before it runs (RESUME_DEVICES_LATE).

    Runs once per process after every task is built and before any is detached, from the thread that traces
    them; ``ctx.thread_running(pid, tid)`` lets one restored thread run meanwhile.

    Broadcast: every implementation runs. Raising fails the restore: every restored task is killed, as for any
    other restore failure.

    .. versionadded:: 0.1
    """
