"""A standard emulated workload: two GPUs and a process holding VRAM, GTT, doorbell and userptr BOs.

Shared by the tests, the FUSE server's demo mode and the benchmark, so they all exercise the same shapes.
"""

from __future__ import annotations

from criu_amdgpu import abi
from criu_amdgpu.emu.model import FakeKfd, alloc_memory

__all__ = ["DOORBELL", "GPU_A", "GPU_B", "GTT", "LAYOUT", "USERPTR", "VRAM", "populate"]

GPU_A, GPU_B = 0x70B3, 0x1C4D  # gpu_ids are 16-bit hashes of the GPU's properties
VRAM = abi.AllocFlag.VRAM | abi.AllocFlag.WRITABLE
GTT = abi.AllocFlag.GTT | abi.AllocFlag.WRITABLE
DOORBELL = abi.AllocFlag.DOORBELL
USERPTR = abi.AllocFlag.USERPTR

# (user gpu_id, GPU VA, size, flags)
LAYOUT = [(GPU_A, 0x7F0000000000, 0x4000, VRAM), (GPU_A, 0x7F0000100000, 0x2000, GTT),
          (GPU_A, 0x7F0000200000, 0x1000, DOORBELL), (GPU_B, 0x7F0001000000, 0x3000, VRAM),
          (GPU_B, 0x7F0001100000, 0x1000, USERPTR)]


def populate(kfd: FakeKfd, dev, pid: int, layout=LAYOUT) -> None:
    """Allocate ``layout`` through ``dev`` (ALLOC_MEMORY_OF_GPU), fill each BO with its handle byte, add a queue."""
    for gpu, va, size, flags in layout:
        alloc_memory(dev, gpu, va, size, flags)
    proc = kfd.processes[pid]
    for bo in proc.bos.values():
        if bo.memfd >= 0:
            bo.write(bytes([bo.handle]) * bo.size)
    kfd.add_queue(pid, layout[0][0], 0xABCD)
