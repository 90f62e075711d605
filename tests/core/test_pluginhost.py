"""PluginHost: built-ins first, entry points, blocking, claims, error wrapping, inventory requirements."""

from __future__ import annotations

import types

import pytest

from criu_core.context import DumpContext
from criu_core.errors import MissingPluginError, PluginFailed, UnsupportedResource
from criu_core.hookspecs import hookimpl
from criu_core.options import Options
from criu_core.plugins import DISABLE_ENV, PluginHost
from criu_core.resources import FdInfo, FileClaim, Vma, VmaClaim


def _ctx(host, tmp_path):
    return DumpContext(options=Options(), host=host, images_dir=tmp_path)


def test_builtins_come_first_and_cannot_be_disabled():
    host = PluginHost(disabled=["builtin.memory"], load_entry_points=False)
    names = [p.name for p in host.plugins()]
    assert names[:2] == ["builtin.memory", "builtin.files"]
    assert all(p.builtin for p in host.plugins())


def test_installed_plugins_are_listed_with_distribution():
    host = PluginHost()
    by_name = {p.name: p for p in host.plugins()}
    for name in ("amdgpu", "uprobes", "netns", "cuda_stub"):
        assert name in by_name, f"{name} is installed by make test"
        assert by_name[name].distribution == "criu-plugin-" + name.replace("_", "-")
        assert by_name[name].version == "0.1.0"
    text = host.describe()
    assert "uprobes  (plugin, criu-plugin-uprobes 0.1.0)" in text


def test_disable_by_argument_and_environment(monkeypatch):
    host = PluginHost(disabled=["amdgpu"])
    assert not host.has_plugin("amdgpu") and host.has_plugin("netns")
    monkeypatch.setenv(DISABLE_ENV, "netns, cuda_stub")
    host = PluginHost()
    assert not host.has_plugin("netns") and not host.has_plugin("cuda_stub") and host.has_plugin("uprobes")


def test_plugin_options_are_added_to_the_table():
    host = PluginHost()
    spec = host.options.specs["allow-uprobes"]
    assert spec.owner == "uprobes" and spec.kind == "flag" and "dump" in spec.stages


def test_claims_stop_at_first_and_unclaimed_vma_is_refused(tmp_path):
    host = PluginHost(load_entry_points=False)
    seen = []

    class First:
        @hookimpl
        def criu_vma_dump(self, ctx, vma):
            seen.append("first")
            return VmaClaim(plugin="first", skip=True) if vma.name == "[special]" else None

    host.register(First(), "first")
    ctx = _ctx(host, tmp_path)
    vma = Vma(pid=1, start=0x1000, end=0x2000, prot=0, flags=0, name="[special]")
    assert host.vma_dump(ctx, vma).plugin == "first"
    assert ctx.used_plugins == ["first"], "a claim by a plugin records it for the inventory"
    host.unregister("first")
    host.register(types.SimpleNamespace(), "empty")
    odd = Vma(pid=7, start=0x1000, end=0x2000, prot=0, flags=0, name="[weird]")
    # the built-in memory handler does not claim an unknown special mapping in this skeleton either way:
    try:
        host.vma_dump(ctx, odd)
    except UnsupportedResource as exc:
        assert "1000-2000" in str(exc) and "task 7" in str(exc)


def test_unclaimed_file_names_task_and_fd(tmp_path):
    host = PluginHost(load_entry_points=False)
    fd = FdInfo(pid=42, fd=5, local_fd=-1, kind="anon:[weird]", link="anon_inode:[weird]")
    with pytest.raises(UnsupportedResource, match="file 5 of task 42"):
        host.file_dump(_ctx(host, tmp_path), fd)


def test_plugin_bug_is_reported_as_plugin_failed(tmp_path):
    host = PluginHost(load_entry_points=False)

    class Buggy:
        @hookimpl
        def criu_file_dump(self, ctx, fd):
            raise KeyError("oops")

    host.register(Buggy(), "buggy")
    fd = FdInfo(pid=1, fd=0, local_fd=-1, kind="reg", link="/x")
    with pytest.raises(PluginFailed, match="plugin buggy failed in criu_file_dump"):
        host.file_dump(_ctx(host, tmp_path), fd)


def test_file_claim_records_inventory_name(tmp_path):
    host = PluginHost(load_entry_points=False)
    mod = types.ModuleType("fakeplug")
    mod.CRIU_INVENTORY_NAME = "fake_plugin"

    @hookimpl
    def criu_file_dump(ctx, fd):
        return FileClaim(plugin="fake", entry=None, fd_type=16)

    mod.criu_file_dump = criu_file_dump
    host.register(mod, "fake")
    ctx = _ctx(host, tmp_path)
    host.file_dump(ctx, FdInfo(pid=1, fd=3, local_fd=-1, kind="chr", link="/dev/fake"))
    assert ctx.used_plugins == ["fake_plugin"]


def test_restore_requires_plugins_named_by_inventory():
    host = PluginHost(disabled=["cuda_stub"])
    assert host.check_required(["amdgpu_plugin"]) == ["amdgpu"]
    with pytest.raises(MissingPluginError, match="cuda_stub.*criu-plugin-cuda-stub"):
        host.check_required(["cuda_plugin"])
    with pytest.raises(MissingPluginError, match="'frobnicator'.*criu-plugin-frobnicator"):
        host.check_required(["frobnicator"])


def test_misspelled_hook_is_rejected():
    from pluggy import PluginValidationError

    host = PluginHost(load_entry_points=False)

    class Typo:
        @hookimpl
        def criu_file_dumpp(self, ctx, fd):
            return None

    with pytest.raises(PluginValidationError):
        host.register(Typo(), "typo")


def test_fast_entry_point_scan_agrees_with_importlib_metadata():
    import importlib.metadata as md

    from criu_core.plugins import ENTRY_POINT_GROUP, iter_entry_points

    expected = sorted((e.name, e.value, e.dist.metadata["Name"], e.dist.version)
                      for e in md.entry_points(group=ENTRY_POINT_GROUP))
    assert sorted(iter_entry_points(ENTRY_POINT_GROUP)) == expected
    assert len(expected) >= 4
