"""Benchmark: BO content restore of 4 emulated GPUs x 64 BOs, serial versus one worker per GPU.

Each BO copy pays a simulated engine cost (a fixed per-BO cost plus a per-MiB cost, standing in for SDMA
submission and transfer) on top of the real copy from the pages file into a memfd stand-in of the dmabuf. While
the workers copy, the restorer's own thread does "the rest of the restore" (simulated with a fixed busy period), as
the plugin does between RESTORE and RESUME. Printed: the raw copy throughput of this machine (no simulated cost),
the serial and parallel totals, and how much of the copy time the parallel restore hid.

    PYTHONPATH=.:plugins/amdgpu python bench/amdgpu_bo_restore.py [--gpus 4] [--bos 64] [--bo-kib 256]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from criu_amdgpu.abi import AllocFlag
from criu_amdgpu.bo_restore import BoRestorer, dump_contents, plan_jobs
from criu_amdgpu.engines import PlainEngine, SimulatedCostEngine
from criu_amdgpu.kfd import BoBucket


def make_images(d: Path, gpus: int, bos: int, size: int) -> list[BoBucket]:
    buckets = []
    for g in range(gpus):
        for i in range(bos):
            fd = os.memfd_create("src")
            os.write(fd, bytes([(g * bos + i) & 0xFF]) * size)
            buckets.append(BoBucket(0x7F0000000000 + (g * bos + i) * size, size, 0, AllocFlag.VRAM, 0x1000 + g,
                                    dmabuf_fd=fd))
    dump_contents(1, d, buckets, PlainEngine())
    for b in buckets:
        os.close(b.dmabuf_fd)
    return buckets


def fresh(buckets: list[BoBucket]) -> list[BoBucket]:
    out = []
    for b in buckets:
        fd = os.memfd_create("dst")
        os.ftruncate(fd, b.size)
        out.append(BoBucket(b.addr, b.size, 0, b.alloc_flags, b.gpu_id, dmabuf_fd=fd))
    return out


def run(d: Path, buckets: list[BoBucket], engine, serial: bool, other_work: float) -> tuple[float, float]:
    pools: list[ThreadPoolExecutor] = []

    def executor(n: int, name: str) -> ThreadPoolExecutor:
        pools.append(ThreadPoolExecutor(n, thread_name_prefix=name))
        return pools[-1]

    r = BoRestorer(engine, executor, serial=serial)
    t0 = time.perf_counter()
    for job in plan_jobs(1, d, fresh(buckets)):
        r.submit(job)
    t_submitted = time.perf_counter() - t0
    time.sleep(other_work)  # the rest of the restore: other VMAs, pages, descriptors, other tasks
    r.join()
    total = time.perf_counter() - t0
    for p in pools:
        p.shutdown()
    return total, t_submitted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpus", type=int, default=4)
    ap.add_argument("--bos", type=int, default=64)
    ap.add_argument("--bo-kib", type=int, default=256)
    ap.add_argument("--per-bo-ms", type=float, default=2.0, help="simulated fixed cost per BO copy")
    ap.add_argument("--per-mib-ms", type=float, default=4.0, help="simulated cost per MiB copied")
    ap.add_argument("--other-ms", type=float, default=200.0, help="the restorer's own work meanwhile")
    a = ap.parse_args()
    size = a.bo_kib * 1024
    total_mib = a.gpus * a.bos * size / (1 << 20)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        buckets = make_images(d, a.gpus, a.bos, size)
        raw, _ = run(d, buckets, PlainEngine(), True, 0.0)
        engine = SimulatedCostEngine(PlainEngine(), a.per_bo_ms / 1000, a.per_mib_ms / 1000)
        other = a.other_ms / 1000
        serial, _ = run(d, buckets, engine, True, other)
        parallel, submit = run(d, buckets, engine, False, other)
    copy = serial - other
    hidden = (serial - parallel) / copy if copy > 0 else 0.0
    print(f"workload: {a.gpus} GPUs x {a.bos} BOs x {a.bo_kib} KiB = {total_mib:.0f} MiB; simulated cost "
          f"{a.per_bo_ms} ms/BO + {a.per_mib_ms} ms/MiB; restorer's other work {a.other_ms:.0f} ms")
    print(f"raw copy (this machine, no simulated cost, serial): {raw * 1000:8.1f} ms  "
          f"{total_mib / raw:8.0f} MiB/s")
    print(f"serial restore   (copies in the restorer's thread): {serial * 1000:8.1f} ms")
    print(f"parallel restore (one worker per GPU, overlapped):  {parallel * 1000:8.1f} ms  "
          f"(submit {submit * 1000:.1f} ms, speed-up x{serial / parallel:.2f})")
    print(f"overlap: {hidden * 100:.0f}% of the {copy * 1000:.0f} ms of copying was hidden "
          f"(ideal with {a.gpus} GPUs: {min(1.0, (copy - max(0.0, copy / a.gpus - other)) / copy) * 100:.0f}%)")


if __name__ == "__main__":
    main()
