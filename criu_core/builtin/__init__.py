"""Default handlers, registered by the PluginHost like any plugin (every hookimpl is ``trylast``).

Each module handles one resource class; together they make a plain CRIU-style dump and restore.
Built-ins cannot be disabled.
"""

from __future__ import annotations

__all__ = ["BUILTIN_PLUGINS"]

# (plugin name, module), in registration order.
BUILTIN_PLUGINS: tuple[tuple[str, str], ...] = (
    ("builtin.memory", "criu_core.builtin.memory"),
    ("builtin.files", "criu_core.builtin.files"),
    ("builtin.sockets", "criu_core.builtin.sockets"),
    ("builtin.mem_restore", "criu_core.builtin.mem_restore"),
    ("builtin.files_restore", "criu_core.builtin.files_restore"),
    ("builtin.fds_restore", "criu_core.builtin.fds_restore"),
    ("builtin.sk_unix_restore", "criu_core.builtin.sk_unix_restore"),
    ("builtin.memfd_restore", "criu_core.builtin.memfd_restore"),
    ("builtin.ghost_restore", "criu_core.builtin.ghost_restore"),
)
