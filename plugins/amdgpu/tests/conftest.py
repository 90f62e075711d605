"""Fixtures of the amdgpu plugin's tests: an emulated KFD with GPUs and a target process holding BOs."""

from __future__ import annotations

import ctypes.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

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


# ---------------------------------------------------------------------------------------------- FUSE device

PLUGIN_ROOT = Path(__file__).resolve().parent.parent
TARGET_C = PLUGIN_ROOT / "criu_amdgpu" / "emu" / "kfd_target.c"
FUSE_GPU = 0x70B3


def fuse_missing() -> str | None:
    """Why the FUSE-emulated device cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (process_vm_* and pidfd_getfd on other processes)"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    if ctypes.util.find_library("fuse3") is None:
        return "libfuse3 is not installed"
    for tool in ("fusermount3", "gcc"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(PLUGIN_ROOT), *sys.path])
    return env


@pytest.fixture
def fuse_kfd(tmp_path):
    """Serve the emulated KFD (one GPU, render minor 128) at <tmp>/mnt/kfd (render node <tmp>/mnt/dri/renderD128,
    BO contents kept under <tmp>/store/<pid>/<addr hex>.bo); yields (device path, log path)."""
    if reason := fuse_missing():
        pytest.skip(reason)
    mnt, log = tmp_path / "mnt", tmp_path / "kfd.log"
    mnt.mkdir()
    server = subprocess.Popen([sys.executable, "-m", "criu_amdgpu.emu.fuse_kfd", str(mnt), "--gpu", f"{FUSE_GPU}:128",
                               "--log", str(log), "--store", str(tmp_path / "store")], env=_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dev = mnt / "kfd"
    for _ in range(100):
        if dev.exists():
            break
        if server.poll() is not None:
            pytest.fail(f"FUSE server exited: {server.stderr.read().decode()}")
        time.sleep(0.05)
    else:
        server.kill()
        pytest.fail("FUSE server did not come up")
    yield str(dev), log
    if subprocess.run(["fusermount3", "-u", str(mnt)], check=False, capture_output=True).returncode != 0:
        # still busy (a restored task may hold the device until the subreaper's teardown): detach it lazily,
        # so no dead mount is left behind
        subprocess.run(["fusermount3", "-uz", str(mnt)], check=False, capture_output=True)
    try:
        server.wait(timeout=5)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@pytest.fixture
def target_bin(tmp_path):
    """The C KFD client, compiled for this test."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    out = tmp_path / "kfd_target"
    subprocess.run(["gcc", "-O1", "-Wall", "-o", str(out), str(TARGET_C)], check=True)
    return str(out)


