"""Topology parsing and GPU matching on emulated sysfs trees (1, 2 and 8 GPUs, XGMI hives, NUMA layouts)."""

from __future__ import annotations

import pytest

from criu_amdgpu.emu.sysfs import GpuSpec, write_topology
from criu_amdgpu.topology import (
    IOLINK_TYPE_XGMI,
    TOPOLOGY_DIR,
    GpuMatchError,
    MatchChecks,
    TopologyError,
    match_gpus,
    parse_topology,
)

GIB = 1 << 30


def tree(tmp_path, name, gpus, cpu_nodes=1):
    return parse_topology(write_topology(tmp_path / name, gpus, cpu_nodes))


def two(ids=(0x70B3, 0x1C4D), **kw):
    return [GpuSpec(ids[0], 128, **kw), GpuSpec(ids[1], 129, **kw)]


def hive8(base=0x1000, hive=0xAB):
    return [GpuSpec(base + i, 128 + i, hive_id=hive) for i in range(8)]


def test_parse_two_gpus(tmp_path):
    t = tree(tmp_path, "m", two())
    assert [n.node_id for n in t.nodes] == [0, 1, 2]
    assert [g.gpu_id for g in t.gpus] == [0x70B3, 0x1C4D]
    assert [g.render_minor for g in t.gpus] == [128, 129]
    g = t.gpus[0]
    assert g.vram_public and g.vram_size == 206141652992 and g.prop("device_id") == 29857
    assert len(g.links) == 1 and g.links[0].valid and g.links[0].bidirectional
    assert t.cpus[0].prop("cpu_cores_count") == 96 and t.hives() == []


def test_parse_eight_gpu_hive(tmp_path):
    t = tree(tmp_path, "m", hive8())
    hives = t.hives()
    assert len(hives) == 1 and len(hives[0]) == 8
    assert sum(1 for link in t.gpus[0].links if link.type == IOLINK_TYPE_XGMI) == 7


def test_parse_skips_gpus_the_cgroup_hides(tmp_path):
    root = write_topology(tmp_path / "m", two())
    gpu_id = root / TOPOLOGY_DIR / "nodes" / "2" / "gpu_id"
    gpu_id.unlink()
    gpu_id.mkdir()  # unreadable, as EPERM on a masked GPU
    t = parse_topology(root)
    assert [g.gpu_id for g in t.gpus] == [0x70B3]
    assert not t.cpus[0].links[1].valid  # the CPU's link to the hidden GPU is not valid any more


def test_parse_errors_name_the_file(tmp_path):
    root = write_topology(tmp_path / "m", two())
    props = root / TOPOLOGY_DIR / "nodes" / "1" / "properties"
    props.write_text(props.read_text() + "garbage line here\n")
    with pytest.raises(TopologyError, match=r"nodes/1/properties:\d+: expected 'name value'"):
        parse_topology(root)
    with pytest.raises(TopologyError, match="no KFD topology"):
        parse_topology(tmp_path / "nothing")


def test_identical_host_maps_identity(tmp_path):
    m = match_gpus(tree(tmp_path, "a", two()), tree(tmp_path, "b", two()))
    assert m.gpus == {0x70B3: 0x70B3, 0x1C4D: 0x1C4D} and m.cpus == {0: 0}


def test_single_gpu_onto_other_gpu_id(tmp_path):
    m = match_gpus(tree(tmp_path, "a", [GpuSpec(0x70B3)]), tree(tmp_path, "b", [GpuSpec(0x5555)]))
    assert m.gpus == {0x70B3: 0x5555}


def test_permuted_gpu_ids_map_one_to_one(tmp_path):
    m = match_gpus(tree(tmp_path, "a", two()), tree(tmp_path, "b", two((0x2222, 0x1111))))
    assert sorted(m.gpus.values()) == [0x1111, 0x2222] and len(set(m.gpus.values())) == 2


def test_different_device_id_fails_naming_it(tmp_path):
    other = [GpuSpec(0x2222, props={"device_id": 29858})]
    with pytest.raises(GpuMatchError, match=r"no local GPU can host checkpointed GPU 0x70b3.*device_id 29858 != 29857"):
        match_gpus(tree(tmp_path, "a", [GpuSpec(0x70B3)]), tree(tmp_path, "b", other))


def test_smaller_vram_fails_unless_check_is_off(tmp_path):
    src = tree(tmp_path, "a", [GpuSpec(0x70B3, vram_size=64 * GIB)])
    dst = tree(tmp_path, "b", [GpuSpec(0x2222, vram_size=32 * GIB)])
    with pytest.raises(GpuMatchError, match="VRAM 32768 MiB < 65536 MiB"):
        match_gpus(src, dst)
    checks = MatchChecks.from_env({"KFD_VRAM_SIZE_CHECK": "NO"})
    assert match_gpus(src, dst, checks).gpus == {0x70B3: 0x2222}


def test_larger_gpus_and_newer_firmware_are_fine(tmp_path):
    src = tree(tmp_path, "a", two(vram_size=64 * GIB))
    dst = tree(tmp_path, "b", two((1, 2), vram_size=128 * GIB, props={"fw_version": 200, "num_gws": 128}))
    assert match_gpus(src, dst).gpus == {0x70B3: 1, 0x1C4D: 2}


def test_older_firmware_fails_unless_check_is_off(tmp_path):
    src = tree(tmp_path, "a", [GpuSpec(1)])
    dst = tree(tmp_path, "b", [GpuSpec(2, props={"fw_version": 100})])
    with pytest.raises(GpuMatchError, match="KFD_FW_VER_CHECK=0"):
        match_gpus(src, dst)
    assert match_gpus(src, dst, MatchChecks.from_env({"KFD_FW_VER_CHECK": "0"})).gpus == {1: 2}


def test_too_small_or_too_large_machine_fails_before_restore(tmp_path):
    with pytest.raises(GpuMatchError, match="the checkpoint has 2 GPU\\(s\\), this machine 1"):
        match_gpus(tree(tmp_path, "a", two()), tree(tmp_path, "b", [GpuSpec(1)]))
    with pytest.raises(GpuMatchError, match="this machine 8"):
        match_gpus(tree(tmp_path, "c", two()), tree(tmp_path, "d", hive8()))


def test_eight_gpu_hive_onto_permuted_hive(tmp_path):
    src = tree(tmp_path, "a", hive8(0x1000))
    dst = tree(tmp_path, "b", list(reversed(hive8(0x2000, hive=0xCD))))
    m = match_gpus(src, dst)
    assert len(m.gpus) == 8 and set(m.gpus.values()) == {0x2000 + i for i in range(8)}


def test_two_hives_map_hive_to_hive(tmp_path):
    def spec(base):
        return ([GpuSpec(base + i, 128 + i, hive_id=1) for i in range(4)]
                + [GpuSpec(base + 4 + i, 132 + i, hive_id=2) for i in range(4)])

    src, dst = tree(tmp_path, "a", spec(0x100)), tree(tmp_path, "b", spec(0x900))
    m = match_gpus(src, dst)
    src_hives = [{g.gpu_id for g in h} for h in src.hives()]
    dst_hives = [{g.gpu_id for g in h} for h in dst.hives()]
    for h in src_hives:  # every source hive lands inside one local hive
        assert {m.gpus[g] for g in h} in dst_hives


def test_hive_cannot_be_split_across_a_machine_without_xgmi(tmp_path):
    src = tree(tmp_path, "a", [GpuSpec(1, hive_id=7), GpuSpec(2, 129, hive_id=7)])
    dst = tree(tmp_path, "b", [GpuSpec(3), GpuSpec(4, 129)])
    with pytest.raises(GpuMatchError, match="XGMI hive"):
        match_gpus(src, dst)


def test_numa_layout_must_match_unless_check_is_off(tmp_path):
    # checkpoint: both GPUs on CPU node 0; here: one GPU per NUMA node
    src = tree(tmp_path, "a", two(), cpu_nodes=2)
    dst = tree(tmp_path, "b", [GpuSpec(1, 128, numa_node=0), GpuSpec(2, 129, numa_node=1)], cpu_nodes=2)
    with pytest.raises(GpuMatchError, match="NUMA"):
        match_gpus(src, dst)
    assert len(match_gpus(src, dst, MatchChecks(numa=False)).gpus) == 2


def test_numa_swap_keeps_gpus_with_their_node(tmp_path):
    src = tree(tmp_path, "a", [GpuSpec(1, 128, numa_node=0), GpuSpec(2, 129, numa_node=1)], cpu_nodes=2)
    dst = tree(tmp_path, "b", [GpuSpec(3, 128, numa_node=1), GpuSpec(4, 129, numa_node=0)], cpu_nodes=2)
    m = match_gpus(src, dst)
    # GPU 1 and GPU 2 sit on different nodes, so their targets must too, consistently with the CPU map
    assert m.cpus[0] != m.cpus[1]
    node_of = {3: 1, 4: 0}
    assert node_of[m.gpus[1]] == m.cpus[0] and node_of[m.gpus[2]] == m.cpus[1]


def test_env_overrides_parse():
    assert MatchChecks.from_env({}) == MatchChecks()
    assert not MatchChecks.from_env({"KFD_NUMA_CHECK": "no"}).numa
    with pytest.raises(Exception, match="KFD_CAPABILITY_CHECK"):
        MatchChecks.from_env({"KFD_CAPABILITY_CHECK": "maybe"})
