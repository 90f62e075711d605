"""The plugin's images: CRIU's amdgpu wire format, the 8-byte size header, and refusal of bad files."""

from __future__ import annotations

import struct

import pytest
from criu_core.errors import ImageFormatError

from criu_amdgpu import images, proto
from criu_amdgpu.emu.sysfs import GpuSpec, write_topology
from criu_amdgpu.topology import parse_topology


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def test_bo_entry_wire_format_matches_criu_field_numbers():
    # kfd_bo_entry as CRIU v4.2 writes it: 1 addr, 2 size, 3 offset, 4 alloc_flags, 5 gpu_id (no handle)
    v42 = b"".join(bytes([tag << 3]) + _varint(v) for tag, v in
                   [(1, 0x7F0000000000), (2, 0x4000), (3, 1 << 32), (4, 0x80000001), (5, 0x70B3)])
    e = proto.kfd_bo_entry.FromString(v42)
    assert (e.addr, e.size, e.offset, e.alloc_flags, e.gpu_id) == (0x7F0000000000, 0x4000, 1 << 32, 0x80000001, 0x70B3)
    assert not e.HasField("handle")
    e.handle = 0xFFFFFFFF  # criu-dev requires it: we always write it
    assert e.SerializeToString() == v42 + bytes([6 << 3]) + _varint(0xFFFFFFFF)


def test_criu_kfd_field_numbers():
    fields = {f.name: f.number for f in proto.criu_kfd.DESCRIPTOR.fields}
    assert fields == {"pid": 1, "num_of_gpus": 2, "num_of_cpus": 3, "device_entries": 4, "num_of_bos": 5,
                      "bo_entries": 6, "num_of_objects": 7, "shared_mem_size": 8, "shared_mem_magic": 9,
                      "priv_data": 10}
    dev = {f.name: f.number for f in proto.kfd_device_entry.DESCRIPTOR.fields}
    assert dev["hive_id"] == 22 and dev["vram_size"] == 31 and dev["iolinks"] == 32 and len(dev) == 32
    assert proto.kfd_device_entry.DESCRIPTOR.fields_by_name["hive_id"].type == 4  # TYPE_UINT64


def test_criu_render_node_reads_criu_dev_images_with_drm_bos():
    # criu-dev appends a repeated drm_bo_entry (field 5): kept as unknown bytes, written back unchanged
    raw = bytes([1 << 3]) + _varint(0x70B3) + bytes([2 << 3, 7, 3 << 3, 128, 1]) + bytes([(5 << 3) | 2, 2, 8, 1])
    node = proto.criu_render_node.FromString(raw)
    assert (node.gpu_id, node.id, node.drm_render_minor) == (0x70B3, 7, 128)
    assert node.SerializeToString() == raw


def _kfd_msg():
    return proto.criu_kfd(pid=42, num_of_gpus=1, num_of_cpus=1, num_of_bos=0, num_of_objects=0, shared_mem_size=0,
                          shared_mem_magic=0, priv_data=b"\1\2")


def test_framing_round_trip_and_header(image_dir):
    path = images.write_message(image_dir, images.kfd_image_name(7), _kfd_msg())
    raw = path.read_bytes()
    assert path.name == "amdgpu-kfd-7.img" and oct(path.stat().st_mode & 0o777) == "0o600"
    assert struct.unpack("<Q", raw[:8])[0] == len(raw) - 8
    assert images.read_message(image_dir, "amdgpu-kfd-7.img", proto.criu_kfd).priv_data == b"\1\2"


def test_bad_images_name_file_and_offset(image_dir):
    path = images.write_message(image_dir, "amdgpu-kfd-1.img", _kfd_msg())
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ImageFormatError, match=r"amdgpu-kfd-1.img: at offset 0: header says"):
        images.read_message(image_dir, "amdgpu-kfd-1.img", proto.criu_kfd)
    partial = proto.criu_kfd(pid=1).SerializePartialToString()
    path.write_bytes(struct.pack("<Q", len(partial)) + partial)
    with pytest.raises(ImageFormatError, match="lacks required fields"):
        images.read_message(image_dir, "amdgpu-kfd-1.img", proto.criu_kfd)
    path.write_bytes(struct.pack("<Q", 3) + b"\xff\xff\xff")
    with pytest.raises(ImageFormatError, match="offset 8: not a valid criu_kfd"):
        images.read_message(image_dir, "amdgpu-kfd-1.img", proto.criu_kfd)
    with pytest.raises(ImageFormatError, match="cannot open"):
        images.read_message(image_dir, "amdgpu-kfd-2.img", proto.criu_kfd)


def test_pages_file_checks_size(image_dir):
    pf = images.PagesFile(image_dir / images.pages_image_name(3, 0x70B3))
    assert pf.path.name == "amdgpu-pages-3-70b3.img"
    fd = pf.create(8192)
    import os
    os.write(fd, b"x" * 8192)
    os.close(fd)
    os.close(pf.open_checked(8192))
    with pytest.raises(ImageFormatError, match="the BOs need 4096"):
        pf.open_checked(4096)


def test_topology_survives_the_image(tmp_path):
    topo = parse_topology(write_topology(tmp_path / "m", [GpuSpec(0x1000 + i, 128 + i, hive_id=5) for i in range(4)]
                                         + [GpuSpec(0x2000, 140, numa_node=1)], cpu_nodes=2))
    entries = images.topology_to_entries(topo, {0x1000: 0xAAAA})
    msg = _kfd_msg()
    msg.device_entries.extend(entries)
    back = images.entries_to_topology(proto.criu_kfd.FromString(msg.SerializeToString()).device_entries)
    assert [n.gpu_id for n in back.gpus] == [0xAAAA, 0x1001, 0x1002, 0x1003, 0x2000]  # user ids
    assert len(back.cpus) == 2 and back.cpus[0].prop("cpu_cores_count") == 96
    assert [len(h) for h in back.hives()] == [4]
    g = back.gpus[0]
    assert g.vram_size == topo.gpus[0].vram_size and g.prop("capability") == 2893521536 and g.render_minor == 128
