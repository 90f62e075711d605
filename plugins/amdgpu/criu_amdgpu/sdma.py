"""The SDMA copy engine: BO contents moved by the GPU's system DMA engine, as CRIU's ``sdma_copy_bo`` does.

It reaches VRAM the CPU cannot map. Per copy, through :mod:`criu_amdgpu.libdrm` (one seam, a recorder in tests):
a page-aligned host staging buffer made a userptr BO; the BO imported from its dmabuf; both mapped at GPU VAs of
libdrm's allocator; an indirect buffer (GTT, CPU-mapped) and a BO list of the three; then per staging-sized chunk:
(restore) read the pages file into the staging buffer, write the linear-copy packets, new context, command
submission on DMA ring 0, wait for the fence, free the context, (dump) write the staging buffer to the pages file.
Everything is unmapped and freed in reverse order, whatever happened.

Packets (:func:`copy_linear_packet`, :func:`build_ib`) are pure functions. One ``SDMA_OP_COPY``/``LINEAR`` packet is
7 dwords: header (op in bits 0-7, sub-op in 8-15), byte count, parameter 0 (no endian swap), source address
low/high, destination address low/high; an IB is padded with NOPs (0) to a multiple of 8 dwords. A packet moves at
most 2 MiB on family AI (Vega, 141) and later, 2 MiB - 1 before (CRIU's limits). The count field: the kernel's own
SDMA v4+ emitters (sdma_v4_0.c onwards, family AI+) write ``bytes - 1`` and its v2/v3 emitters write ``bytes``;
CRIU's plugin writes ``bytes`` for every family. We follow the kernel.

Not validated on AMD hardware (the project's machines have none): the call sequence, structures and packets are
checked against libdrm's and the kernel's definitions and by a recording fake that executes the packets.
"""

from __future__ import annotations

import errno
import mmap
import os
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass

from criu_core.errors import CriuError, KernelFeatureMissing, SyscallError

from criu_amdgpu.libdrm import AMDGPU_VA_OP_MAP, AMDGPU_VA_OP_UNMAP, HostBuffer, LibDrmAmdgpu, load, write_host

__all__ = [
    "AMDGPU_FAMILY_AI",
    "PACKET_DWORDS",
    "SDMA_LINEAR_COPY_MAX_SIZE",
    "SdmaDevice",
    "SdmaEngine",
    "build_ib",
    "copy_linear_packet",
    "max_copy_size",
    "sdma_header",
]

SDMA_OPCODE_COPY = 1
SDMA_COPY_SUB_OPCODE_LINEAR = 0
SDMA_NOP = 0
SDMA_LINEAR_COPY_MAX_SIZE = 1 << 21
AMDGPU_FAMILY_AI = 141
AMDGPU_GEM_DOMAIN_GTT = 0x2
PACKET_DWORDS = 7
PAGE = mmap.PAGESIZE


def sdma_header(op: int, sub_op: int, extra: int = 0) -> int:
    """``SDMA_PACKET(op, sub_op, e)``: op in bits 0-7, sub-op in 8-15, ``e`` in 16-31."""
    return ((extra & 0xFFFF) << 16) | ((sub_op & 0xFF) << 8) | (op & 0xFF)


def max_copy_size(family_id: int) -> int:
    """Bytes one linear-copy packet may move on this GPU family."""
    return SDMA_LINEAR_COPY_MAX_SIZE if family_id >= AMDGPU_FAMILY_AI else SDMA_LINEAR_COPY_MAX_SIZE - 1


def copy_linear_packet(src: int, dst: int, nbytes: int, family_id: int) -> list[int]:
    """One COPY/LINEAR packet of ``nbytes`` (1..max_copy_size) from GPU VA ``src`` to ``dst``: 7 dwords."""
    if not 0 < nbytes <= max_copy_size(family_id):
        raise ValueError(f"an SDMA linear copy moves 1..{max_copy_size(family_id)} bytes, not {nbytes}")
    count = nbytes - 1 if family_id >= AMDGPU_FAMILY_AI else nbytes
    return [sdma_header(SDMA_OPCODE_COPY, SDMA_COPY_SUB_OPCODE_LINEAR), count, 0,
            src & 0xFFFFFFFF, src >> 32, dst & 0xFFFFFFFF, dst >> 32]


def build_ib(src: int, dst: int, nbytes: int, family_id: int) -> list[int]:
    """The IB that copies ``nbytes`` from ``src`` to ``dst``: packets of at most max_copy_size, NOP-padded to a
    multiple of 8 dwords."""
    ib: list[int] = []
    step = max_copy_size(family_id)
    done = 0
    while done < nbytes:
        n = min(step, nbytes - done)
        ib += copy_linear_packet(src + done, dst + done, n, family_id)
        done += n
    ib += [SDMA_NOP] * (-len(ib) % 8)
    return ib


def ib_bytes(staging: int, family_id: int) -> int:
    """Room for the IB of one staging-sized chunk (CRIU sizes it 28 bytes a packet and forgets the padding)."""
    packets = -(-staging // max_copy_size(family_id))
    return -(-packets * PACKET_DWORDS // 8) * 8 * 4


@dataclass
class SdmaDevice:
    """An initialised libdrm device on one GPU's render node."""

    lib: LibDrmAmdgpu
    fd: int
    dev: int
    family_id: int

    def close(self) -> None:
        try:
            self.lib.device_deinitialize(self.dev)
        finally:
            os.close(self.fd)


class SdmaEngine:
    """:class:`~criu_amdgpu.engines.CopyEngine` over the GPU's SDMA engine (needs the BO's dmabuf).

    :param render_path: local gpu_id -> path of its render node (the engine opens its own descriptor there).
    :param lib: the libdrm seam (default: ``libdrm_amdgpu.so.1``).
    :param max_buffer: staging size limit in bytes (CRIU's ``KFD_MAX_BUFFER_SIZE``; 0 = the BO's size).
    """

    name = "sdma"

    def __init__(self, render_path: Callable[[int], str], lib: LibDrmAmdgpu | None = None, max_buffer: int = 0) -> None:
        self.render_path = render_path
        self.lib = lib if lib is not None else load()
        self.max_buffer = max_buffer
        self._devices: dict[int, SdmaDevice] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------------ devices
    def device(self, gpu: int) -> SdmaDevice:
        """The libdrm device of local GPU ``gpu``, initialised on first use; a clear error where there is none."""
        with self._lock:
            got = self._devices.get(gpu)
            if got is not None:
                return got
            path = self.render_path(gpu)
            try:
                fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            except OSError as exc:
                raise SyscallError(exc.errno or 0, f"open({path})", None, "render node of the SDMA copy engine"
                                   ) from None
            try:
                try:
                    dev = self.lib.device_initialize(fd)
                except CriuError as exc:
                    raise KernelFeatureMissing("amdgpu SDMA", f"amdgpu SDMA copy engine: libdrm_amdgpu cannot "
                                               f"initialise {path}, so no AMD GPU there: {exc}") from None
                try:
                    family = self.lib.query_family(dev)
                except BaseException:
                    self.lib.device_deinitialize(dev)
                    raise
            except BaseException:
                os.close(fd)
                raise
            got = self._devices[gpu] = SdmaDevice(self.lib, fd, dev, family)
            return got

    def close(self) -> None:
        with self._lock:
            devices, self._devices = list(self._devices.values()), {}
        for d in devices:
            d.close()

    # ------------------------------------------------------------------------------------------ copies
    def read_bo(self, bo_fd: int, bo_offset: int, size: int, out_fd: int, out_offset: int, gpu: int = 0) -> None:
        self._copy(gpu, bo_fd, bo_offset, size, out_fd, out_offset, to_bo=False)

    def write_bo(self, in_fd: int, in_offset: int, size: int, bo_fd: int, bo_offset: int, gpu: int = 0) -> None:
        self._copy(gpu, bo_fd, bo_offset, size, in_fd, in_offset, to_bo=True)

    def _copy(self, gpu: int, bo_fd: int, bo_offset: int, size: int, file_fd: int, file_offset: int,
              to_bo: bool) -> None:
        if bo_offset:
            raise CriuError("amdgpu SDMA copy engine: the BO came without a dmabuf; SDMA imports BOs by dmabuf")
        d = self.device(gpu)
        lib = self.lib
        staging_size = min(self.max_buffer, size) if self.max_buffer else size
        staging_size = -(-staging_size // PAGE) * PAGE
        staging = HostBuffer(staging_size)
        undo: list[Callable[[], None]] = []
        try:
            # src and dst as CRIU orders them: restore copies userptr(staging) -> BO, dump BO -> userptr(staging)
            host = lib.create_bo_from_user_mem(d.dev, staging.addr, staging_size)
            undo.append(lambda: lib.bo_free(host))
            bo = lib.bo_import_dmabuf(d.dev, bo_fd)
            undo.append(lambda: lib.bo_free(bo))
            order = [(host, staging_size), (bo, size)] if to_bo else [(bo, size), (host, staging_size)]
            vas = []
            for handle, length in order:
                va, va_handle = lib.va_range_alloc(d.dev, length, PAGE)
                undo.append(lambda h=va_handle: lib.va_range_free(h))
                lib.bo_va_op(handle, 0, length, va, AMDGPU_VA_OP_MAP)
                undo.append(lambda h=handle, n=length, a=va: lib.bo_va_op(h, 0, n, a, AMDGPU_VA_OP_UNMAP))
                vas.append(va)
            src_va, dst_va = vas
            ib_size = ib_bytes(staging_size, d.family_id)
            ib = lib.bo_alloc(d.dev, ib_size, PAGE, AMDGPU_GEM_DOMAIN_GTT)
            undo.append(lambda: lib.bo_free(ib))
            ib_va, ib_va_handle = lib.va_range_alloc(d.dev, ib_size, PAGE)
            undo.append(lambda: lib.va_range_free(ib_va_handle))
            lib.bo_va_op(ib, 0, ib_size, ib_va, AMDGPU_VA_OP_MAP)
            undo.append(lambda: lib.bo_va_op(ib, 0, ib_size, ib_va, AMDGPU_VA_OP_UNMAP))
            ib_cpu = lib.bo_cpu_map(ib)
            undo.append(lambda: lib.bo_cpu_unmap(ib))
            bo_list = lib.bo_list_create(d.dev, [order[0][0], order[1][0], ib])
            undo.append(lambda: lib.bo_list_destroy(bo_list))
            view = memoryview(staging.mm)
            try:
                done = 0
                while done < size:
                    n = min(staging_size, size - done)
                    if to_bo:
                        self._read_exact(file_fd, view[:n], file_offset + done)
                        src, dst = src_va, dst_va + done
                    else:
                        src, dst = src_va + done, dst_va
                    dwords = build_ib(src, dst, n, d.family_id)
                    write_host(ib_cpu, struct.pack(f"<{len(dwords)}I", *dwords))
                    ctx = lib.cs_ctx_create(d.dev)
                    try:
                        seq = lib.cs_submit(ctx, bo_list, ib_va, len(dwords))
                        if not lib.cs_wait(ctx, seq):
                            raise CriuError("amdgpu SDMA copy engine: the copy did not complete")
                    finally:
                        lib.cs_ctx_free(ctx)
                    if not to_bo:
                        pos = 0
                        while pos < n:
                            pos += os.pwrite(file_fd, view[pos:n], file_offset + done + pos)
                    done += n
            finally:
                view.release()
        finally:
            errors = []
            for step in reversed(undo):
                try:
                    step()
                except CriuError as exc:
                    errors.append(exc)
            staging.close()
        if errors:
            raise errors[0]

    @staticmethod
    def _read_exact(fd: int, buf: memoryview, offset: int) -> None:
        pos = 0
        while pos < len(buf):
            n = os.preadv(fd, [buf[pos:]], offset + pos)
            if n <= 0:
                raise SyscallError(errno.EIO, "preadv(pages)", None, f"short read at {offset + pos}")
            pos += n
