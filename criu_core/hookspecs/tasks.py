"""Task hooks: per-process state beyond what the core saves (plugins write their own images)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from criu_core.hookspecs import hookspec

if TYPE_CHECKING:
    from criu_core.context import DumpContext, RestoreContext
    from criu_core.resources import Task

__all__ = ["criu_task_dump", "criu_task_restore", "criu_tree_frozen"]


@hookspec
def criu_tree_frozen(ctx: DumpContext, tasks: tuple[Task, ...]) -> None:
    """The whole tree is seized and stopped; nothing was read yet.

    :param ctx: the dump's context.
    :param tasks: every process of the tree, parents before children.

    Broadcast: every implementation runs. Raising fails the dump and releases the tree unchanged.

    .. versionadded:: 0.1
    """


@hookspec
def criu_task_dump(ctx: DumpContext, task: Task, remote: Any) -> None:
    """Save extra per-process state after the core saved its own.

    Runs in the dumper once per process of the tree, while it is stopped. ``remote`` is the leader's
    :class:`criu_core.ptrace.RemoteTask`: a plugin may inject syscalls through it.

    :param ctx: the dump's context.
    :param task: the process.
    :param remote: the stopped leader thread.

    Broadcast: every implementation runs.

    .. versionadded:: 0.1
    """


@hookspec
def criu_task_restore(ctx: RestoreContext, task: Task, remote: Any) -> None:
    """Restore extra per-process state, after memory and descriptors, before registers are set.

    :param ctx: the restore's context.
    :param task: the process being built (its PID is final).
    :param remote: the stopped leader thread of the seed.

    Broadcast: every implementation runs.

    .. versionadded:: 0.1
    """
