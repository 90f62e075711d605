"""File hooks: claim a descriptor at dump and reopen it at restore; external files."""

from __future__ import annotations

from typing import TYPE_CHECKING

from criu_core.hookspecs import hookspec

if TYPE_CHECKING:
    from criu_core.context import DumpContext, RestoreContext
    from criu_core.ptrace import RemoteTask
    from criu_core.resources import FdInfo, FileClaim, FileImage, RestoredFd

__all__ = ["criu_ext_file_dump", "criu_ext_file_restore", "criu_file_dump", "criu_file_restore"]


@hookspec(firstresult=True)
def criu_file_dump(ctx: DumpContext, fd: FdInfo) -> FileClaim | None:
    """Own one open descriptor of a frozen task and save its state.

    Runs in the dumper once per (task, fd) after the whole tree is seized; ``fd.local_fd`` is a copy of the
    descriptor taken with pidfd_getfd. Descriptions shared between fds (kcmp) are offered once.
    ``fd.file_id`` is the files.img id the core gives the claimed file_entry (CRIU passes it to DUMP_EXT_FILE):
    name the plugin's own images after it. Called from the thread that seized the task (the tracer), never
    from a pool thread: the kernel accepts some ioctls on a traced task's descriptor only from its ptrace
    parent thread (KFD's CRIU_OP).

    :param ctx: the dump's context.
    :param fd: the descriptor.
    :return: a FileClaim to own it, ``None`` if it is not yours. If it is yours but cannot be saved, raise a
        CriuError subclass that says why. Built-in handlers run last; if nobody claims, the dump fails naming
        the descriptor.

    Stops at first non-None result.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
        ``remote``.
    """


@hookspec(firstresult=True)
def criu_file_restore(
    ctx: RestoreContext, file: FileImage, remote: RemoteTask
) -> RestoredFd | None:
    """Open one file of ``files.img`` in the restorer, so the task can pull it in.

    Runs in the restorer once per file entry a task uses, before the task's descriptors are installed, from
    the thread that created (and traces) the task.

    :param ctx: the restore's context.
    :param file: the file_entry and the fd numbers it fills in task ``file.pid``.
    :param remote: the task's stopped leader, to run syscalls inside it (a device to open there, an ioctl that
        must come from the task); descriptors a plugin keeps in the task go at ``ctx.alloc_task_fd(pid)``.
        An implementation may leave this argument out.
    :return: a RestoredFd holding a descriptor of the restorer, ``None`` if it is not yours.

    Stops at first non-None result.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
        ``remote``.
    """


@hookspec(firstresult=True)
def criu_ext_file_dump(ctx: DumpContext, fd: FdInfo) -> FileClaim | None:
    """Dump a descriptor nobody else understands as an external file (CRIU's DUMP_EXT_FILE).

    Offered only after every ``criu_file_dump`` implementation declined. The claim's entry is an EXT
    file_entry; the plugin keeps the real state in its own image, named after ``fd.file_id``. Called from the
    tracer thread, as ``criu_file_dump``.

    Stops at first non-None result.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def criu_ext_file_restore(
    ctx: RestoreContext, file: FileImage, remote: RemoteTask
) -> RestoredFd | None:
    """Reopen an EXT file entry (CRIU's RESTORE_EXT_FILE).

    Offered only after every ``criu_file_restore`` implementation declined; ``remote`` as there.

    Stops at first non-None result.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
        ``remote``.
    """
