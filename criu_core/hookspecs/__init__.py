"""Hook specifications: one module per resource class.

Three kinds of hook, and each spec's docstring says which it is:

* **claim** (``firstresult=True``): a plugin returns a claim to own a resource, or ``None`` when it is not its
  own; "mine but impossible" raises a :class:`~criu_core.errors.CriuError`. Built-in handlers are ``trylast``.
  If nobody claims, the core fails naming the resource.
* **broadcast**: every implementation runs.
* **setup**: options and configuration (``historic=True``).

Always call hooks with keyword arguments (core code goes through :class:`criu_core.plugins.PluginHost`).

Threads: the dump and restore engines call every hook from the one thread that seized (or created) and
traces the tasks, never from a pool thread; the kernel accepts some requests on a traced task only from its
ptrace parent thread (KFD's CRIU_OP, PTRACE_* itself). Pools a plugin gets from ``ctx.executor()`` must not
touch the tasks.

CRIU 4.2 plugin hooks (``criu/include/criu-plugin.h``) and ours:

=============================  ===========================================================================
CRIU 4.2                       criu-core
=============================  ===========================================================================
INIT (cr_plugin_init_t)        ``criu_init(ctx, stage)``                              (lifecycle, broadcast)
FINI (cr_plugin_fini_t)        ``criu_fini(ctx, stage, success)``                     (lifecycle, broadcast)
DUMP_UNIX_SK          (0)      ``criu_unix_sk_dump(ctx, sk)``                         (sockets, claim)
RESTORE_UNIX_SK       (1)      ``criu_unix_sk_restore(ctx, image)``                   (sockets, claim)
DUMP_EXT_FILE         (2)      ``criu_ext_file_dump(ctx, fd)``                        (files, claim)
RESTORE_EXT_FILE      (3)      ``criu_ext_file_restore(ctx, file, remote)``           (files, claim)
DUMP_EXT_MOUNT        (4)      ``criu_ext_mount_dump(ctx, mount)``                    (namespaces, claim)
RESTORE_EXT_MOUNT     (5)      ``criu_ext_mount_restore(ctx, mount)``                 (namespaces, claim)
DUMP_EXT_LINK         (6)      ``criu_ext_link_dump(ctx, link)``                      (namespaces, claim)
HANDLE_DEVICE_VMA     (7)      ``criu_vma_dump(ctx, vma)``                            (memory, claim)
UPDATE_VMA_MAP        (8)      ``criu_vma_restore(ctx, vma, task)``                   (memory, claim)
RESUME_DEVICES_LATE   (9)      ``criu_devices_resume_late(ctx, task)``                (devices, broadcast)
PAUSE_DEVICES         (10)     ``criu_devices_pause(ctx, task)``                      (devices, broadcast)
CHECKPOINT_DEVICES    (11)     ``criu_devices_checkpoint(ctx, task)``                 (devices, broadcast)
POST_FORKING          (12)     ``criu_devices_post_fork(ctx)``                        (devices, broadcast)
RESTORE_INIT          (13)     ``criu_devices_restore_init(ctx)``                     (devices, broadcast)
DUMP_DEVICES_LATE     (14)     ``criu_devices_dump_late(ctx, task)``                  (devices, broadcast)
=============================  ===========================================================================

Hooks CRIU has no equivalent for: ``criu_addoption``/``criu_configure`` (plugins add command-line options),
``criu_inventory_check`` (a plugin vets the inventory before a restore touches anything), ``criu_file_dump``/
``criu_file_restore`` (every descriptor type, built-ins included, is a plugin), ``criu_inet_sk_*``,
``criu_netns_*``, ``criu_network_lock``/``unlock``, ``criu_task_dump``/``criu_task_restore`` and
``criu_check_features``.
"""

from __future__ import annotations

import pluggy

__all__ = ["PROJECT", "SPEC_MODULES", "hookimpl", "hookspec"]

PROJECT = "criu_core"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

# Modules holding specs, in the order they are added to the plugin manager.
SPEC_MODULES = (
    "criu_core.hookspecs.lifecycle",
    "criu_core.hookspecs.tasks",
    "criu_core.hookspecs.memory",
    "criu_core.hookspecs.files",
    "criu_core.hookspecs.sockets",
    "criu_core.hookspecs.devices",
    "criu_core.hookspecs.namespaces",
)
