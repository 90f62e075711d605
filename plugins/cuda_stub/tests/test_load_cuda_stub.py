"""The cuda_stub plugin installs as a distribution and loads through its entry point."""

from __future__ import annotations

from importlib.metadata import entry_points


def test_entry_point_loads_the_plugin_module(installed_plugin_host):
    eps = [ep for ep in entry_points(group="criu_core.plugins") if ep.name == "cuda_stub"]
    assert len(eps) == 1, "exactly one entry point named cuda_stub"
    assert eps[0].value == "criu_cuda_stub.plugin"
    info = {p.name: p for p in installed_plugin_host.plugins()}["cuda_stub"]
    assert not info.builtin
    assert info.distribution == "criu-plugin-cuda-stub"
    assert info.hooks, "the plugin implements at least one hook"
