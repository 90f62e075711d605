"""Copy engines: how BO contents move between a dmabuf and a pages file.

* :class:`PlainEngine` maps the dmabuf and copies with ``preadv``/``pwrite`` (both release the GIL). It works for
  buffers the CPU can map: GTT and host-visible (``PUBLIC``) VRAM on real hardware, and the memfd stand-ins of the
  emulated device.
* :class:`~criu_amdgpu.sdma.SdmaEngine` drives the GPU's SDMA engine through libdrm_amdgpu (reference §1.9), as
  CRIU does, for VRAM the CPU cannot see; :class:`AutoEngine` uses it per GPU where it initialises.
* :class:`SimulatedCostEngine` wraps another engine and adds a fixed cost per BO and per byte, to measure overlap.
"""

from __future__ import annotations

import mmap
import os
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from criu_core.errors import CriuError, SyscallError

__all__ = ["CHUNK", "AutoEngine", "CopyEngine", "PlainEngine", "SimulatedCostEngine", "select_engine"]

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


class AutoEngine:
    """SDMA where the GPU has it, else the plain engine, decided once per GPU (``auto``).

    A GPU whose render node libdrm_amdgpu cannot initialise (not a DRM character device, no AMD GPU, no library)
    uses the plain engine, and ``fallbacks`` says why; so does a BO that came without a dmabuf (SDMA imports BOs by
    dmabuf).
    """

    name = "auto"

    def __init__(self, sdma: Callable[[], CopyEngine], plain: CopyEngine | None = None) -> None:
        self._make_sdma = sdma
        self._sdma: CopyEngine | None = None
        self.plain = plain or PlainEngine()
        self.fallbacks: dict[int, str] = {}
        self._lock = threading.Lock()

    def _pick(self, gpu: int, bo_offset: int) -> CopyEngine:
        if bo_offset:
            return self.plain
        with self._lock:
            if gpu in self.fallbacks:
                return self.plain
            try:
                if self._sdma is None:
                    self._sdma = self._make_sdma()
                self._sdma.device(gpu)  # type: ignore[attr-defined]
            except CriuError as exc:
                self.fallbacks[gpu] = str(exc)
                return self.plain
            return self._sdma

    def close(self) -> None:
        if self._sdma is not None:
            self._sdma.close()  # type: ignore[attr-defined]

    def read_bo(self, bo_fd: int, bo_offset: int, size: int, out_fd: int, out_offset: int, gpu: int = 0) -> None:
        self._pick(gpu, bo_offset).read_bo(bo_fd, bo_offset, size, out_fd, out_offset, gpu)

    def write_bo(self, in_fd: int, in_offset: int, size: int, bo_fd: int, bo_offset: int, gpu: int = 0) -> None:
        self._pick(gpu, bo_offset).write_bo(in_fd, in_offset, size, bo_fd, bo_offset, gpu)


def select_engine(name: str, render_path: Callable[[int], str] | None = None, max_buffer: int = 0) -> CopyEngine:
    """``plain``; ``sdma`` (fails, with the reason, on the first copy of a GPU it cannot drive); ``auto`` (SDMA per
    GPU where it initialises, plain elsewhere). ``render_path``: local gpu_id -> its render node."""
    if name == "plain" or render_path is None:
        return PlainEngine()

    def sdma() -> CopyEngine:
        from criu_amdgpu.sdma import SdmaEngine

        return SdmaEngine(render_path, max_buffer=max_buffer)

    if name == "sdma":
        return sdma()
    return AutoEngine(sdma)
