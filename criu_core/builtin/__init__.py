"""Default handlers, registered by the PluginHost like any plugin (every hookimpl is ``trylast``).

The hookimpls are in :mod:`criu_core.builtin.plugin`, one namespace class per plugin; each mechanics module
beside it handles one resource class and is imported only when a hook first needs it. Together they make a
plain CRIU-style dump and restore. Built-ins cannot be disabled.
"""

from __future__ import annotations

__all__ = ["BUILTIN_PLUGINS"]

# (plugin name, "module:namespace" as in an entry point), in registration order.
BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (
    ("builtin.memory", "criu_core.builtin.plugin:Memory"),
    ("builtin.files", "criu_core.builtin.plugin:Files"),
    ("builtin.sockets", "criu_core.builtin.plugin:Sockets"),
    ("builtin.mem_restore", "criu_core.builtin.plugin:MemRestore"),
    ("builtin.files_restore", "criu_core.builtin.plugin:FilesRestore"),
    ("builtin.fds_restore", "criu_core.builtin.plugin:Fds"),
    ("builtin.sk_unix_restore", "criu_core.builtin.plugin:SkUnixRestore"),
    ("builtin.memfd_restore", "criu_core.builtin.plugin:Memfd"),
    ("builtin.ghost_restore", "criu_core.builtin.plugin:Ghosts"),
)
