"""The CRIU_OP sequence through the KfdDevice seam, against the emulated KFD and its kernel error rules."""

from __future__ import annotations

import errno
import os

import pytest
from criu_core.errors import KernelFeatureMissing

from criu_amdgpu import abi, kfd
from criu_amdgpu.emu.model import FakeKfd, FakeKfdDevice
from criu_amdgpu.emu.scenario import GPU_A, GPU_B

TARGET_PID = 4242


def _close(cp):
    for b in cp.bos:
        if b.dmabuf_fd != abi.KFD_INVALID_FD:
            os.close(b.dmabuf_fd)


def test_version_check(fake_kfd, target):
    assert kfd.check_version(target) == (1, 17)
    old = FakeKfd(fake_kfd.gpus, version=(1, 7))
    with pytest.raises(KernelFeatureMissing, match="1.7 is too old"):
        kfd.check_version(FakeKfdDevice(old, old.open(1)))


def test_process_info_pauses_and_counts(fake_kfd, target):
    info = kfd.process_info(target)
    assert (info.num_devices, info.num_bos, info.num_objects, info.pid) == (2, 5, 1, TARGET_PID)
    assert info.priv_data_size == 8 + 2 * 8 + 5 * 80 + 16  # §1.6 with MAX_GPU_INSTANCE 16
    assert fake_kfd.processes[TARGET_PID].paused


def test_checkpoint_returns_buckets_dmabufs_and_blob(fake_kfd, target):
    info = kfd.process_info(target)
    cp = kfd.checkpoint(target, info)
    try:
        assert {(d.user_gpu_id, d.actual_gpu_id) for d in cp.devices} == {(GPU_A, GPU_A), (GPU_B, GPU_B)}
        assert [b.size for b in cp.bos] == [0x4000, 0x2000, 0x1000, 0x3000, 0x1000]
        with_content = [b for b in cp.bos if b.has_content]
        assert len(with_content) == 3
        for b in with_content:  # a dmabuf fd in *our* table, holding the BO's bytes
            assert b.dmabuf_fd != abi.KFD_INVALID_FD
            data = os.pread(b.dmabuf_fd, b.size, 0)
            assert len(set(data)) == 1 and len(data) == b.size
        assert all(b.dmabuf_fd == abi.KFD_INVALID_FD for b in cp.bos if not b.has_content)
        doorbell = cp.bos[2]
        assert doorbell.offset >> 62 == 3 and abi.mmap_offset_gpu_id(doorbell.offset) == GPU_A
        assert len(cp.priv_data) == info.priv_data_size
    finally:
        _close(cp)
    kfd.unpause(target)
    assert not fake_kfd.processes[TARGET_PID].paused


def test_checkpoint_without_process_info_is_einval(target):
    info = kfd.ProcessInfo(2, 5, 1, 8 + 16 + 400 + 16, TARGET_PID)
    with pytest.raises(kfd.KfdError) as exc:
        kfd.checkpoint(target, info)
    assert exc.value.errno == errno.EINVAL and "CHECKPOINT" in str(exc.value)


def test_checkpoint_with_stale_counts_is_einval(fake_kfd, target):
    info = kfd.process_info(target)
    fake_kfd.add_queue(TARGET_PID, GPU_B, 1)  # the process changed between the two ops
    with pytest.raises(kfd.KfdError) as exc:
        kfd.checkpoint(target, info)
    assert exc.value.errno == errno.EINVAL


def test_unpause_needs_pause(target):
    with pytest.raises(kfd.KfdError) as exc:
        kfd.unpause(target)
    assert exc.value.errno == errno.EINVAL


def test_process_without_devices_is_enodev(fake_kfd):
    empty = FakeKfd([], tracer_of=lambda pid: None)
    with pytest.raises(kfd.KfdError) as exc:
        kfd.process_info(FakeKfdDevice(empty, empty.open(7)))
    assert exc.value.errno == errno.ENODEV


def test_fd_of_another_process_is_ebadf_unless_tracer(fake_kfd, target):
    dumper = FakeKfdDevice(fake_kfd, target.file, caller=1000, caller_tid=1001)
    with pytest.raises(kfd.KfdError) as exc:
        kfd.process_info(dumper)
    assert exc.value.errno == errno.EBADF
    fake_kfd.tracer_of = lambda pid: 1001 if pid == TARGET_PID else None
    assert kfd.process_info(dumper).pid == TARGET_PID  # the ptrace parent thread may
    other_thread = FakeKfdDevice(fake_kfd, target.file, caller=1000, caller_tid=1002)
    with pytest.raises(kfd.KfdError) as exc:  # ... but not another thread of the tracer (a pool thread)
        kfd.unpause(other_thread)
    assert exc.value.errno == errno.EBADF
    with pytest.raises(kfd.KfdError) as exc:  # GET_VERSION is not a CHECKPOINT_RESTORE ioctl
        kfd.get_version(dumper)
    assert exc.value.errno == errno.EBADF


def test_unprivileged_criu_op_is_eacces(fake_kfd, target):
    dev = FakeKfdDevice(fake_kfd, target.file, privileged=False)
    with pytest.raises(kfd.KfdError) as exc:
        kfd.process_info(dev)
    assert exc.value.errno == errno.EACCES


def test_unknown_ioctl_is_enotty(target):
    with pytest.raises(OSError) as exc:
        target.ioctl(abi.AMDKFD_IOC_CREATE_PROCESS, bytearray())
    assert exc.value.errno == errno.ENOTTY


def _dump(target):
    info = kfd.process_info(target)
    cp = kfd.checkpoint(target, info)
    contents = {b.addr: os.pread(b.dmabuf_fd, b.size, 0) for b in cp.bos if b.has_content}
    _close(cp)
    kfd.unpause(target)
    return cp, contents


def test_restore_then_resume_round_trip(fake_kfd, target):
    cp, contents = _dump(target)
    fake_kfd.exit(TARGET_PID)
    new = FakeKfdDevice(fake_kfd, fake_kfd.open(TARGET_PID))
    # swap the GPUs: user ids stay, the actual ids change
    devices = [kfd.DeviceBucket(GPU_A, GPU_B, 5), kfd.DeviceBucket(GPU_B, GPU_A, 6)]
    out = kfd.restore(new, devices, cp.bos, cp.priv_data, cp.info.num_objects)
    try:
        proc = fake_kfd.processes[TARGET_PID]
        assert proc.restored and proc.objects == [(0, GPU_A, 0xABCD)]
        doorbell = out[2]
        assert abi.mmap_offset_gpu_id(doorbell.restored_offset) == GPU_B  # re-encoded with the actual id
        for b in out:
            if b.has_content:
                os.pwrite(b.dmabuf_fd, contents[b.addr], 0)
        assert {bo.addr: bo.read() for bo in proc.bos.values() if bo.memfd >= 0} == contents
    finally:
        _close(kfd.CheckpointData(cp.info, bos=out))
    own = FakeKfdDevice(fake_kfd, fake_kfd.open(1))
    kfd.resume(own, TARGET_PID)
    assert not proc.restored and fake_kfd.resumed == [TARGET_PID]


def test_restore_error_rules(fake_kfd, target):
    cp, _ = _dump(target)
    fake_kfd.exit(TARGET_PID)
    new = FakeKfdDevice(fake_kfd, fake_kfd.open(TARGET_PID))
    devices = [kfd.DeviceBucket(GPU_A, GPU_A, 5), kfd.DeviceBucket(GPU_B, GPU_B, 6)]

    def code(*args):
        with pytest.raises(kfd.KfdError) as exc:
            kfd.restore(new, *args)
        return exc.value.errno

    assert code(devices, [], cp.priv_data, 1) == errno.EINVAL  # a process with 0 BOs cannot be restored
    assert code(devices[:1], cp.bos, cp.priv_data, 1) == errno.EINVAL  # num_devices != n_pdds
    assert code([kfd.DeviceBucket(0, GPU_A, 5), devices[1]], cp.bos, cp.priv_data, 1) == errno.EINVAL
    assert code(devices, cp.bos, cp.priv_data + b"\0" * 8, 1) == errno.EINVAL  # blob not fully consumed
    assert code(devices, cp.bos, cp.priv_data, 0) == errno.EINVAL
    out = kfd.restore(new, devices, cp.bos, cp.priv_data, 1)
    _close(kfd.CheckpointData(cp.info, bos=out))
    assert code(devices, cp.bos, cp.priv_data, 1) == errno.EINVAL  # already restored


def test_resume_unknown_pid_is_esrch(fake_kfd):
    own = FakeKfdDevice(fake_kfd, fake_kfd.open(1))
    with pytest.raises(kfd.KfdError) as exc:
        kfd.resume(own, 31337)
    assert exc.value.errno == errno.ESRCH and "RESUME" in str(exc.value)


def test_bo_priv_grows_with_max_gpu_instance(fake_kfd):
    big = FakeKfd(fake_kfd.gpus, max_gpu_instance=64, tracer_of=lambda pid: None)
    dev = FakeKfdDevice(big, big.open(9))
    from criu_amdgpu.emu.model import alloc_memory
    alloc_memory(dev, GPU_A, 0x1000, 0x1000, abi.AllocFlag.USERPTR)
    assert kfd.process_info(dev).priv_data_size == 8 + 2 * 8 + 272
    big.close()
