"""Socket hooks: unix and inet sockets at dump and restore."""

from __future__ import annotations

from typing import TYPE_CHECKING

from criu_core.hookspecs import hookspec

if TYPE_CHECKING:
    from criu_core.context import DumpContext, RestoreContext
    from criu_core.resources import FileClaim, FileImage, RestoredFd, SocketInfo

__all__ = ["criu_inet_sk_dump", "criu_inet_sk_restore", "criu_unix_sk_dump", "criu_unix_sk_restore"]


@hookspec(firstresult=True)
def criu_unix_sk_dump(ctx: DumpContext, sk: SocketInfo) -> FileClaim | None:
    """Own a unix socket (CRIU's DUMP_UNIX_SK), e.g. one whose peer lives outside the tree.

    :return: a FileClaim, or ``None`` if it is not yours.

    Stops at first non-None result.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def criu_unix_sk_restore(ctx: RestoreContext, file: FileImage) -> RestoredFd | None:
    """Recreate a unix socket (CRIU's RESTORE_UNIX_SK).

    Stops at first non-None result.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def criu_inet_sk_dump(ctx: DumpContext, sk: SocketInfo) -> FileClaim | None:
    """Own an AF_INET/AF_INET6 socket (TCP repair, UDP, raw).

    Stops at first non-None result.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def criu_inet_sk_restore(ctx: RestoreContext, file: FileImage) -> RestoredFd | None:
    """Recreate an inet socket in the restorer (in the task's network namespace).

    Stops at first non-None result.

    .. versionadded:: 0.1
    """
