"""RemoteTaskSide/RemoteKfdDevice: the restore-side ioctls as injected syscalls, arguments in the task's memory.

The "task" is this process: a stand-in for the core's RemoteTask runs each named syscall here (same calling
convention: ``syscall(name, *args, check=True)``, ``read_mem``/``write_mem``), and the device is the FUSE-emulated
KFD, so the server follows pointers into scratch memory the plugin allocated with injected mmaps.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

import pytest
from criu_core.errors import SyscallError

from criu_amdgpu import abi, kfd
from criu_amdgpu.emu.model import alloc_memory
from criu_amdgpu.provider import RemoteTaskSide

pytestmark = pytest.mark.root

_NR = {"openat": 257, "ioctl": 16, "close": 3, "mmap": 9, "munmap": 11, "fcntl": 72}
GPU = 0x70B3


class SelfRemote:
    """Runs the 'injected' syscalls in this process and records them."""

    def __init__(self):
        self.pid = self.tid = os.getpid()
        self.calls = []
        self.libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self.libc.syscall.restype = ctypes.c_long

    def syscall(self, name, *args, check=True):
        self.calls.append((name, *args))
        ret = self.libc.syscall(ctypes.c_long(_NR[name]), *[ctypes.c_long(a) for a in args])
        if ret == -1:
            ret = -ctypes.get_errno()
            if check:
                raise SyscallError(-ret, name, self.pid)
        return ret

    def read_mem(self, addr, size):
        return ctypes.string_at(addr, size)

    def write_mem(self, addr, data):
        ctypes.memmove(addr, data, len(data))


def test_open_moves_descriptors_above_the_tasks_own(fuse_kfd):
    dev_path, _ = fuse_kfd
    remote = SelfRemote()
    numbers = iter(range(700, 800))
    side = RemoteTaskSide(remote, lambda: next(numbers))
    fd = side.open(dev_path, os.O_RDWR)
    try:
        assert fd == 700 and os.readlink(f"/proc/self/fd/{fd}") == dev_path
        assert [c[0] for c in remote.calls] == ["mmap", "openat", "munmap", "fcntl", "close"]
        copy = side.getfd(fd)
        assert os.path.samestat(os.fstat(copy), os.fstat(fd))
        os.close(copy)
    finally:
        side.close(fd)


def test_ioctls_run_in_the_task_with_arrays_in_its_memory(fuse_kfd):
    dev_path, _ = fuse_kfd
    remote = SelfRemote()
    side = RemoteTaskSide(remote, lambda: 700)
    fd = side.open(dev_path, os.O_RDWR)
    try:
        dev = side.kfd_device(fd)
        assert kfd.check_version(dev) == (1, 17)
        alloc_memory(dev, GPU, 0x7F0000000000, 0x1000, abi.AllocFlag.DOORBELL)
        info = kfd.process_info(dev)
        cp = kfd.checkpoint(dev, info)
        assert cp.bos[0].addr == 0x7F0000000000 and abi.mmap_offset_gpu_id(cp.bos[0].offset) == GPU
        kfd.unpause(dev)
        ioctls = [c for c in remote.calls if c[0] == "ioctl"]
        assert [c[2] for c in ioctls][-3:] == [abi.AMDKFD_IOC_CRIU_OP] * 3
        # every scratch area the plugin mapped in the task was unmapped again
        mapped = [c[1] for c in remote.calls if c[0] == "mmap"]
        assert len(mapped) == len([c for c in remote.calls if c[0] == "munmap"])
        with pytest.raises(kfd.KfdError) as exc:
            kfd.unpause(dev)
        assert exc.value.errno == 22 and "restored task" in str(exc.value)
    finally:
        side.close(fd)


def _make_seed():
    try:
        from criu_core.ptrace import make_seed
    except ImportError:
        return None
    return make_seed


@pytest.mark.skipif(_make_seed() is None, reason="criu_core.ptrace.make_seed (the core's restore seeds) is not here yet")
def test_restore_inside_a_real_seed_through_the_cores_remote_task(fuse_kfd, subreaper, tmp_path):
    """A restore seed made by the core opens the FUSE KFD and issues RESTORE itself; we RESUME it."""
    import signal

    dev_path, log = fuse_kfd
    render = tmp_path / "renderD128"
    render.touch()
    fd = os.open(dev_path, os.O_RDWR)
    me = kfd.FdKfdDevice(fd)
    alloc_memory(me, GPU, 0x7F0000200000, 4096, abi.AllocFlag.DOORBELL)
    info = kfd.process_info(me)
    cp = kfd.checkpoint(me, info)
    kfd.unpause(me)
    pid = 31000
    while os.path.exists(f"/proc/{pid}"):
        pid += 1
    remote = _make_seed()(pid)
    subreaper.append(remote.tid)
    try:
        side = RemoteTaskSide(remote, lambda: 700)
        kfd_fd = side.open(dev_path, os.O_RDWR)
        render_fd = side.open(str(render), os.O_RDWR)
        assert os.readlink(f"/proc/{pid}/fd/{kfd_fd}") == dev_path
        dev = side.kfd_device(kfd_fd)
        out = kfd.restore(dev, [kfd.DeviceBucket(GPU, GPU, render_fd)], cp.bos, cp.priv_data, 0)
        assert abi.mmap_offset_gpu_id(out[0].restored_offset) == GPU
        kfd.resume(me, pid)
    finally:
        os.close(fd)
        os.kill(remote.tid, signal.SIGKILL)
    lines = [ln.split() for ln in log.read_text().splitlines()]
    restore = next(ln for ln in lines if ln[3] == hex(abi.AMDKFD_IOC_CRIU_OP) and ln[4] == "3")
    assert (restore[1], restore[2], restore[6]) == (str(pid), str(pid), "0"), "RESTORE came from the seed itself"
    assert any(ln[4] == "4" and ln[5] == str(pid) and ln[6] == "0" for ln in lines)
