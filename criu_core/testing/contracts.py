"""Contract checks every plugin distribution must pass; run over every installed plugin by the core's tests.

A plugin author can run them too: ``check_plugin(entry_point_name)`` raises AssertionError with the reason.
"""

from __future__ import annotations

import inspect
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

__all__ = ["check_plugin", "installed_plugin_names", "ordinary_resources"]


def installed_plugin_names() -> list[str]:
    """Entry-point names of every installed plugin distribution."""
    return sorted(ep.name for ep in entry_points(group="criu_core.plugins"))


def ordinary_resources() -> dict[str, Any]:
    """Resources that belong to the core, never to a device plugin: plugins must answer "not mine" (None)."""
    from criu_core.resources import FdInfo, Vma

    return {
        "vma": Vma(pid=1, start=0x10000, end=0x20000, prot=3, flags=0x22, name="", vmflags=frozenset({"rd", "wr"})),
        "fd": FdInfo(pid=1, fd=1, local_fd=-1, kind="reg", link="/tmp/some-file", flags=0o1),
    }


def check_plugin(name: str) -> ModuleType:
    """Load plugin ``name`` through its entry point and check the contracts; return its module."""
    from criu_core.context import DumpContext
    from criu_core.hookspecs import PROJECT
    from criu_core.options import Options
    from criu_core.plugins import PluginHost

    (ep,) = [e for e in entry_points(group="criu_core.plugins") if e.name == name]
    module = ep.load()
    assert isinstance(module, ModuleType), f"entry point {name} must name a module"
    dist = ep.dist.metadata["Name"] if ep.dist else ""
    assert dist == "criu-plugin-" + name.replace("_", "-"), f"{name}: distribution is {dist!r}"
    assert module.__name__ == f"criu_{name}.plugin", f"{name}: entry point must be criu_{name}.plugin"
    # plugin.py holds only hookimpls (and constants); everything it defines as a function is a hook.
    for attr, value in vars(module).items():
        if inspect.isfunction(value) and value.__module__ == module.__name__ and not attr.startswith("_"):
            assert hasattr(value, PROJECT + "_impl"), f"{name}: {attr} in plugin.py is not a hookimpl"
    host = PluginHost(load_entry_points=False)
    host.register(module, name, distribution=dist)  # validates every hookimpl against its spec
    opts = host.options.defaults()
    ctx = DumpContext(options=opts if isinstance(opts, Options) else Options(), host=host, images_dir=".")
    res = ordinary_resources()
    for impl in host.pm.hook.criu_vma_dump.get_hookimpls():
        if impl.plugin is module:
            assert impl.function(**_args(impl, ctx=ctx, vma=res["vma"])) is None, f"{name} claims an anon VMA"
    for impl in host.pm.hook.criu_file_dump.get_hookimpls():
        if impl.plugin is module:
            assert impl.function(**_args(impl, ctx=ctx, fd=res["fd"])) is None, f"{name} claims a regular file"
    return module


def _args(impl: Any, **kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k in impl.argnames}
