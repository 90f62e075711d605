"""The FUSE-emulated /dev/kfd: real processes issue real ioctls, the server follows their pointers.

Needs /dev/fuse, libfuse3, fusermount3, gcc and root (process_vm_* and pidfd_getfd on other processes).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from criu_amdgpu import abi, kfd
from criu_amdgpu.emu.model import alloc_memory
from criu_amdgpu.ioctl import pidfd_getfd

HERE = Path(__file__).resolve().parent
PLUGIN_ROOT = HERE.parent
TARGET_C = PLUGIN_ROOT / "criu_amdgpu" / "emu" / "kfd_target.c"
GPU = 0x70B3

pytestmark = pytest.mark.root


def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(PLUGIN_ROOT), *sys.path]))


def _kv(text):
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_device_is_a_regular_file_found_by_configuration(fuse_kfd):
    dev, _ = fuse_kfd
    st = os.stat(dev)
    assert not os.path.exists("/dev/kfd") or os.stat("/dev/kfd").st_ino != st.st_ino
    assert st.st_rdev == 0 and oct(st.st_mode)[-3:] == "666"


def test_c_target_checkpoints_itself_through_real_ioctls(fuse_kfd, target_bin):
    dev, _ = fuse_kfd
    out = subprocess.run([target_bin, dev, str(GPU), "self"], capture_output=True, text=True, timeout=20,
                         check=False)
    kv = _kv(out.stdout)
    assert out.returncode == 0, out.stdout + out.stderr
    assert kv["version"] == "1.17"
    assert (kv["num_devices"], kv["num_bos"], kv["pid"]) == ("1", "2", kv["pid"])
    # the server wrote the buckets into the C process's calloc'ed arrays through process_vm_writev
    userptr = kv["bo0"].split(",")
    assert userptr[1:] == ["4096", str(int(userptr[0], 16)), str(GPU), "4"]  # USERPTR: offset is the CPU address
    doorbell = kv["bo1"].split(",")
    assert doorbell[0] == "7f0000200000" and int(doorbell[2]) >> 62 == 3
    assert abi.mmap_offset_gpu_id(int(doorbell[2])) == GPU
    assert kv["priv_version"] == "1"
    assert kv["unpause_twice"] == "-1", "UNPAUSE without a pause is refused (EINVAL)"


def test_plugin_ops_from_python_over_fuse(fuse_kfd):
    dev_path, log = fuse_kfd
    fd = os.open(dev_path, os.O_RDWR)
    try:
        dev = kfd.FdKfdDevice(fd)
        assert kfd.check_version(dev) == (1, 17)
        alloc_memory(dev, GPU, 0x7F0000000000, 0x2000, abi.AllocFlag.VRAM)
        info = kfd.process_info(dev)
        assert (info.num_devices, info.num_bos, info.pid) == (1, 1, os.getpid())
        cp = kfd.checkpoint(dev, info)
        assert cp.devices == [kfd.DeviceBucket(GPU, GPU, 0)]
        assert (cp.bos[0].addr, cp.bos[0].size, cp.bos[0].gpu_id) == (0x7F0000000000, 0x2000, GPU)
        assert cp.bos[0].dmabuf_fd == abi.KFD_INVALID_FD  # a FUSE server cannot install fds in its caller
        kfd.unpause(dev)
        with pytest.raises(kfd.KfdError) as exc:  # this process already has BOs: RESTORE is refused
            kfd.restore(dev, [kfd.DeviceBucket(GPU, GPU, 0)], cp.bos, cp.priv_data, 0)
        assert exc.value.errno == errno.EINVAL
        with pytest.raises(kfd.KfdError) as exc:
            kfd.resume(dev, 1)  # no KFD process for pid 1
        assert exc.value.errno == errno.ESRCH
        with pytest.raises(kfd.KfdError) as exc:
            dev.ioctl(abi.AMDKFD_IOC_CREATE_PROCESS, bytearray())
        assert exc.value.errno == errno.ENOTTY
    finally:
        os.close(fd)
    restored = _restore_in_child_thread(dev_path, cp)
    assert restored["tid"] != restored["pid"], "RESTORE came from a second thread of the child"
    assert restored["bos"][0][0] != cp.bos[0].offset, "VRAM gets a new mmap offset"
    lines = [line.split() for line in log.read_text().splitlines()]
    restore_line = next(ln for ln in lines if ln[3] == hex(abi.AMDKFD_IOC_CRIU_OP) and ln[4] == "3" and ln[6] == "0")
    assert int(restore_line[0]) == restored["tid"] and int(restore_line[1]) == restored["pid"]


_CHILD = """
import json, os, sys, threading
from criu_amdgpu import kfd
args = json.load(sys.stdin)
out = {}
def work():
    fd = os.open(args["dev"], os.O_RDWR)
    dev = kfd.FdKfdDevice(fd)
    bos = [kfd.BoBucket(*b) for b in args["bos"]]
    res = kfd.restore(dev, [kfd.DeviceBucket(*d) for d in args["devices"]], bos, bytes.fromhex(args["priv"]), 0)
    out.update(pid=os.getpid(), tid=threading.get_native_id(), bos=[(b.restored_offset, b.dmabuf_fd) for b in res])
    own = os.open(args["dev"], os.O_RDWR)
    kfd.resume(kfd.FdKfdDevice(own), os.getpid())
t = threading.Thread(target=work); t.start(); t.join()
print(json.dumps(out))
"""


def _restore_in_child_thread(dev_path, cp):
    args = {"dev": dev_path, "devices": [(GPU, GPU, 0)], "priv": cp.priv_data.hex(),
            "bos": [(b.addr, b.size, b.offset, b.alloc_flags, b.gpu_id) for b in cp.bos]}
    out = subprocess.run([sys.executable, "-c", _CHILD], input=json.dumps(args), capture_output=True, text=True,
                         env=_env(), timeout=30, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _ptrace_seize(pid):
    # Test-only: the core's tracer does this for real dumps; here the test thread becomes the target's tracer.
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    if libc.ptrace(0x4206, pid, None, None) != 0:  # PTRACE_SEIZE
        raise OSError(ctypes.get_errno(), "PTRACE_SEIZE")


def test_dumper_must_be_the_tracer_thread(fuse_kfd, target_bin, subreaper):
    dev_path, _ = fuse_kfd
    proc = subprocess.Popen([target_bin, dev_path, str(GPU), "wait"], stdout=subprocess.PIPE, text=True)
    subreaper.append(proc.pid)
    kv = {}
    while "ready" not in kv:
        line = proc.stdout.readline()
        assert line, "target exited"
        kv.update(_kv(line))
    local = pidfd_getfd(proc.pid, int(kv["fd"]))  # what the core hands the plugin: a copy of the task's fd
    try:
        dev = kfd.FdKfdDevice(local, proc.pid)
        with pytest.raises(kfd.KfdError) as exc:
            kfd.process_info(dev)
        assert exc.value.errno == errno.EBADF and "PROCESS_INFO" in str(exc.value)
        _ptrace_seize(proc.pid)
        box = {}

        def from_pool_thread():
            try:
                kfd.process_info(dev)
            except kfd.KfdError as e:
                box["errno"] = e.errno

        t = threading.Thread(target=from_pool_thread)
        t.start()
        t.join()
        assert box["errno"] == errno.EBADF, "another thread of the tracer is refused"
        info = kfd.process_info(dev)
        assert (info.num_bos, info.pid) == (2, proc.pid)
        cp = kfd.checkpoint(dev, info)
        assert sorted(b.alloc_flags for b in cp.bos) == [abi.AllocFlag.USERPTR, abi.AllocFlag.DOORBELL]
        kfd.unpause(dev)
    finally:
        os.close(local)
        proc.kill()
        proc.wait()
