"""``criu_opts`` fields onto the command line's option names (cr-service.c:setup_opts_from_req)."""

from __future__ import annotations

import pytest

from criu_core.cli.app import install_table
from criu_core.options import OptionRegistry
from criu_core.service.rpcopts import BadRequest, apply_rpc_opts
from criu_core.service.setup import refuse_unimplemented

rpc = pytest.importorskip("criu_core.images.pb.rpc_pb2")


@pytest.fixture
def registry() -> OptionRegistry:
    return install_table(OptionRegistry())


def _apply(registry, swrk=True, **fields):
    options = registry.defaults()
    given = apply_rpc_opts(rpc.criu_opts(images_dir_fd=-1, **fields), options, swrk=swrk)
    return options, given


def test_runc_checkpoint_options(registry):
    options, given = _apply(
        registry,
        root="/run/runc/x/rootfs",
        manage_cgroups=True,
        manage_cgroups_mode=rpc.DEFAULT,
        notify_scripts=True,
        shell_job=False,
        orphan_pts_master=True,
        tcp_skip_in_flight=False,
        external=["net[4026531992]:extRootNetNS"],
        ext_mnt=[rpc.ext_mount_map(key="/proc/kcore", val="/dev/null")],
        network_lock=rpc.NFTABLES,
        ghost_limit=2 << 20,
        timeout=30,
        empty_ns=0x40000000,
    )
    assert options.root == "/run/runc/x/rootfs" and options.manage_cgroups == "soft"
    assert options.skip_in_flight is False and options.shell_job is False and options.orphan_pts_master
    assert options.external == ["net[4026531992]:extRootNetNS"] and options.ext_mount_map == ["/proc/kcore:/dev/null"]
    assert options.network_lock == "nftables" and options.ghost_limit == 2 << 20 and options.timeout == 30
    assert options.empty_ns == "net"
    assert given["manage-cgroups"] == "manage_cgroups_mode" and given["skip-in-flight"] == "tcp_skip_in_flight"


def test_unimplemented_fields_are_refused_naming_the_field(registry):
    # runc always sends manage_cgroups (+ a mode): refused until the engines manage cgroups.
    options, given = _apply(registry, manage_cgroups=True, manage_cgroups_mode=rpc.DEFAULT, shell_job=True)
    where = {k: f"RPC field {v}" for k, v in given.items()}
    with pytest.raises(BadRequest, match=r"--manage-cgroups \(RPC field manage_cgroups_mode\) is recognised"):
        refuse_unimplemented(options, registry, "dump", where)
    options, given = _apply(registry, shell_job=True, leave_running=True)
    refuse_unimplemented(options, registry, "dump", {})  # both implemented


def test_restore_only_and_list_fields(registry):
    options, _given = _apply(
        registry,
        rst_sibling=True,
        inherit_fd=[rpc.inherit_fd(key="pipe:[55030]", fd=0)],
        join_ns=[rpc.join_namespace(ns="uts", ns_file="/proc/1/ns/uts", extra_opt="x")],
        veths=[rpc.criu_veth_pair(if_in="eth0", if_out="veth0")],
        cg_root=[rpc.cgroup_root(ctrl="cpu", path="/a"), rpc.cgroup_root(path="/b")],
        exec_cmd=["/bin/true"],
        cpu_cap=0xFFFFFFFF,
        auto_ext_mnt=True,
    )
    assert options.restore_sibling is True and options.inherit_fd == ["fd[0]:pipe:[55030]"]
    assert options.join_ns == ["uts:/proc/1/ns/uts,x"] and options.veth_pair == ["eth0=veth0"]
    assert options.cgroup_root == ["cpu:/a", "/b"] and options.exec_cmd is True
    assert options.cpu_cap == "all" and options.ext_mount_map == ["auto"]


def test_manage_cgroups_ignore_sets_nothing(registry):
    options, given = _apply(registry, manage_cgroups=True, manage_cgroups_mode=rpc.IGNORE)
    assert options.manage_cgroups is None and "manage-cgroups" not in given


def test_leave_stopped_wins(registry):
    options, _ = _apply(registry, leave_running=True, leave_stopped=True)
    assert options.leave_stopped and not options.leave_running


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"rst_sibling": True}, "rst_sibling is not allowed in standalone service"),
        ({"inherit_fd": [rpc.inherit_fd(key="k", fd=3)]}, "inherit_fd is not allowed in standalone service"),
        ({"ps": rpc.criu_page_server_info(fd=5)}, "ps.fd is not allowed in standalone service"),
    ],
)
def test_service_refusals(registry, fields, message):
    with pytest.raises(BadRequest, match=message):
        _apply(registry, swrk=False, **fields)


def test_bad_values(registry):
    with pytest.raises(BadRequest, match="only CLONE_NEWNET"):
        _apply(registry, empty_ns=0x20000000)
    with pytest.raises(BadRequest, match="pidfd_store_sk"):
        _apply(registry, pidfd_store_sk=5)
