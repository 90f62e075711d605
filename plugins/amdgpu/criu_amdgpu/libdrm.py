"""libdrm_amdgpu through ctypes: the one seam the SDMA copy engine calls (tests put a recorder behind it).

:class:`LibDrmAmdgpu` names the calls CRIU's ``sdma_copy_bo`` makes, one method per libdrm function, with handles
as opaque ints; :class:`CtypesLibDrmAmdgpu` binds them to ``libdrm_amdgpu.so.1`` (Debian: libdrm-amdgpu1). Every
structure quotes libdrm's ``amdgpu.h``. A call that fails raises :class:`~criu_core.errors.SyscallError` naming
the function and the (negative errno) result, as libdrm returns it.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import mmap
import os
import stat
from ctypes import POINTER, Structure, byref, c_int, c_uint8, c_uint32, c_uint64, c_void_p
from typing import Protocol, runtime_checkable

from criu_core.errors import KernelFeatureMissing, SyscallError

__all__ = [
    "AMDGPU_BO_HANDLE_TYPE_DMA_BUF_FD",
    "AMDGPU_GPU_VA_RANGE_GENERAL",
    "AMDGPU_HW_IP_DMA",
    "AMDGPU_TIMEOUT_INFINITE",
    "AMDGPU_VA_OP_MAP",
    "AMDGPU_VA_OP_UNMAP",
    "AmdgpuBoAllocRequest",
    "AmdgpuBoImportResult",
    "AmdgpuCsFence",
    "AmdgpuCsFenceInfo",
    "AmdgpuCsIbInfo",
    "AmdgpuCsRequest",
    "CtypesLibDrmAmdgpu",
    "HostBuffer",
    "LibDrmAmdgpu",
    "load",
    "write_host",
]

LIBRARY = "libdrm_amdgpu.so.1"
DRM_MAJOR = 226
AMDGPU_BO_HANDLE_TYPE_DMA_BUF_FD = 2  # enum amdgpu_bo_handle_type: gem_flink_name 0, kms 1, dma_buf_fd 2
AMDGPU_GPU_VA_RANGE_GENERAL = 0  # enum amdgpu_gpu_va_range
AMDGPU_VA_OP_MAP = 1  # amdgpu_drm.h
AMDGPU_VA_OP_UNMAP = 2
AMDGPU_HW_IP_DMA = 2
AMDGPU_TIMEOUT_INFINITE = 0xFFFFFFFFFFFFFFFF
GPU_INFO_FAMILY_ID_OFFSET = 12  # struct amdgpu_gpu_info: asic_id, chip_rev, chip_external_rev, family_id
GPU_INFO_SIZE = 4096  # larger than struct amdgpu_gpu_info in any libdrm; only family_id is read


class AmdgpuBoAllocRequest(Structure):
    """``struct amdgpu_bo_alloc_request`` (amdgpu.h), 32 bytes::

        struct amdgpu_bo_alloc_request {
            uint64_t alloc_size;
            uint64_t phys_alignment;
            uint32_t preferred_heap;
            uint64_t flags;
        };
    """

    _fields_ = [("alloc_size", c_uint64), ("phys_alignment", c_uint64), ("preferred_heap", c_uint32),
                ("flags", c_uint64)]


class AmdgpuBoImportResult(Structure):
    """``struct amdgpu_bo_import_result`` (amdgpu.h): ``amdgpu_bo_handle buf_handle; uint64_t alloc_size;``."""

    _fields_ = [("buf_handle", c_void_p), ("alloc_size", c_uint64)]


class AmdgpuCsIbInfo(Structure):
    """``struct amdgpu_cs_ib_info`` (amdgpu.h): ``uint64_t flags; uint64_t ib_mc_address; uint32_t size;``
    (size in dwords)."""

    _fields_ = [("flags", c_uint64), ("ib_mc_address", c_uint64), ("size", c_uint32)]


class AmdgpuCsFenceInfo(Structure):
    """``struct amdgpu_cs_fence_info`` (amdgpu.h): ``amdgpu_bo_handle handle; uint64_t offset;``."""

    _fields_ = [("handle", c_void_p), ("offset", c_uint64)]


class AmdgpuCsFence(Structure):
    """``struct amdgpu_cs_fence`` (amdgpu.h)::

        struct amdgpu_cs_fence {
            amdgpu_context_handle context;
            uint32_t ip_type;
            uint32_t ip_instance;
            uint32_t ring;
            uint64_t fence;
        };
    """

    _fields_ = [("context", c_void_p), ("ip_type", c_uint32), ("ip_instance", c_uint32), ("ring", c_uint32),
                ("fence", c_uint64)]


class AmdgpuCsRequest(Structure):
    """``struct amdgpu_cs_request`` (amdgpu.h)::

        struct amdgpu_cs_request {
            uint64_t flags;
            unsigned ip_type;
            unsigned ip_instance;
            uint32_t ring;
            amdgpu_bo_list_handle resources;
            uint32_t number_of_dependencies;
            struct amdgpu_cs_fence *dependencies;
            uint32_t number_of_ibs;
            struct amdgpu_cs_ib_info *ibs;
            uint64_t seq_no;
            struct amdgpu_cs_fence_info fence_info;
        };
    """

    _fields_ = [("flags", c_uint64), ("ip_type", c_uint32), ("ip_instance", c_uint32), ("ring", c_uint32),
                ("resources", c_void_p), ("number_of_dependencies", c_uint32),
                ("dependencies", POINTER(AmdgpuCsFence)), ("number_of_ibs", c_uint32),
                ("ibs", POINTER(AmdgpuCsIbInfo)), ("seq_no", c_uint64), ("fence_info", AmdgpuCsFenceInfo)]


@runtime_checkable
class LibDrmAmdgpu(Protocol):
    """The libdrm_amdgpu calls of an SDMA copy, in CRIU's order of use; handles are opaque ints."""

    def device_initialize(self, fd: int) -> int: ...
    def query_family(self, dev: int) -> int: ...
    def bo_import_dmabuf(self, dev: int, dmabuf_fd: int) -> int: ...
    def create_bo_from_user_mem(self, dev: int, addr: int, size: int) -> int: ...
    def bo_alloc(self, dev: int, size: int, alignment: int, heap: int) -> int: ...
    def va_range_alloc(self, dev: int, size: int, alignment: int) -> tuple[int, int]: ...
    def bo_va_op(self, bo: int, offset: int, size: int, addr: int, op: int) -> None: ...
    def bo_cpu_map(self, bo: int) -> int: ...
    def bo_cpu_unmap(self, bo: int) -> None: ...
    def bo_list_create(self, dev: int, bos: list[int]) -> int: ...
    def cs_ctx_create(self, dev: int) -> int: ...
    def cs_submit(self, ctx: int, bo_list: int, ib_addr: int, ib_dwords: int) -> int: ...
    def cs_wait(self, ctx: int, seq_no: int) -> bool: ...
    def cs_ctx_free(self, ctx: int) -> None: ...
    def bo_list_destroy(self, bo_list: int) -> None: ...
    def va_range_free(self, va_handle: int) -> None: ...
    def bo_free(self, bo: int) -> None: ...
    def device_deinitialize(self, dev: int) -> None: ...


class HostBuffer:
    """Page-aligned host memory (an anonymous mapping) and its address, for a userptr BO (the SDMA staging)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.mm = mmap.mmap(-1, size)
        self._anchor = ctypes.c_char.from_buffer(self.mm)  # pins the mapping while its address is in use
        self.addr = ctypes.addressof(self._anchor)

    def close(self) -> None:
        del self._anchor
        self.mm.close()


def write_host(addr: int, data: bytes) -> None:
    """Copy ``data`` to the host address ``addr`` (a CPU mapping libdrm returned, such as ``bo_cpu_map``'s)."""
    ctypes.memmove(addr, data, len(data))


def _sig(lib: ctypes.CDLL, name: str, *argtypes: object) -> None:
    fn = getattr(lib, name)
    fn.argtypes = list(argtypes)
    fn.restype = c_int


class CtypesLibDrmAmdgpu:
    """:class:`LibDrmAmdgpu` over ``libdrm_amdgpu.so.1``."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib
        vp, u32, u64 = c_void_p, c_uint32, c_uint64
        _sig(lib, "amdgpu_device_initialize", c_int, POINTER(u32), POINTER(u32), POINTER(vp))
        _sig(lib, "amdgpu_device_deinitialize", vp)
        _sig(lib, "amdgpu_query_gpu_info", vp, c_void_p)
        _sig(lib, "amdgpu_bo_import", vp, c_int, u32, POINTER(AmdgpuBoImportResult))
        _sig(lib, "amdgpu_create_bo_from_user_mem", vp, vp, u64, POINTER(vp))
        _sig(lib, "amdgpu_bo_alloc", vp, POINTER(AmdgpuBoAllocRequest), POINTER(vp))
        _sig(lib, "amdgpu_va_range_alloc", vp, c_int, u64, u64, u64, POINTER(u64), POINTER(vp), u64)
        _sig(lib, "amdgpu_va_range_free", vp)
        _sig(lib, "amdgpu_bo_va_op", vp, u64, u64, u64, u64, u32)
        _sig(lib, "amdgpu_bo_cpu_map", vp, POINTER(vp))
        _sig(lib, "amdgpu_bo_cpu_unmap", vp)
        _sig(lib, "amdgpu_bo_free", vp)
        _sig(lib, "amdgpu_bo_list_create", vp, u32, POINTER(vp), POINTER(c_uint8), POINTER(vp))
        _sig(lib, "amdgpu_bo_list_destroy", vp)
        _sig(lib, "amdgpu_cs_ctx_create", vp, POINTER(vp))
        _sig(lib, "amdgpu_cs_ctx_free", vp)
        _sig(lib, "amdgpu_cs_submit", vp, u64, POINTER(AmdgpuCsRequest), u32)
        _sig(lib, "amdgpu_cs_query_fence_status", POINTER(AmdgpuCsFence), u64, u64, POINTER(u32))

    def _check(self, name: str, ret: int, what: str = "") -> None:
        if ret:
            err = -ret if ret < 0 and -ret != 1 else (ctypes.get_errno() or _errno.EIO)
            raise SyscallError(err, name, None, what)

    def device_initialize(self, fd: int) -> int:
        """``amdgpu_device_initialize`` on a render-node descriptor. Anything but a DRM character device is refused
        first (ENODEV): libdrm would print its own complaint to our stderr."""
        st = os.fstat(fd)
        if not stat.S_ISCHR(st.st_mode) or os.major(st.st_rdev) != DRM_MAJOR:
            raise SyscallError(_errno.ENODEV, "amdgpu_device_initialize", None, "not a DRM character device")
        return self.initialize_unchecked(fd)

    def initialize_unchecked(self, fd: int) -> int:
        major, minor, dev = c_uint32(), c_uint32(), c_void_p()
        self._check("amdgpu_device_initialize", self.lib.amdgpu_device_initialize(fd, byref(major), byref(minor),
                                                                                 byref(dev)))
        return int(dev.value or 0)

    def query_family(self, dev: int) -> int:
        info = ctypes.create_string_buffer(GPU_INFO_SIZE)
        self._check("amdgpu_query_gpu_info", self.lib.amdgpu_query_gpu_info(dev, info))
        return int.from_bytes(info.raw[GPU_INFO_FAMILY_ID_OFFSET:GPU_INFO_FAMILY_ID_OFFSET + 4], "little")

    def bo_import_dmabuf(self, dev: int, dmabuf_fd: int) -> int:
        res = AmdgpuBoImportResult()
        self._check("amdgpu_bo_import", self.lib.amdgpu_bo_import(dev, AMDGPU_BO_HANDLE_TYPE_DMA_BUF_FD, dmabuf_fd,
                                                                  byref(res)))
        return int(res.buf_handle or 0)

    def create_bo_from_user_mem(self, dev: int, addr: int, size: int) -> int:
        bo = c_void_p()
        self._check("amdgpu_create_bo_from_user_mem", self.lib.amdgpu_create_bo_from_user_mem(dev, addr, size,
                                                                                              byref(bo)))
        return int(bo.value or 0)

    def bo_alloc(self, dev: int, size: int, alignment: int, heap: int) -> int:
        req, bo = AmdgpuBoAllocRequest(size, alignment, heap, 0), c_void_p()
        self._check("amdgpu_bo_alloc", self.lib.amdgpu_bo_alloc(dev, byref(req), byref(bo)))
        return int(bo.value or 0)

    def va_range_alloc(self, dev: int, size: int, alignment: int) -> tuple[int, int]:
        va, handle = c_uint64(), c_void_p()
        self._check("amdgpu_va_range_alloc", self.lib.amdgpu_va_range_alloc(
            dev, AMDGPU_GPU_VA_RANGE_GENERAL, size, alignment, 0, byref(va), byref(handle), 0))
        return int(va.value), int(handle.value or 0)

    def bo_va_op(self, bo: int, offset: int, size: int, addr: int, op: int) -> None:
        self._check("amdgpu_bo_va_op", self.lib.amdgpu_bo_va_op(bo, offset, size, addr, 0, op), f"VA {addr:#x}")

    def bo_cpu_map(self, bo: int) -> int:
        cpu = c_void_p()
        self._check("amdgpu_bo_cpu_map", self.lib.amdgpu_bo_cpu_map(bo, byref(cpu)))
        return int(cpu.value or 0)

    def bo_cpu_unmap(self, bo: int) -> None:
        self._check("amdgpu_bo_cpu_unmap", self.lib.amdgpu_bo_cpu_unmap(bo))

    def bo_list_create(self, dev: int, bos: list[int]) -> int:
        arr, out = (c_void_p * len(bos))(*bos), c_void_p()
        self._check("amdgpu_bo_list_create", self.lib.amdgpu_bo_list_create(dev, len(bos), arr, None, byref(out)))
        return int(out.value or 0)

    def cs_ctx_create(self, dev: int) -> int:
        ctx = c_void_p()
        self._check("amdgpu_cs_ctx_create", self.lib.amdgpu_cs_ctx_create(dev, byref(ctx)))
        return int(ctx.value or 0)

    def cs_submit(self, ctx: int, bo_list: int, ib_addr: int, ib_dwords: int) -> int:
        ib = AmdgpuCsIbInfo(0, ib_addr, ib_dwords)
        req = AmdgpuCsRequest(ip_type=AMDGPU_HW_IP_DMA, ring=0, resources=bo_list, number_of_ibs=1,
                              ibs=ctypes.pointer(ib))
        self._check("amdgpu_cs_submit", self.lib.amdgpu_cs_submit(ctx, 0, byref(req), 1))
        return int(req.seq_no)

    def cs_wait(self, ctx: int, seq_no: int) -> bool:
        fence, expired = AmdgpuCsFence(ctx, AMDGPU_HW_IP_DMA, 0, 0, seq_no), c_uint32()
        self._check("amdgpu_cs_query_fence_status", self.lib.amdgpu_cs_query_fence_status(
            byref(fence), AMDGPU_TIMEOUT_INFINITE, 0, byref(expired)))
        return bool(expired.value)

    def cs_ctx_free(self, ctx: int) -> None:
        self._check("amdgpu_cs_ctx_free", self.lib.amdgpu_cs_ctx_free(ctx))

    def bo_list_destroy(self, bo_list: int) -> None:
        self._check("amdgpu_bo_list_destroy", self.lib.amdgpu_bo_list_destroy(bo_list))

    def va_range_free(self, va_handle: int) -> None:
        self._check("amdgpu_va_range_free", self.lib.amdgpu_va_range_free(va_handle))

    def bo_free(self, bo: int) -> None:
        self._check("amdgpu_bo_free", self.lib.amdgpu_bo_free(bo))

    def device_deinitialize(self, dev: int) -> None:
        self._check("amdgpu_device_deinitialize", self.lib.amdgpu_device_deinitialize(dev))


def load(name: str = LIBRARY) -> CtypesLibDrmAmdgpu:
    """The system's libdrm_amdgpu, or KernelFeatureMissing saying it is not installed."""
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise KernelFeatureMissing("libdrm_amdgpu", f"the SDMA copy engine needs {name} (Debian: libdrm-amdgpu1): "
                                   f"{exc}") from None
    return CtypesLibDrmAmdgpu(lib)

