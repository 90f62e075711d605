"""BO content copies: per-GPU files with 64-bit offsets, one worker per GPU, failures reported before RESUME."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from criu_core.errors import CriuError

from criu_amdgpu.abi import AllocFlag
from criu_amdgpu.bo_restore import BoRestoreFailed, BoRestorer, dump_contents, plan_jobs, run_job
from criu_amdgpu.engines import PlainEngine, SimulatedCostEngine
from criu_amdgpu.images import HEADER, PagesFile
from criu_amdgpu.kfd import BoBucket

GIB = 1 << 30
VRAM = AllocFlag.VRAM


@pytest.fixture
def executor():
    pools = []

    def make(n, name):
        pools.append(ThreadPoolExecutor(n, thread_name_prefix=name))
        return pools[-1]

    yield make
    for p in pools:
        p.shutdown()


def memfd(data):
    fd = os.memfd_create("bo")
    os.write(fd, data)
    return fd


def test_offsets_are_per_gpu_and_64_bit(tmp_path):
    bos = [BoBucket(0x1000, 3 * GIB, 0, VRAM, 0xA), BoBucket(0x2000, 4096, 0, VRAM, 0xB),
           BoBucket(0x3000, 3 * GIB, 0, VRAM, 0xA), BoBucket(0x4000, 4096, 0, AllocFlag.DOORBELL, 0xA),
           BoBucket(0x5000, 8192, 0, AllocFlag.GTT, 0xB)]
    jobs = {j.gpu_id: j for j in plan_jobs(7, tmp_path, bos, {0xA: 0x1, 0xB: 0x2})}
    assert [b.offset for b in jobs[0xA].bos] == [0, 3 * GIB]  # past 2 GiB: CRIU's int overflowed here
    assert [b.offset for b in jobs[0xB].bos] == [0, 4096]  # restarts at 0: CRIU ran on across GPUs
    assert jobs[0xA].path.name == "amdgpu-pages-7-000a.img" and jobs[0xA].total == 6 * GIB
    assert (jobs[0xA].worker, jobs[0xB].worker) == (1, 2)


class Recorder:
    name = "recorder"

    def __init__(self):
        self.calls = []

    def write_bo(self, in_fd, in_offset, size, bo_fd, bo_offset=0, gpu=0):
        self.calls.append((in_offset, size, threading.current_thread().name))


def test_seeks_past_4_gib_in_a_sparse_pages_file(tmp_path, executor):
    bos = [BoBucket(0x1000, 5 * GIB, 0, VRAM, 0xA, dmabuf_fd=os.dup(0)), BoBucket(0x2000, 4096, 0, VRAM, 0xA,
                                                                                  dmabuf_fd=os.dup(0))]
    (job,) = plan_jobs(1, tmp_path, bos)
    fd = PagesFile(job.path).create(job.total)
    os.ftruncate(fd, HEADER.size + job.total)  # sparse
    os.close(fd)
    eng = Recorder()
    r = BoRestorer(eng, executor)
    r.submit(job)
    r.join()
    assert [(o, s) for o, s, _ in eng.calls] == [(8, 5 * GIB), (8 + 5 * GIB, 4096)]


def _files(tmp_path, n_gpus, n_bos, size=4096):
    bos, want = [], {}
    for g in range(n_gpus):
        for i in range(n_bos):
            data = bytes([g * 16 + i]) * size
            fd = memfd(data)
            bos.append(BoBucket(0x10000 * (g * n_bos + i + 1), size, 0, VRAM, 0x100 + g, dmabuf_fd=fd))
            want[bos[-1].addr] = data
    dump_contents(3, tmp_path, bos, PlainEngine())
    for b in bos:
        os.close(b.dmabuf_fd)
    restored = []
    for b in bos:
        fd = os.memfd_create("new")
        os.ftruncate(fd, size)
        restored.append(BoBucket(b.addr, size, 0, VRAM, b.gpu_id, dmabuf_fd=fd))
    return restored, want


def test_round_trip_through_pages_files(tmp_path, executor):
    bos, want = _files(tmp_path, 2, 3)
    readers = {b.addr: os.dup(b.dmabuf_fd) for b in bos}
    r = BoRestorer(PlainEngine(), executor)
    for job in plan_jobs(3, tmp_path, bos):
        r.submit(job)
    r.join()
    assert {a: os.pread(fd, 4096, 0) for a, fd in readers.items()} == want
    for fd in readers.values():
        os.close(fd)


def test_one_worker_per_gpu_and_gpus_overlap(tmp_path, executor):
    bos, _ = _files(tmp_path, 2, 4)
    eng = SimulatedCostEngine(PlainEngine(), per_bo=0.03)
    names = []
    orig = eng.write_bo

    spans = []

    def spy(*a):
        names.append((threading.current_thread().name, a[3]))
        t0 = time.monotonic()
        orig(*a)
        spans.append((threading.current_thread().name.split("_")[0], t0, time.monotonic()))

    eng.write_bo = spy
    r = BoRestorer(eng, executor)
    for job in plan_jobs(3, tmp_path, bos, {0x100: 0x100, 0x101: 0x101}):
        r.submit(job)
    r.join()
    threads = {n.split("_")[0] for n, _ in names}
    assert threads == {"amdgpu-bo-0100", "amdgpu-bo-0101"}
    a = [(s, e) for n, s, e in spans if n == "amdgpu-bo-0100"]
    b = [(s, e) for n, s, e in spans if n == "amdgpu-bo-0101"]
    assert any(s1 < e2 and s2 < e1 for s1, e1 in a for s2, e2 in b), "the two GPUs' copies never overlapped"


def test_failure_is_raised_after_every_job_stopped(tmp_path, executor):
    bos, _ = _files(tmp_path, 2, 2)
    done = []

    class FailOnGpu0(PlainEngine):
        def write_bo(self, in_fd, in_offset, size, bo_fd, bo_offset=0, gpu=0):
            if any(b.dmabuf_fd == bo_fd and b.gpu_id == 0x100 for b in bos):
                raise OSError(5, "Input/output error")
            time.sleep(0.02)
            done.append(bo_fd)
            super().write_bo(in_fd, in_offset, size, bo_fd, bo_offset, gpu)

    fds = [b.dmabuf_fd for b in bos]
    r = BoRestorer(FailOnGpu0(), executor)
    for job in plan_jobs(3, tmp_path, bos):
        r.submit(job)
    with pytest.raises(BoRestoreFailed, match=r"amdgpu-pages-3-0100.img: BO 0x10000 .*Input/output error"):
        r.join()
    assert len(done) == 2, "the healthy GPU finished before join raised"
    for fd in fds:  # every dmabuf fd was closed by its job, failed or not
        with pytest.raises(OSError):
            os.fstat(fd)


def test_serial_mode_copies_inline(tmp_path, executor):
    bos, want = _files(tmp_path, 1, 2)
    readers = {b.addr: os.dup(b.dmabuf_fd) for b in bos}
    r = BoRestorer(PlainEngine(), executor, serial=True)
    for job in plan_jobs(3, tmp_path, bos):
        r.submit(job)
        assert r.pending == 0
    r.join()
    assert {a: os.pread(fd, 4096, 0) for a, fd in readers.items()} == want
    for fd in readers.values():
        os.close(fd)


def test_bos_without_a_dmabuf_go_through_the_device_file_at_their_offset(tmp_path):
    """An emulated device hands out no dmabufs: the BO is read and written through a device file at its mmap
    offset (a sparse file stands in for the render node here; the FUSE end-to-end test uses the real thing)."""
    dev_path = tmp_path / "renderD128"
    a, b = os.urandom(8192), os.urandom(4096)
    with open(dev_path, "wb") as f:
        f.seek(1 << 32)
        f.write(a)
        f.seek(2 << 32)
        f.write(b)
    bos = [BoBucket(0x1000, 8192, 1 << 32, VRAM, 0xA), BoBucket(0x9000, 4096, 2 << 32, AllocFlag.GTT, 0xA)]
    dev = os.open(dev_path, os.O_RDWR)
    try:
        (job,) = dump_contents(5, tmp_path, bos, PlainEngine(), device_file=lambda bo: (dev, bo.offset))
    finally:
        os.close(dev)
    assert job.path.read_bytes()[HEADER.size:] == a + b
    with open(dev_path, "r+b") as f:  # the restored BOs live elsewhere and start zeroed
        f.truncate(0)
        f.truncate(8 << 32)
    moved = [BoBucket(x.addr, x.size, x.offset, x.alloc_flags, x.gpu_id, restored_offset=x.offset + (1 << 33))
             for x in bos]
    (job,) = plan_jobs(5, tmp_path, moved, device_file=lambda bo: (os.open(dev_path, os.O_RDWR), bo.restored_offset))
    run_job(job, PlainEngine())
    with open(dev_path, "rb") as f:
        assert os.pread(f.fileno(), 8192, (1 << 32) + (1 << 33)) == a
        assert os.pread(f.fileno(), 4096, (2 << 32) + (1 << 33)) == b


def test_a_bo_nothing_reaches_fails_the_dump(tmp_path):
    bos = [BoBucket(0x1000, 4096, 1 << 32, VRAM, 0xA)]
    with pytest.raises(CriuError, match=r"BO 0x1000 on GPU 000a: the kernel handed out no dmabuf"):
        dump_contents(5, tmp_path, bos, PlainEngine(), device_file=lambda bo: None)
