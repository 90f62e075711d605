"""Fixtures of the amdgpu plugin's tests: an emulated KFD with GPUs and a target process holding BOs."""

from __future__ import annotations

import pytest

from criu_amdgpu.emu.model import FakeGpu, FakeKfd, FakeKfdDevice
from criu_amdgpu.emu.scenario import GPU_A, GPU_B, populate

TARGET_PID = 4242


@pytest.fixture
def fake_kfd():
    kfd = FakeKfd([FakeGpu(GPU_A, 128), FakeGpu(GPU_B, 129)], tracer_of=lambda pid: None)
    yield kfd
    kfd.close()


@pytest.fixture
def target(fake_kfd):
    """A process (pid 4242) that opened /dev/kfd and allocated BOs on both GPUs, with known contents."""
    dev = FakeKfdDevice(fake_kfd, fake_kfd.open(TARGET_PID))
    populate(fake_kfd, dev, TARGET_PID)
    return dev
