"""The KFD layer against the real /dev/kfd and sysfs topology (runs only on a machine with an AMD GPU)."""

from __future__ import annotations

import os

import pytest

from criu_amdgpu import kfd
from criu_amdgpu.discovery import discover
from criu_amdgpu.topology import parse_topology

pytestmark = [pytest.mark.device("/dev/kfd"), pytest.mark.root]


def test_version_is_new_enough():
    fd = os.open("/dev/kfd", os.O_RDWR | os.O_CLOEXEC)
    try:
        major, minor = kfd.check_version(kfd.FdKfdDevice(fd))
    finally:
        os.close(fd)
    assert major == 1 and minor >= 8


def test_topology_and_udev_agree():
    topo = parse_topology("/")
    assert topo.gpus, "a KFD device without GPUs in its topology"
    found = discover()
    assert found.kfd == "/dev/kfd"
    assert {g.render_minor for g in topo.gpus} <= set(found.render_nodes)


def test_process_info_and_unpause_on_our_own_process():
    fd = os.open("/dev/kfd", os.O_RDWR | os.O_CLOEXEC)
    try:
        dev = kfd.FdKfdDevice(fd)
        info = kfd.process_info(dev)
        assert info.pid == os.getpid() and info.num_devices == len(parse_topology("/").gpus)
        cp = kfd.checkpoint(dev, info)
        assert len(cp.devices) == info.num_devices and len(cp.priv_data) == info.priv_data_size
        kfd.unpause(dev)
    finally:
        os.close(fd)
