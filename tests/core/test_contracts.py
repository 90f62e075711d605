"""Contracts over every installed plugin distribution, and over the hook specs themselves."""

from __future__ import annotations

import importlib
import inspect

import pytest

from criu_core.hookspecs import PROJECT, SPEC_MODULES
from criu_core.testing.contracts import check_plugin, installed_plugin_names

CRIU_PLUGIN_HOOKS = ["INIT", "FINI", "DUMP_UNIX_SK", "RESTORE_UNIX_SK", "DUMP_EXT_FILE", "RESTORE_EXT_FILE",
                     "DUMP_EXT_MOUNT", "RESTORE_EXT_MOUNT", "DUMP_EXT_LINK", "HANDLE_DEVICE_VMA", "UPDATE_VMA_MAP",
                     "RESUME_DEVICES_LATE", "PAUSE_DEVICES", "CHECKPOINT_DEVICES", "POST_FORKING", "RESTORE_INIT",
                     "DUMP_DEVICES_LATE"]


def test_the_four_plugins_are_installed():
    assert set(installed_plugin_names()) >= {"amdgpu", "uprobes", "netns", "cuda_stub"}


@pytest.mark.parametrize("name", installed_plugin_names())
def test_plugin_contract(name):
    check_plugin(name)


def _specs():
    for modname in SPEC_MODULES:
        mod = importlib.import_module(modname)
        for attr in mod.__all__:
            yield modname, getattr(mod, attr)


@pytest.mark.parametrize("modname,spec", list(_specs()), ids=lambda x: getattr(x, "__name__", str(x)))
def test_every_spec_follows_the_template(modname, spec):
    opts = getattr(spec, PROJECT + "_spec")
    assert spec.__name__.startswith("criu_"), "hook names are criu_<resource>_<phase>"
    doc = inspect.getdoc(spec) or ""
    assert ".. versionadded::" in doc
    if opts.get("firstresult"):
        assert "Stops at first non-None result." in doc, f"{spec.__name__}: claim hooks say so"
    params = list(inspect.signature(spec).parameters)
    if params and params[0] == "ctx":
        assert len(params) <= 4, "context first, then one typed descriptor (and at most a remote/stage)"


def test_package_docstring_maps_every_criu_plugin_hook():
    import criu_core.hookspecs as hs

    names = {spec.__name__ for _, spec in _specs()}
    for line_key in CRIU_PLUGIN_HOOKS:
        lines = [ln for ln in hs.__doc__.splitlines() if ln.startswith(line_key + " ")]
        assert lines, f"{line_key} is not mapped"
        ours = lines[0].split("``")[1].split("(")[0]
        assert ours in names, f"{line_key} maps to unknown hook {ours}"
