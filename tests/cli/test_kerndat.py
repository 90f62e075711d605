"""The kernel probes, run for real on this machine, and how ``check`` reports a missing feature."""

from __future__ import annotations

import dataclasses

import pytest

from criu_core import kerndat
from criu_core.context import CheckContext
from criu_core.errors import KernelFeatureMissing
from criu_core.options import Options


@pytest.mark.parametrize("name", [n for n, f in kerndat.FEATURES.items() if f.required])
def test_required_features_are_present_here(name):
    ok, detail = kerndat.probe(name)
    assert ok, f"{name}: {detail}"


@pytest.mark.parametrize("name", ["pagemap_scan", "uffd", "timens", "timer_cr_ids"])
def test_features_criu_reports_on_this_machine(name):
    # criu check --all with CRIU 4.2 on the project's 6.18 kernel reports these as supported.
    ok, detail = kerndat.probe(name)
    assert ok, f"{name}: {detail}"


def _ctx(host, tmp_path):
    return CheckContext(options=Options(), host=host, images_dir=tmp_path)


def test_missing_required_feature_fails_naming_it(host, tmp_path, monkeypatch, capsys):
    broken = dataclasses.replace(kerndat.FEATURES["kcmp"], func=lambda: (False, "kcmp: ENOSYS"))
    monkeypatch.setitem(kerndat.FEATURES, "kcmp", broken)
    with pytest.raises(KernelFeatureMissing, match="kernel features missing: kcmp"):
        kerndat.run_check(_ctx(host, tmp_path))
    assert "Looks good." not in capsys.readouterr().out


def test_missing_optional_feature_is_only_a_warning(host, tmp_path, monkeypatch, capsys, caplog):
    broken = dataclasses.replace(kerndat.FEATURES["tracefs"], func=lambda: (False, "no tracefs"))
    monkeypatch.setitem(kerndat.FEATURES, "tracefs", broken)
    assert kerndat.run_check(_ctx(host, tmp_path), extra=True) == 0
    assert capsys.readouterr().out == "Looks good.\n"


def test_syscall_errors_become_a_missing_feature(monkeypatch):
    from criu_core.errors import SyscallError

    def enosys():
        raise SyscallError(38, "pidfd_open")

    monkeypatch.setitem(kerndat.FEATURES, "kcmp", dataclasses.replace(kerndat.FEATURES["kcmp"], func=enosys))
    ok, detail = kerndat.probe("kcmp")
    assert not ok and "ENOSYS" in detail


def test_plugin_probes_are_reported(host, tmp_path, capsys):
    from criu_core.hookspecs import hookimpl
    from criu_core.plugins import PluginHost

    class Probe:
        @hookimpl
        def criu_check_features(self, ctx):
            return [("fake_device", False, "no /dev/fake")]

    h = PluginHost(load_entry_points=False)
    h.register(Probe(), "fakeprobe")
    assert kerndat.run_check(_ctx(h, tmp_path)) == 0  # a plugin's missing device does not fail check
    with pytest.raises(KernelFeatureMissing):
        kerndat.run_check(_ctx(h, tmp_path), ["fake_device"])
