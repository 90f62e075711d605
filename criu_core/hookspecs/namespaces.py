"""Namespace hooks: network namespaces (links, addresses, routes), the network lock, other namespaces, mounts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from criu_core.hookspecs import hookspec

if TYPE_CHECKING:
    from criu_core.context import DumpContext, RestoreContext
    from criu_core.resources import NamespaceInfo

__all__ = [
    "criu_ext_link_dump",
    "criu_ext_mount_dump",
    "criu_ext_mount_restore",
    "criu_netns_dump",
    "criu_netns_restore",
    "criu_network_lock",
    "criu_network_unlock",
    "criu_ns_dump",
    "criu_ns_restore",
]


@hookspec(firstresult=True)
def criu_netns_dump(ctx: DumpContext, ns: NamespaceInfo) -> Any:
    """Save a network namespace the tree lives in (links, addresses, routes, rules, netfilter).

    :return: the netns id written to the images, or ``None`` if it is not yours.

    Stops at first non-None result.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def criu_netns_restore(ctx: RestoreContext, ns: NamespaceInfo) -> Any:
    """Recreate a network namespace before the tasks that live in it; return an open fd of it.

    Stops at first non-None result.

    .. versionadded:: 0.1
    """


@hookspec
def criu_network_lock(ctx: DumpContext) -> None:
    """Stop traffic of the tree's connections (``--tcp-established``, ``--network-lock``) before they are dumped.

    Broadcast: every implementation runs.

    .. versionadded:: 0.1
    """


@hookspec
def criu_network_unlock(ctx: RestoreContext | DumpContext) -> None:
    """Let the traffic flow again: after a restore, or after a failed or ``--leave-running`` dump.

    Broadcast: every implementation runs.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def criu_ns_dump(ctx: DumpContext, ns: NamespaceInfo) -> Any:
    """Save a namespace other than net (uts, ipc, mnt, pid, user, time, cgroup).

    Stops at first non-None result.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def criu_ns_restore(ctx: RestoreContext, ns: NamespaceInfo) -> Any:
    """Recreate a namespace other than net.

    Stops at first non-None result.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def criu_ext_mount_dump(ctx: DumpContext, mount: Any) -> Any:
    """Dump an external mount (CRIU's DUMP_EXT_MOUNT). Stops at first non-None result.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def criu_ext_mount_restore(ctx: RestoreContext, mount: Any) -> Any:
    """Restore an external mount (CRIU's RESTORE_EXT_MOUNT). Stops at first non-None result.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def criu_ext_link_dump(ctx: DumpContext, link: Any) -> Any:
    """Dump an external network link (CRIU's DUMP_EXT_LINK). Stops at first non-None result.

    .. versionadded:: 0.1
    """
