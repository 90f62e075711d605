"""PluginHost's manager skips pluggy's getattr_static lookup for names that cannot be hooks; it must find
exactly the hook implementations and specifications plain pluggy finds."""

from __future__ import annotations

import importlib
from types import ModuleType

import pluggy

from criu_core.hookspecs import PROJECT, SPEC_MODULES, hookimpl
from criu_core.plugins import PluginHost, _PluginManager


class _Base:
    @hookimpl
    def criu_init(self, ctx, stage):  # a hook inherited from a base class
        pass


class _Odd(_Base):
    """A plugin class with every kind of attribute pluggy distinguishes."""

    criu_fini = property(lambda self: None)  # a property is never a hook (and must not be evaluated)
    not_a_hook = 3

    @staticmethod
    @hookimpl
    def criu_addoption(parser):
        pass

    @classmethod
    def helper(cls):
        pass


def _namespaces(host: PluginHost) -> list[object]:
    specs = [importlib.import_module(m) for m in SPEC_MODULES]
    plugins = [host._modules[name] for name in host._modules]
    return [*specs, *plugins, _Odd, _Odd(), ModuleType("empty")]


def test_same_answers_as_pluggy_for_every_name() -> None:
    host = PluginHost()
    ours, plain = _PluginManager(PROJECT), pluggy.PluginManager(PROJECT)
    checked = 0
    for ns in _namespaces(host):
        for name in dir(ns):
            assert ours.parse_hookimpl_opts(ns, name) == plain.parse_hookimpl_opts(ns, name), (ns, name)
            assert ours.parse_hookspec_opts(ns, name) == plain.parse_hookspec_opts(ns, name), (ns, name)
            checked += 1
    assert checked > 500


def test_registers_the_same_hooks_as_pluggy() -> None:
    host = PluginHost()
    ours: list[tuple[str, str]] = []
    for pm_class in (_PluginManager, pluggy.PluginManager):
        pm = pm_class(PROJECT)
        for m in SPEC_MODULES:
            pm.add_hookspecs(importlib.import_module(m))
        for name, module in host._modules.items():
            pm.register(module, name=name)
        pm.register(_Odd(), name="odd")
        table = sorted(
            (name, impl.plugin_name)
            for name, hc in vars(pm.hook).items()
            if isinstance(hc, pluggy.HookCaller)
            for impl in hc.get_hookimpls()
        )
        if pm_class is _PluginManager:
            ours = table
        else:
            assert table == ours
    assert ("criu_init", "odd") in ours and ("criu_addoption", "odd") in ours and ("criu_fini", "odd") not in ours
