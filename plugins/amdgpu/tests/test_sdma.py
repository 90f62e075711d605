"""The SDMA copy engine: packet encoding against the documented layout, the libdrm call sequence through a
recording fake that also executes the packets (so a wrong count or address corrupts the copy), and the real
libdrm_amdgpu refusing a machine without an AMD GPU. Nothing here ran on AMD hardware."""

from __future__ import annotations

import ctypes
import ctypes.util
import itertools
import mmap
import os
import struct

import pytest
from criu_core.errors import CriuError, KernelFeatureMissing, SyscallError

from criu_amdgpu.engines import AutoEngine, PlainEngine, select_engine
from criu_amdgpu.libdrm import AMDGPU_VA_OP_MAP, AMDGPU_VA_OP_UNMAP
from criu_amdgpu.sdma import AMDGPU_FAMILY_AI, SdmaEngine, build_ib, copy_linear_packet, max_copy_size, sdma_header

MIB = 1 << 20
VEGA, POLARIS = AMDGPU_FAMILY_AI, 130  # family ids: AI (Vega10) = 141, VI (Polaris) = 130


# ---------------------------------------------------------------------------------------------- packets


def test_header_puts_op_sub_op_and_extra_in_their_bytes():
    assert sdma_header(1, 0) == 0x00000001  # COPY / LINEAR
    assert sdma_header(0xAB, 0xCD, 0x1234) == 0x1234CDAB
    assert sdma_header(0x1AB, 0x1CD, 0x11234) == 0x1234CDAB  # each field masked to its width


def test_linear_copy_packet_layout():
    # header, count, parameter (no endian swap), src lo, src hi, dst lo, dst hi
    assert copy_linear_packet(0x1_2345_6000, 0xABCD_0000_1000, 4096, VEGA) == [
        0x00000001, 4095, 0, 0x23456000, 0x1, 0x00001000, 0xABCD]
    # before family AI the count is the byte count itself (sdma v2/v3)
    assert copy_linear_packet(0x1000, 0x2000, 4096, POLARIS)[1] == 4096


def test_bytes_per_packet_by_family():
    assert max_copy_size(VEGA) == 2 * MIB and max_copy_size(POLARIS) == 2 * MIB - 1
    copy_linear_packet(0, 0, 2 * MIB, VEGA)
    with pytest.raises(ValueError):
        copy_linear_packet(0, 0, 2 * MIB, POLARIS)
    with pytest.raises(ValueError):
        copy_linear_packet(0, 0, 0, VEGA)


def test_ib_splits_into_packets_and_pads_with_nops():
    src, dst = 0x10_0000_0000, 0x20_0000_0000
    ib = build_ib(src, dst, 5 * MIB, VEGA)
    assert len(ib) == 24 and ib[21:] == [0, 0, 0]  # 3 packets (21 dwords), padded to a multiple of 8
    packets = [ib[i:i + 7] for i in range(0, 21, 7)]
    assert [p[1] + 1 for p in packets] == [2 * MIB, 2 * MIB, MIB]
    assert [(p[4] << 32 | p[3]) - src for p in packets] == [0, 2 * MIB, 4 * MIB]
    assert [(p[6] << 32 | p[5]) - dst for p in packets] == [0, 2 * MIB, 4 * MIB]
    old = build_ib(0, 0, 4 * MIB, POLARIS)
    assert [old[i + 1] for i in range(0, 21, 7)] == [2 * MIB - 1, 2 * MIB - 1, 2]
    assert len(build_ib(0, 0, 4096, VEGA)) == 8  # one packet and one NOP


# ---------------------------------------------------------------------------------------------- a fake GPU


class FakeSdmaLib:
    """The libdrm seam over a pretend GPU: records every call; BOs are host memory, VAs map onto them, and a
    submitted IB is decoded and its linear copies performed (bounds-checked), as the SDMA engine would."""

    def __init__(self, family=VEGA, complete=True):
        self.family, self.complete = family, complete
        self.calls: list[str] = []
        self.bos: dict[int, tuple[int, int]] = {}  # handle -> (host address, size)
        self.vas: dict[int, tuple[int, int]] = {}  # va -> (bo, size)
        self.keep: dict[int, object] = {}
        self._ids = itertools.count(0x100)
        self._va = itertools.count(0x80_0000_0000, 0x10_0000_0000)

    def _bo(self, addr, size, keep=None):
        h = next(self._ids)
        self.bos[h] = (addr, size)
        if keep is not None:
            self.keep[h] = keep
        return h

    def device_initialize(self, fd):
        self.calls.append("device_initialize")
        return 1

    def query_family(self, dev):
        self.calls.append("query_gpu_info")
        return self.family

    def bo_import_dmabuf(self, dev, dmabuf_fd):
        self.calls.append("bo_import")
        size = os.fstat(dmabuf_fd).st_size
        mm = mmap.mmap(dmabuf_fd, size)
        anchor = ctypes.c_char.from_buffer(mm)
        return self._bo(ctypes.addressof(anchor), size, (mm, anchor))

    def create_bo_from_user_mem(self, dev, addr, size):
        self.calls.append("create_bo_from_user_mem")
        assert addr % 4096 == 0 and size % 4096 == 0, "userptr BOs are page aligned"
        return self._bo(addr, size)

    def bo_alloc(self, dev, size, alignment, heap):
        self.calls.append(f"bo_alloc(heap={heap})")
        buf = ctypes.create_string_buffer(size)
        return self._bo(ctypes.addressof(buf), size, buf)

    def va_range_alloc(self, dev, size, alignment):
        self.calls.append("va_range_alloc")
        va = next(self._va)
        return va, va

    def bo_va_op(self, bo, offset, size, addr, op):
        self.calls.append("va_map" if op == AMDGPU_VA_OP_MAP else "va_unmap")
        if op == AMDGPU_VA_OP_MAP:
            assert size <= self.bos[bo][1]
            self.vas[addr] = (bo, size)
        else:
            assert op == AMDGPU_VA_OP_UNMAP and self.vas.pop(addr) == (bo, size)

    def bo_cpu_map(self, bo):
        self.calls.append("bo_cpu_map")
        return self.bos[bo][0]

    def bo_cpu_unmap(self, bo):
        self.calls.append("bo_cpu_unmap")

    def bo_list_create(self, dev, bos):
        self.calls.append(f"bo_list_create({len(bos)})")
        assert all(b in self.bos for b in bos)
        return 7

    def cs_ctx_create(self, dev):
        self.calls.append("cs_ctx_create")
        return 9

    def _host(self, va, n):
        for base, (bo, size) in self.vas.items():
            if base <= va and va + n <= base + size:
                return self.bos[bo][0] + va - base
        raise AssertionError(f"SDMA fault: {n} bytes at VA {va:#x} outside every mapping")

    def cs_submit(self, ctx, bo_list, ib_addr, ib_dwords):
        self.calls.append("cs_submit")
        raw = ctypes.string_at(self._host(ib_addr, 4 * ib_dwords), 4 * ib_dwords)
        ib = list(struct.unpack(f"<{ib_dwords}I", raw))
        assert ib_dwords % 8 == 0
        i = 0
        while i < len(ib):
            if ib[i] == 0:  # NOP
                i += 1
                continue
            assert ib[i] & 0xFFFF == 0x0001, f"not a COPY/LINEAR header: {ib[i]:#x}"
            count, param = ib[i + 1], ib[i + 2]
            src, dst = ib[i + 4] << 32 | ib[i + 3], ib[i + 6] << 32 | ib[i + 5]
            n = count + 1 if self.family >= AMDGPU_FAMILY_AI else count
            assert param == 0 and n <= max_copy_size(self.family)
            ctypes.memmove(self._host(dst, n), self._host(src, n), n)
            i += 7
        return 42

    def cs_wait(self, ctx, seq_no):
        self.calls.append("cs_query_fence_status")
        assert seq_no == 42
        return self.complete

    def cs_ctx_free(self, ctx):
        self.calls.append("cs_ctx_free")

    def bo_list_destroy(self, bo_list):
        self.calls.append("bo_list_destroy")

    def va_range_free(self, va_handle):
        self.calls.append("va_range_free")

    def bo_free(self, bo):
        self.calls.append("bo_free")
        self.bos.pop(bo)
        mm_anchor = self.keep.pop(bo, None)
        if isinstance(mm_anchor, tuple):
            mm, anchor = mm_anchor
            del anchor
            mm_anchor = None
            mm.close()

    def device_deinitialize(self, dev):
        self.calls.append("device_deinitialize")


def _memfd(data: bytes | int) -> int:
    fd = os.memfd_create("t")
    if isinstance(data, int):
        os.ftruncate(fd, data)
    else:
        os.write(fd, data)
    return fd


SETUP = ["create_bo_from_user_mem", "bo_import", "va_range_alloc", "va_map", "va_range_alloc", "va_map",
         "bo_alloc(heap=2)", "va_range_alloc", "va_map", "bo_cpu_map", "bo_list_create(3)"]
CHUNK = ["cs_ctx_create", "cs_submit", "cs_query_fence_status", "cs_ctx_free"]
TEARDOWN = ["bo_list_destroy", "bo_cpu_unmap", "va_unmap", "va_range_free", "bo_free", "va_unmap", "va_range_free",
            "va_unmap", "va_range_free", "bo_free", "bo_free"]


@pytest.mark.parametrize("family", [VEGA, POLARIS])
def test_restore_copies_through_staging_chunks_in_criu_order(family):
    data = os.urandom(5 * MIB + 8192)
    pages = _memfd(b"H" * 8 + data)  # an 8-byte header, as in the pages files
    bo = _memfd(len(data))
    lib = FakeSdmaLib(family)
    eng = SdmaEngine(lambda gpu: "/dev/null", lib, max_buffer=2 * MIB)
    try:
        eng.write_bo(pages, 8, len(data), bo, 0, gpu=0x70B3)
        assert os.pread(bo, len(data), 0) == data
        assert lib.calls == ["device_initialize", "query_gpu_info", *SETUP, *CHUNK * 3, *TEARDOWN]
        assert not lib.bos and not lib.vas, "every BO and VA freed"
    finally:
        eng.close()
        os.close(pages)
        os.close(bo)
    assert lib.calls[-1] == "device_deinitialize"


def test_dump_copies_the_bo_out_through_the_staging_buffer():
    data = os.urandom(3 * MIB)
    bo, out = _memfd(data), _memfd(0)
    lib = FakeSdmaLib()
    eng = SdmaEngine(lambda gpu: "/dev/null", lib, max_buffer=MIB)
    try:
        eng.read_bo(bo, 0, len(data), out, 8, gpu=1)
        assert os.pread(out, len(data), 8) == data
        assert lib.calls.count("cs_submit") == 3
        eng.read_bo(bo, 0, 4096, out, 0, gpu=1)
        assert lib.calls.count("device_initialize") == 1, "one device per GPU, kept"
    finally:
        eng.close()
        os.close(bo)
        os.close(out)


def test_a_copy_that_does_not_complete_fails_and_frees_everything():
    bo, pages = _memfd(8192), _memfd(os.urandom(8192))
    lib = FakeSdmaLib(complete=False)
    eng = SdmaEngine(lambda gpu: "/dev/null", lib)
    with pytest.raises(CriuError, match="did not complete"):
        eng.write_bo(pages, 0, 8192, bo, 0)
    assert not lib.bos and not lib.vas
    assert lib.calls[-len(TEARDOWN) - 1:] == ["cs_ctx_free", *TEARDOWN]
    eng.close()
    os.close(bo)
    os.close(pages)


def test_sdma_needs_a_dmabuf():
    eng = SdmaEngine(lambda gpu: "/dev/null", FakeSdmaLib())
    with pytest.raises(CriuError, match="without a dmabuf"):
        eng.write_bo(0, 0, 4096, 0, 1 << 32)


# ---------------------------------------------------------------------------------------------- the real library

needs_libdrm = pytest.mark.skipif(ctypes.util.find_library("drm_amdgpu") is None,
                                  reason="libdrm_amdgpu is not installed (Debian: libdrm-amdgpu1)")


@needs_libdrm
def test_the_real_library_loads_and_refuses_a_device_that_is_no_amd_gpu():
    from criu_amdgpu.libdrm import load

    lib = load()
    fd = os.open("/dev/null", os.O_RDWR)
    try:
        with pytest.raises(SyscallError, match="amdgpu_device_initialize failed: ENODEV.*not a DRM character"):
            lib.device_initialize(fd)
        # libdrm itself, asked anyway, fails (it also prints its own line to stderr)
        with pytest.raises(SyscallError, match="amdgpu_device_initialize failed"):
            lib.initialize_unchecked(fd)
    finally:
        os.close(fd)


@needs_libdrm
def test_engine_selection_refuses_or_falls_back_without_an_amd_gpu(tmp_path):
    node = tmp_path / "renderD128"  # what the emulated machine has: a plain file
    node.touch()
    sdma = select_engine("sdma", lambda gpu: str(node))
    with pytest.raises(KernelFeatureMissing, match=rf"amdgpu SDMA copy engine: libdrm_amdgpu cannot initialise "
                                                   rf"{node}, so no AMD GPU there"):
        sdma.write_bo(0, 0, 4096, 0, 0, gpu=0x70B3)
    auto = select_engine("auto", lambda gpu: str(node))
    assert isinstance(auto, AutoEngine)
    data = os.urandom(8192)
    pages, bo = _memfd(data), _memfd(8192)
    try:
        auto.write_bo(pages, 0, 8192, bo, 0, gpu=0x70B3)
        assert os.pread(bo, 8192, 0) == data, "copied by the plain engine"
        assert "not a DRM character device" in auto.fallbacks[0x70B3]
    finally:
        os.close(pages)
        os.close(bo)
    assert isinstance(select_engine("plain", lambda gpu: str(node)), PlainEngine)
