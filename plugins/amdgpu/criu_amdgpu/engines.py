"""Copy engines: how BO contents move between a dmabuf and a pages file.

* :class:`PlainEngine` maps the dmabuf and copies with ``preadv``/``pwrite`` (both release the GIL). It works for
  buffers the CPU can map: GTT and host-visible (``PUBLIC``) VRAM on real hardware, and the memfd stand-ins of the
  emulated device.
* :class:`SdmaEngine` would drive the GPU's SDMA engine through libdrm_amdgpu (reference §1.9), as CRIU does for
  VRAM the CPU cannot see. Not implemented yet: selecting it explains that.
* :class:`SimulatedCostEngine` wraps another engine and adds a fixed cost per BO and per byte, to measure overlap.
"""

from __future__ import annotations

import ctypes.util
import mmap
import os
import time
from typing import Protocol, runtime_checkable

from criu_core.errors import KernelFeatureMissing, SyscallError

__all__ = ["CHUNK", "CopyEngine", "PlainEngine", "SdmaEngine", "SimulatedCostEngine", "select_engine"]

CHUNK = 8 << 20


@runtime_checkable
class CopyEngine(Protocol):
    """Moves BO contents between a BO and a pages file.

    A BO is reached through ``bo_fd`` at ``bo_offset``: the dmabuf fd CHECKPOINT/RESTORE handed out (offset 0), or,
    where the kernel gave none, the task's render-node file at the BO's mmap offset (the DRM fake offset). ``gpu``
    is the local gpu_id whose worker runs the copy (an engine that needs the GPU's device uses it).
    """

    name: str

    def read_bo(self, bo_fd: int, bo_offset: int, size: int, out_fd: int, out_offset: int, gpu: int = 0) -> None:
        """Dump: copy ``size`` bytes of the BO to ``out_fd`` at ``out_offset``."""

    def write_bo(self, in_fd: int, in_offset: int, size: int, bo_fd: int, bo_offset: int, gpu: int = 0) -> None:
        """Restore: copy ``size`` bytes at ``in_offset`` of ``in_fd`` into the BO."""


class PlainEngine:
    """CPU copies through a shared mapping of the BO (its dmabuf, or the render node at the BO's offset).

    Writes are flushed with ``msync(MS_SYNC)`` before the mapping goes: for a dmabuf it costs nothing, for a file
    whose pages live in the page cache (the FUSE-emulated render node) it is what hands the bytes to the device.
    """

    name = "plain"

    def _map(self, fd: int, offset: int, size: int, write: bool) -> mmap.mmap:
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if write else 0)
        try:
            return mmap.mmap(fd, size, mmap.MAP_SHARED, prot, offset=offset)
        except OSError as exc:
            raise SyscallError(exc.errno or 0, "mmap(BO)", None,
                               f"{size} bytes at offset {offset:#x}: the BO is not CPU-visible, and the plain copy "
                               "engine needs GTT or host-visible VRAM") from None

    def read_bo(self, bo_fd: int, bo_offset: int, size: int, out_fd: int, out_offset: int, gpu: int = 0) -> None:
        with self._map(bo_fd, bo_offset, size, False) as mm:
            view = memoryview(mm)
            try:
                pos = 0
                while pos < size:
                    pos += os.pwrite(out_fd, view[pos:min(size, pos + CHUNK)], out_offset + pos)
            finally:
                view.release()

    def write_bo(self, in_fd: int, in_offset: int, size: int, bo_fd: int, bo_offset: int, gpu: int = 0) -> None:
        with self._map(bo_fd, bo_offset, size, True) as mm:
            view = memoryview(mm)
            try:
                pos = 0
                while pos < size:
                    n = os.preadv(in_fd, [view[pos:min(size, pos + CHUNK)]], in_offset + pos)
                    if n <= 0:
                        raise SyscallError(5, "preadv(pages)", None, f"short read at {in_offset + pos}")
                    pos += n
            finally:
                view.release()
            try:
                mm.flush()
            except OSError as exc:
                raise SyscallError(exc.errno or 0, "msync(BO)", None, f"{size} bytes at offset {bo_offset:#x}"
                                   ) from None


class SdmaEngine:
    """SDMA copies through libdrm_amdgpu (not implemented: refuses with the reason)."""

    name = "sdma"

    def __init__(self) -> None:
        if ctypes.util.find_library("drm_amdgpu") is None:
            raise KernelFeatureMissing("libdrm_amdgpu", "the SDMA copy engine needs libdrm_amdgpu.so.1")
        raise KernelFeatureMissing("amdgpu SDMA copy engine",
                                   "the SDMA copy engine is not implemented yet; use --amdgpu-copy-engine plain "
                                   "(GTT and host-visible VRAM only)")

    def read_bo(self, dmabuf_fd: int, size: int, out_fd: int, out_offset: int) -> None:  # pragma: no cover
        raise NotImplementedError

    def write_bo(self, in_fd: int, in_offset: int, size: int, dmabuf_fd: int) -> None:  # pragma: no cover
        raise NotImplementedError


class SimulatedCostEngine:
    """Another engine plus ``per_bo`` seconds and ``per_mib`` seconds per MiB (sleeping releases the GIL)."""

    def __init__(self, inner: CopyEngine, per_bo: float = 0.0, per_mib: float = 0.0) -> None:
        self.inner, self.per_bo, self.per_mib = inner, per_bo, per_mib
        self.name = f"simulated({inner.name})"

    def _cost(self, size: int) -> None:
        time.sleep(self.per_bo + self.per_mib * size / (1 << 20))

    def read_bo(self, bo_fd: int, bo_offset: int, size: int, out_fd: int, out_offset: int, gpu: int = 0) -> None:
        self._cost(size)
        self.inner.read_bo(bo_fd, bo_offset, size, out_fd, out_offset, gpu)

    def write_bo(self, in_fd: int, in_offset: int, size: int, bo_fd: int, bo_offset: int, gpu: int = 0) -> None:
        self._cost(size)
        self.inner.write_bo(in_fd, in_offset, size, bo_fd, bo_offset, gpu)


def select_engine(name: str) -> CopyEngine:
    """``plain``, ``sdma`` or ``auto`` (plain until the SDMA engine exists)."""
    if name == "sdma":
        return SdmaEngine()
    return PlainEngine()
