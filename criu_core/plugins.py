"""PluginHost: the pluggy manager behind a typed facade.

Built-in handlers (``criu_core.builtin``) are registered first, by the same path as every other plugin, and
cannot be blocked; then the entry points of the group ``criu_core.plugins`` are loaded, except those named by
``--disable-plugin NAME`` or the environment variable ``CRIU_PY_DISABLE_PLUGINS`` (comma-separated). The
entry point's name is the plugin's name everywhere: ``--disable-plugin``, the inventory, ``criu-py plugins``.

Core code never touches ``pm.hook``: it calls the facade's methods with keyword arguments. A plugin that
raises something other than a :class:`~criu_core.errors.CriuError` is reported as :class:`PluginFailed`
naming it; a CriuError passes through unchanged. There is no module-level manager: each run (and each test)
builds its own host.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable, Iterator
from types import FunctionType, MethodType, ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from criu_core.errors import CriuError, MissingPluginError, PluginFailed, UnsupportedResource
from criu_core.hookspecs import PROJECT, SPEC_MODULES
from criu_core.options import OptionRegistry
from criu_core.records import dataclass

if TYPE_CHECKING:
    from criu_core.context import BaseContext, CheckContext, DumpContext, RestoreContext
    from criu_core.options import Options
    from criu_core.resources import (
        FdInfo,
        FileClaim,
        FileImage,
        MappedVma,
        NamespaceInfo,
        RestoredFd,
        SocketInfo,
        Task,
        Vma,
        VmaClaim,
        VmaImage,
    )

__all__ = ["DISABLE_ENV", "ENTRY_POINT_GROUP", "KNOWN_ALIASES", "PluginHost", "PluginInfo", "iter_entry_points"]

ENTRY_POINT_GROUP = "criu_core.plugins"
DISABLE_ENV = "CRIU_PY_DISABLE_PLUGINS"

# Special mappings that only a plugin distribution can dump: an unclaimed one names the plugin to install.
MAPPING_PLUGINS: dict[str, tuple[str, str, str]] = {
    "[uprobes]": ("uprobes", "criu-plugin-uprobes", "--allow-uprobes"),
    "[uprobes-trampoline]": ("uprobes", "criu-plugin-uprobes", "--allow-uprobes"),
}

# Names CRIU's own plugins write into inventory.plugins_entry, and which of ours replaces each.
KNOWN_ALIASES: dict[str, tuple[str, str]] = {
    "cuda_plugin": ("cuda_stub", "criu-plugin-cuda-stub"),
    "amdgpu_plugin": ("amdgpu", "criu-plugin-amdgpu"),
}


@dataclass(frozen=True)
class PluginInfo:
    """What ``criu-py plugins`` prints for one plugin."""

    name: str
    distribution: str
    version: str
    hooks: tuple[str, ...]
    builtin: bool
    inventory_name: str


def iter_entry_points(group: str) -> Iterator[tuple[str, str, str, str]]:
    """``(name, value, distribution, version)`` of every entry point in ``group`` on ``sys.path``.

    Reads ``*.dist-info/entry_points.txt`` and the ``METADATA`` headers directly: importlib.metadata costs
    about 18 ms of imports (email, zipfile, csv) on every command, a fifth of a CLI call. The first
    distribution found for a name wins, as importlib.metadata does.
    """
    seen: set[str] = set()
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for dname in sorted(names):
            if not dname.endswith(".dist-info"):
                continue
            base = os.path.join(entry or ".", dname)
            try:
                with open(os.path.join(base, "entry_points.txt"), encoding="utf-8") as f:
                    text = f.read()
            except OSError:
                continue
            section = ""
            found = []
            for line in text.splitlines():
                line = line.strip()
                if not line or line[0] in "#;":
                    continue
                if line.startswith("[") and line.endswith("]"):
                    section = line[1:-1].strip()
                elif section == group and "=" in line:
                    key, _, val = line.partition("=")
                    found.append((key.strip(), val.strip()))
            if not found:
                continue
            dist, version = _dist_name_version(base, dname)
            key = dist.lower().replace("_", "-")
            if key in seen:
                continue
            seen.add(key)
            for name, val in found:
                yield name, val, dist, version


def _dist_name_version(base: str, dname: str) -> tuple[str, str]:
    name, version = "", ""
    try:
        with open(os.path.join(base, "METADATA"), encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    break
                if line.startswith("Name:"):
                    name = line[5:].strip()
                elif line.startswith("Version:"):
                    version = line[8:].strip()
    except OSError:
        pass
    if not name:
        name, _, version = dname[: -len(".dist-info")].partition("-")
    return name, version


# What pluggy can take a hook implementation or specification from (pluggy._manager._static_hook_attr).
_HOOKABLE = (FunctionType, MethodType, staticmethod, classmethod)
_ABSENT = object()


def _never_a_hook(namespace: object, name: str) -> bool:
    """True when pluggy's lookup of ``name`` (a name of ``dir(namespace)``) cannot find a hook there."""
    if isinstance(namespace, ModuleType):
        holders: tuple[Any, ...] = (namespace,)
    elif isinstance(namespace, type):
        holders = namespace.__mro__
    else:
        return False
    for holder in holders:
        value = holder.__dict__.get(name, _ABSENT)
        if value is not _ABSENT:
            return not isinstance(value, _HOOKABLE)
    return False


class _PluginManager(pluggy.PluginManager):
    """pluggy's manager, with a cheap first look at each name it considers.

    ``register`` and ``add_hookspecs`` ask about every name in ``dir(plugin)`` (some 700 names for the specs,
    the built-ins and the installed plugins), and pluggy looks each one up with ``inspect.getattr_static``, a
    few microseconds each. For a module or a class, the value that lookup finds for such a name is the one in
    the ``__dict__`` of the module or of the first class of the MRO holding it; when that is not a function,
    a method, a staticmethod or a classmethod, pluggy answers None, and so do we, without the lookup. Every
    other name goes to pluggy unchanged.
    """

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        return None if _never_a_hook(plugin, name) else super().parse_hookimpl_opts(plugin, name)

    def parse_hookspec_opts(self, module_or_class: Any, name: str) -> Any:
        return None if _never_a_hook(module_or_class, name) else super().parse_hookspec_opts(module_or_class, name)


class PluginHost:
    """Load plugins and call their hooks.

    :param disabled: plugin names not to load (built-ins cannot be disabled).
    :param load_entry_points: load installed plugin distributions (tests may pass False and register by hand).
    """

    def __init__(self, disabled: Iterable[str] = (), *, load_entry_points: bool = True) -> None:
        self.pm = _PluginManager(PROJECT)
        for modname in SPEC_MODULES:
            self.pm.add_hookspecs(importlib.import_module(modname))
        env = [n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()]
        self.disabled = set(disabled) | set(env)
        self._info: dict[str, PluginInfo] = {}
        self._modules: dict[str, ModuleType | type] = {}  # a module, or a namespace class (the built-ins)
        self.options = OptionRegistry()
        self._register_builtins()
        if load_entry_points:
            self._load_entry_points()
        self.pm.check_pending()

    # ---------------------------------------------------------------------------------------------- loading

    def _register_builtins(self) -> None:
        from criu_core import __version__
        from criu_core.builtin import BUILTIN_PLUGINS

        for name, value in BUILTIN_PLUGINS:
            modname, _, attr = value.partition(":")
            namespace = getattr(importlib.import_module(modname), attr)
            self._add(name, namespace, "criu-core", __version__, builtin=True)

    def _load_entry_points(self) -> None:
        for name, value, dist, version in iter_entry_points(ENTRY_POINT_GROUP):
            if name in self.disabled or name in self._info:
                continue
            modname, _, attr = value.partition(":")
            try:
                module = importlib.import_module(modname.strip())
                if attr:
                    module = getattr(module, attr.strip())
            except Exception as exc:  # a broken distribution must not take the core down
                raise PluginFailed(name, "load", exc) from exc
            self._add(name, module, dist, version, builtin=False)

    def _add(self, name: str, module: ModuleType | type, dist: str, version: str, *, builtin: bool) -> None:
        self.pm.register(module, name=name)
        hooks = tuple(sorted(h.name for h in self.pm.get_hookcallers(module) or ()))
        # CRIU_INVENTORY_NAME = None: never listed in plugins_entry (what CRIU 4.2 does in its core, e.g. uprobes)
        inv = getattr(module, "CRIU_INVENTORY_NAME", name) or ""
        self._info[name] = PluginInfo(name, dist, version, hooks, builtin, inv)
        self._modules[name] = module
        # The options hook is historic; call this plugin's own implementation now, so every option is
        # attributed to the plugin that declared it (and a replay never declares one twice).
        for impl in self.pm.hook.criu_addoption.get_hookimpls():
            if impl.plugin is module:
                impl.function(parser=self.options.owned_by(name))

    def register(self, plugin: object, name: str, *, distribution: str = "(test)", version: str = "0") -> None:
        """Register an object or module as a plugin by hand (tests, embedding applications)."""
        self._add(name, plugin, distribution, version, builtin=False)  # type: ignore[arg-type]
        self.pm.check_pending()

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self._info.pop(name, None)
        self._modules.pop(name, None)

    # ---------------------------------------------------------------------------------------------- queries

    def plugins(self) -> list[PluginInfo]:
        """Every loaded plugin, built-ins first, in load order."""
        return list(self._info.values())

    def has_plugin(self, name: str) -> bool:
        return name in self._info

    def check_required(self, names: Iterable[str]) -> list[str]:
        """Map the inventory's plugin names to loaded plugins; raise MissingPluginError for the first missing."""
        by_inv = {info.inventory_name: info.name for info in self._info.values() if info.inventory_name}
        found = []
        for inv_name in names:
            plugin = by_inv.get(inv_name) or (inv_name if inv_name in self._info else None)
            if plugin is None:
                alias = KNOWN_ALIASES.get(inv_name)
                raise MissingPluginError(alias[0] if alias else inv_name, alias[1] if alias else None)
            found.append(plugin)
        return found

    def inventory_name(self, plugin: str) -> str:
        info = self._info.get(plugin)
        return info.inventory_name if info else plugin

    # ---------------------------------------------------------------------------------------------- calling

    def _call(self, hook: str, **kwargs: Any) -> Any:
        caller = getattr(self.pm.hook, hook)
        try:
            return caller(**kwargs)
        except CriuError:
            raise
        except Exception as exc:
            culprit = self._culprit(exc)
            if culprit is None:
                raise  # a bug of the core or of a built-in: keep the traceback
            raise PluginFailed(culprit, hook, exc) from exc

    def _culprit(self, exc: BaseException) -> str | None:
        """The non-builtin plugin whose code raised ``exc`` (by the innermost matching traceback frame)."""
        prefixes = {}
        for name, module in self._modules.items():
            if self._info[name].builtin:
                continue
            top = (getattr(module, "__name__", "") or "").split(".")[0]
            if top:
                prefixes[top] = name
        culprit = None
        tb = exc.__traceback__
        while tb is not None:
            modname = tb.tb_frame.f_globals.get("__name__", "")
            top = modname.split(".")[0]
            if top in prefixes:
                culprit = prefixes[top]
            tb = tb.tb_next
        if culprit is None:
            for name, module in self._modules.items():  # plugins registered as objects
                if not self._info[name].builtin and not isinstance(module, ModuleType):
                    return name
        return culprit

    def _broadcast_quiet(self, hook: str, log_ctx: BaseContext, /, **kwargs: Any) -> None:
        """Call every implementation, logging failures instead of raising (fini)."""
        for impl in reversed(getattr(self.pm.hook, hook).get_hookimpls()):
            try:
                impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})
            except Exception as exc:  # noqa: BLE001 - fini must reach every plugin
                log_ctx.log.error("plugin %s failed in %s: %s", impl.plugin_name, hook, exc)

    # lifecycle
    def configure(self, options: Options) -> None:
        self.pm.hook.criu_configure.call_historic(kwargs={"options": options})

    def init(self, ctx: BaseContext, stage: str) -> None:
        self._call("criu_init", ctx=ctx, stage=stage)

    def fini(self, ctx: BaseContext, stage: str, success: bool) -> None:
        self._broadcast_quiet("criu_fini", ctx, ctx=ctx, stage=stage, success=success)

    def inventory_check(self, ctx: RestoreContext, inventory: Any) -> None:
        self._call("criu_inventory_check", ctx=ctx, inventory=inventory)

    def check_features(self, ctx: CheckContext) -> list[tuple[str, bool, str]]:
        out: list[tuple[str, bool, str]] = []
        for res in self._call("criu_check_features", ctx=ctx):
            out.extend(res or ())
        return out

    # tasks
    def tree_frozen(self, ctx: DumpContext, tasks: tuple[Task, ...]) -> None:
        self._call("criu_tree_frozen", ctx=ctx, tasks=tasks)

    def task_dump(self, ctx: DumpContext, task: Task, remote: Any) -> None:
        self._call("criu_task_dump", ctx=ctx, task=task, remote=remote)

    def task_restore(self, ctx: RestoreContext, task: Task, remote: Any) -> None:
        self._call("criu_task_restore", ctx=ctx, task=task, remote=remote)

    # memory
    def vma_dump(self, ctx: DumpContext, vma: Vma) -> VmaClaim:
        claim = self._call("criu_vma_dump", ctx=ctx, vma=vma)
        if claim is None:
            hint = ""
            if vma.name in MAPPING_PLUGINS:
                plugin, dist, option = MAPPING_PLUGINS[vma.name]
                if plugin in self.disabled:
                    hint = f"plugin {plugin} is disabled: enable it and use {option}"
                else:
                    hint = f"plugin {plugin} is not installed: install {dist} and use {option}"
            raise UnsupportedResource(vma, hint=hint, msg=f"Unsupported mapping found {vma.start:x}-{vma.end:x} "
                                                          f"({vma.name or 'anonymous'}) in task {vma.pid}")
        self._note_claim(ctx, claim.plugin)
        return claim

    def vma_restore(self, ctx: RestoreContext, vma: VmaImage, remote: Any) -> MappedVma:
        mapped = self._call("criu_vma_restore", ctx=ctx, vma=vma, remote=remote)
        if mapped is None:
            e = vma.entry
            raise UnsupportedResource(vma, msg=f"no plugin can map VMA {e.start:x}-{e.end:x} "
                                               f"(status {e.status:#x}) of task {vma.pid}")
        return mapped

    def vma_pages_restore(self, ctx: RestoreContext, vma: VmaImage, remote: Any) -> None:
        self._call("criu_vma_pages_restore", ctx=ctx, vma=vma, remote=remote)

    # files and sockets
    def file_dump(self, ctx: DumpContext, fd: FdInfo) -> FileClaim:
        claim = self._call("criu_file_dump", ctx=ctx, fd=fd)
        if claim is None:
            claim = self._call("criu_ext_file_dump", ctx=ctx, fd=fd)
        if claim is None:
            raise UnsupportedResource(fd, msg=f"Can't dump file {fd.fd} of task {fd.pid}: "
                                              f"unsupported kind {fd.kind} ({fd.link})")
        self._note_claim(ctx, claim.plugin)
        return claim

    def file_restore(self, ctx: RestoreContext, file: FileImage, remote: Any = None) -> RestoredFd:
        res = self._call("criu_file_restore", ctx=ctx, file=file, remote=remote)
        if res is None:
            res = self._call("criu_ext_file_restore", ctx=ctx, file=file, remote=remote)
        if res is None:
            raise UnsupportedResource(file, msg=f"no plugin can restore file id {file.entry.id} "
                                                f"(type {file.entry.type}) of task {file.pid}")
        return res

    def unix_sk_dump(self, ctx: DumpContext, sk: SocketInfo) -> FileClaim | None:
        return self._call("criu_unix_sk_dump", ctx=ctx, sk=sk)

    def unix_sk_restore(self, ctx: RestoreContext, file: FileImage) -> RestoredFd | None:
        return self._call("criu_unix_sk_restore", ctx=ctx, file=file)

    def inet_sk_dump(self, ctx: DumpContext, sk: SocketInfo) -> FileClaim | None:
        return self._call("criu_inet_sk_dump", ctx=ctx, sk=sk)

    def inet_sk_restore(self, ctx: RestoreContext, file: FileImage) -> RestoredFd | None:
        return self._call("criu_inet_sk_restore", ctx=ctx, file=file)

    # devices
    def devices_pause(self, ctx: DumpContext, task: Task) -> None:
        self._call("criu_devices_pause", ctx=ctx, task=task)

    def devices_checkpoint(self, ctx: DumpContext, task: Task) -> None:
        self._call("criu_devices_checkpoint", ctx=ctx, task=task)

    def devices_dump_late(self, ctx: DumpContext, task: Task) -> None:
        self._call("criu_devices_dump_late", ctx=ctx, task=task)

    def devices_restore_init(self, ctx: RestoreContext) -> None:
        self._call("criu_devices_restore_init", ctx=ctx)

    def devices_post_fork(self, ctx: RestoreContext) -> None:
        self._call("criu_devices_post_fork", ctx=ctx)

    def devices_resume_late(self, ctx: RestoreContext, task: Task) -> None:
        self._call("criu_devices_resume_late", ctx=ctx, task=task)

    # namespaces
    def netns_dump(self, ctx: DumpContext, ns: NamespaceInfo) -> Any:
        return self._call("criu_netns_dump", ctx=ctx, ns=ns)

    def netns_restore(self, ctx: RestoreContext, ns: NamespaceInfo) -> Any:
        return self._call("criu_netns_restore", ctx=ctx, ns=ns)

    def network_lock(self, ctx: DumpContext) -> None:
        self._call("criu_network_lock", ctx=ctx)

    def network_unlock(self, ctx: BaseContext) -> None:
        self._call("criu_network_unlock", ctx=ctx)

    def ns_dump(self, ctx: DumpContext, ns: NamespaceInfo) -> Any:
        return self._call("criu_ns_dump", ctx=ctx, ns=ns)

    def ns_restore(self, ctx: RestoreContext, ns: NamespaceInfo) -> Any:
        return self._call("criu_ns_restore", ctx=ctx, ns=ns)

    # ---------------------------------------------------------------------------------------------- helpers

    def _note_claim(self, ctx: BaseContext, plugin: str) -> None:
        info = self._info.get(plugin)
        if info is not None and not info.builtin and info.inventory_name:
            ctx.mark_plugin_used(info.inventory_name)

    def describe(self) -> str:
        """The ``criu-py plugins`` listing."""
        lines = []
        for info in self.plugins():
            kind = "built-in" if info.builtin else "plugin"
            lines.append(f"{info.name}  ({kind}, {info.distribution} {info.version})")
            lines.append("    hooks: " + (", ".join(info.hooks) if info.hooks else "(none)"))
        return "\n".join(lines)
