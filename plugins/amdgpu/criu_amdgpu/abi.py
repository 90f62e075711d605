"""KFD and DRM kernel ABI: ioctl numbers, flags and the ctypes structures the plugin exchanges with the kernel.

Every structure quotes the C struct it mirrors and the header it comes from (``uapi/linux/kfd_ioctl.h``,
``uapi/drm/drm.h``, ``uapi/drm/amdgpu_drm.h``). Layouts are x86_64, little-endian; the tests pin every size and
offset to the values in ``reference/amdgpu-kfd.md`` (computed there with gcc against the vendored headers).
"""

from __future__ import annotations

import ctypes
from ctypes import c_char_p, c_int, c_int32, c_size_t, c_uint32, c_uint64
from typing import ClassVar

__all__ = [
    "AMDKFD_COMMAND_END",
    "AMDKFD_COMMAND_START",
    "AMDKFD_IOCTL_BASE",
    "AMDKFD_IOC_ALLOC_MEMORY_OF_GPU",
    "AMDKFD_IOC_CREATE_PROCESS",
    "AMDKFD_IOC_CRIU_OP",
    "AMDKFD_IOC_GET_DMABUF_INFO",
    "AMDKFD_IOC_GET_VERSION",
    "AMDKFD_IOC_IMPORT_DMABUF",
    "AMDKFD_IOC_MAP_MEMORY_TO_GPU",
    "CONTENT_FLAGS",
    "DRM_COMMAND_BASE",
    "DRM_IOCTL_AMDGPU_GEM_CREATE",
    "DRM_IOCTL_AMDGPU_GEM_MMAP",
    "DRM_IOCTL_BASE",
    "DRM_IOCTL_GEM_CLOSE",
    "DRM_IOCTL_PRIME_FD_TO_HANDLE",
    "DRM_IOCTL_PRIME_HANDLE_TO_FD",
    "DRM_IOCTL_VERSION",
    "IOC_NONE",
    "IOC_READ",
    "IOC_WRITE",
    "KFD_INVALID_FD",
    "KFD_IOCTL_MAJOR_VERSION",
    "KFD_MMAP_GPU_ID_MASK",
    "KFD_MMAP_GPU_ID_SHIFT",
    "KFD_MMAP_TYPE_DOORBELL",
    "KFD_MMAP_TYPE_EVENTS",
    "KFD_MMAP_TYPE_MASK",
    "KFD_MMAP_TYPE_MMIO",
    "KFD_MMAP_TYPE_RESERVED_MEM",
    "KFD_MMAP_TYPE_SHIFT",
    "KFD_MMAP_VALUE_MASK",
    "MIN_KFD_IOCTL_MINOR_VERSION",
    "REMAP_FLAGS",
    "AllocFlag",
    "CriuOp",
    "DrmAmdgpuGemCreate",
    "DrmAmdgpuGemMmap",
    "DrmGemClose",
    "DrmPrimeHandle",
    "DrmVersion",
    "KfdCriuBoBucket",
    "KfdCriuDeviceBucket",
    "KfdIoctlAllocMemoryOfGpuArgs",
    "KfdIoctlCriuArgs",
    "KfdIoctlGetDmabufInfoArgs",
    "KfdIoctlGetVersionArgs",
    "KfdIoctlImportDmabufArgs",
    "KfdIoctlMapMemoryToGpuArgs",
    "io",
    "ioc",
    "ioc_dir",
    "ioc_nr",
    "ioc_size",
    "ioc_type",
    "ior",
    "iow",
    "iowr",
    "mmap_offset",
    "mmap_offset_gpu_id",
]

# ---------------------------------------------------------------------------------------------- _IOC encoding
# asm-generic/ioctl.h: dir<<30 | size<<16 | type<<8 | nr
IOC_NONE, IOC_WRITE, IOC_READ = 0, 1, 2


def ioc(direction: int, type_: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (type_ << 8) | nr


def io(type_: int, nr: int) -> int:
    return ioc(IOC_NONE, type_, nr, 0)


def ior(type_: int, nr: int, struct: type[ctypes.Structure]) -> int:
    return ioc(IOC_READ, type_, nr, ctypes.sizeof(struct))


def iow(type_: int, nr: int, struct: type[ctypes.Structure]) -> int:
    return ioc(IOC_WRITE, type_, nr, ctypes.sizeof(struct))


def iowr(type_: int, nr: int, struct: type[ctypes.Structure | ctypes.Union]) -> int:
    return ioc(IOC_READ | IOC_WRITE, type_, nr, ctypes.sizeof(struct))


def ioc_dir(cmd: int) -> int:
    return (cmd >> 30) & 3


def ioc_size(cmd: int) -> int:
    return (cmd >> 16) & 0x3FFF


def ioc_type(cmd: int) -> int:
    return (cmd >> 8) & 0xFF


def ioc_nr(cmd: int) -> int:
    return cmd & 0xFF


AMDKFD_IOCTL_BASE = ord("K")
DRM_IOCTL_BASE = ord("d")
DRM_COMMAND_BASE = 0x40

# ---------------------------------------------------------------------------------------------- KFD structures


class KfdIoctlGetVersionArgs(ctypes.Structure):
    """``struct kfd_ioctl_get_version_args`` (kfd_ioctl.h), 8 bytes::

        struct kfd_ioctl_get_version_args {
            __u32 major_version;   /* from KFD */
            __u32 minor_version;   /* from KFD */
        };
    """

    _fields_ = [("major_version", c_uint32), ("minor_version", c_uint32)]


class KfdIoctlAllocMemoryOfGpuArgs(ctypes.Structure):
    """``struct kfd_ioctl_alloc_memory_of_gpu_args`` (kfd_ioctl.h), 40 bytes::

        struct kfd_ioctl_alloc_memory_of_gpu_args {
            __u64 va_addr;      /* to KFD */
            __u64 size;         /* to KFD */
            __u64 handle;       /* from KFD */
            __u64 mmap_offset;  /* to KFD (userptr), from KFD (mmap offset) */
            __u32 gpu_id;       /* to KFD */
            __u32 flags;
        };

    Not used by the plugin; the emulated device serves it so a target process can create BOs.
    """

    _fields_ = [("va_addr", c_uint64), ("size", c_uint64), ("handle", c_uint64), ("mmap_offset", c_uint64),
                ("gpu_id", c_uint32), ("flags", c_uint32)]


class KfdIoctlMapMemoryToGpuArgs(ctypes.Structure):
    """``struct kfd_ioctl_map_memory_to_gpu_args`` (kfd_ioctl.h), 24 bytes::

        struct kfd_ioctl_map_memory_to_gpu_args {
            __u64 handle;                /* to KFD */
            __u64 device_ids_array_ptr;  /* to KFD */
            __u32 n_devices;             /* to KFD */
            __u32 n_success;             /* to/from KFD */
        };
    """

    _fields_ = [("handle", c_uint64), ("device_ids_array_ptr", c_uint64), ("n_devices", c_uint32),
                ("n_success", c_uint32)]


class KfdIoctlGetDmabufInfoArgs(ctypes.Structure):
    """``struct kfd_ioctl_get_dmabuf_info_args`` (kfd_ioctl.h), 32 bytes::

        struct kfd_ioctl_get_dmabuf_info_args {
            __u64 size;           /* from KFD */
            __u64 metadata_ptr;   /* to KFD */
            __u32 metadata_size;  /* to KFD (space allocated by user) / from KFD (actual metadata size) */
            __u32 gpu_id;         /* from KFD */
            __u32 flags;          /* from KFD (KFD_IOC_ALLOC_MEM_FLAGS) */
            __u32 dmabuf_fd;      /* to KFD */
        };
    """

    _fields_ = [("size", c_uint64), ("metadata_ptr", c_uint64), ("metadata_size", c_uint32),
                ("gpu_id", c_uint32), ("flags", c_uint32), ("dmabuf_fd", c_uint32)]


class KfdIoctlImportDmabufArgs(ctypes.Structure):
    """``struct kfd_ioctl_import_dmabuf_args`` (kfd_ioctl.h), 24 bytes::

        struct kfd_ioctl_import_dmabuf_args {
            __u64 va_addr;    /* to KFD */
            __u64 handle;     /* from KFD */
            __u32 gpu_id;     /* to KFD */
            __u32 dmabuf_fd;  /* to KFD */
        };
    """

    _fields_ = [("va_addr", c_uint64), ("handle", c_uint64), ("gpu_id", c_uint32), ("dmabuf_fd", c_uint32)]


class KfdIoctlCriuArgs(ctypes.Structure):
    """``struct kfd_ioctl_criu_args`` (kfd_ioctl.h), 56 bytes, 8-aligned (4 bytes of tail padding)::

        struct kfd_ioctl_criu_args {
            __u64 devices;         /* Used during ops: CHECKPOINT, RESTORE */
            __u64 bos;             /* Used during ops: CHECKPOINT, RESTORE */
            __u64 priv_data;       /* Used during ops: CHECKPOINT, RESTORE */
            __u64 priv_data_size;  /* Used during ops: PROCESS_INFO, RESTORE */
            __u32 num_devices;     /* Used during ops: PROCESS_INFO, RESTORE */
            __u32 num_bos;         /* Used during ops: PROCESS_INFO, RESTORE */
            __u32 num_objects;     /* Used during ops: PROCESS_INFO, RESTORE */
            __u32 pid;             /* Used during ops: PROCESS_INFO, RESUME */
            __u32 op;
        };
    """

    _fields_ = [("devices", c_uint64), ("bos", c_uint64), ("priv_data", c_uint64), ("priv_data_size", c_uint64),
                ("num_devices", c_uint32), ("num_bos", c_uint32), ("num_objects", c_uint32), ("pid", c_uint32),
                ("op", c_uint32)]


class KfdCriuDeviceBucket(ctypes.Structure):
    """``struct kfd_criu_device_bucket`` (kfd_ioctl.h), 16 bytes::

        struct kfd_criu_device_bucket {
            __u32 user_gpu_id;
            __u32 actual_gpu_id;
            __u32 drm_fd;
            __u32 pad;
        };
    """

    _fields_ = [("user_gpu_id", c_uint32), ("actual_gpu_id", c_uint32), ("drm_fd", c_uint32), ("pad", c_uint32)]


class KfdCriuBoBucket(ctypes.Structure):
    """``struct kfd_criu_bo_bucket`` (kfd_ioctl.h), 48 bytes::

        struct kfd_criu_bo_bucket {
            __u64 addr;
            __u64 size;
            __u64 offset;
            __u64 restored_offset;  /* During restore, updated offset for BO */
            __u32 gpu_id;           /* This is the user_gpu_id */
            __u32 alloc_flags;
            __u32 dmabuf_fd;
            __u32 pad;
        };
    """

    _fields_ = [("addr", c_uint64), ("size", c_uint64), ("offset", c_uint64), ("restored_offset", c_uint64),
                ("gpu_id", c_uint32), ("alloc_flags", c_uint32), ("dmabuf_fd", c_uint32), ("pad", c_uint32)]


# ---------------------------------------------------------------------------------------------- DRM structures


class DrmVersion(ctypes.Structure):
    """``struct drm_version`` (drm.h), 64 bytes::

        struct drm_version {
            int version_major;
            int version_minor;
            int version_patchlevel;
            __kernel_size_t name_len;
            char __user *name;
            __kernel_size_t date_len;
            char __user *date;
            __kernel_size_t desc_len;
            char __user *desc;
        };
    """

    _fields_ = [("version_major", c_int), ("version_minor", c_int), ("version_patchlevel", c_int),
                ("name_len", c_size_t), ("name", c_char_p), ("date_len", c_size_t), ("date", c_char_p),
                ("desc_len", c_size_t), ("desc", c_char_p)]


class DrmGemClose(ctypes.Structure):
    """``struct drm_gem_close`` (drm.h), 8 bytes::

        struct drm_gem_close {
            __u32 handle;
            __u32 pad;
        };
    """

    _fields_ = [("handle", c_uint32), ("pad", c_uint32)]


class DrmPrimeHandle(ctypes.Structure):
    """``struct drm_prime_handle`` (drm.h), 12 bytes::

        struct drm_prime_handle {
            __u32 handle;
            __u32 flags;   /* Flags.. only applicable for handle->fd */
            __s32 fd;      /* Returned dmabuf file descriptor */
        };
    """

    _fields_ = [("handle", c_uint32), ("flags", c_uint32), ("fd", c_int32)]


class _GemCreateIn(ctypes.Structure):
    """``struct drm_amdgpu_gem_create_in`` (amdgpu_drm.h): bo_size, alignment, domains, domain_flags (u64 each)."""

    _fields_ = [("bo_size", c_uint64), ("alignment", c_uint64), ("domains", c_uint64), ("domain_flags", c_uint64)]


class _GemCreateOut(ctypes.Structure):
    """``struct drm_amdgpu_gem_create_out`` (amdgpu_drm.h): ``__u32 handle; __u32 _pad;``."""

    _fields_ = [("handle", c_uint32), ("_pad", c_uint32)]


class DrmAmdgpuGemCreate(ctypes.Union):
    """``union drm_amdgpu_gem_create`` (amdgpu_drm.h), 32 bytes::

        union drm_amdgpu_gem_create {
            struct drm_amdgpu_gem_create_in  in;
            struct drm_amdgpu_gem_create_out out;
        };
    """

    _fields_ = [("in_", _GemCreateIn), ("out", _GemCreateOut)]


class _GemMmapIn(ctypes.Structure):
    """``struct drm_amdgpu_gem_mmap_in`` (amdgpu_drm.h): ``__u32 handle; __u32 _pad;``."""

    _fields_ = [("handle", c_uint32), ("_pad", c_uint32)]


class _GemMmapOut(ctypes.Structure):
    """``struct drm_amdgpu_gem_mmap_out`` (amdgpu_drm.h): ``__u64 addr_ptr;`` (the fake mmap offset)."""

    _fields_ = [("addr_ptr", c_uint64)]


class DrmAmdgpuGemMmap(ctypes.Union):
    """``union drm_amdgpu_gem_mmap`` (amdgpu_drm.h), 8 bytes::

        union drm_amdgpu_gem_mmap {
            struct drm_amdgpu_gem_mmap_in  in;
            struct drm_amdgpu_gem_mmap_out out;
        };
    """

    _fields_ = [("in_", _GemMmapIn), ("out", _GemMmapOut)]


class DrmAmdgpuGemListHandles(ctypes.Structure):
    """``struct drm_amdgpu_gem_list_handles`` (amdgpu_drm.h, upstream 6.17+), 16 bytes::

        struct drm_amdgpu_gem_list_handles {
            __u64 entries;      /* pointer to an array of drm_amdgpu_gem_list_handles_entry */
            __u32 num_entries;  /* in: room in the array; out: number of BOs of the file */
            __u32 padding;
        };
    """

    _fields_ = [("entries", c_uint64), ("num_entries", c_uint32), ("padding", c_uint32)]


class DrmAmdgpuGemListHandlesEntry(ctypes.Structure):
    """``struct drm_amdgpu_gem_list_handles_entry`` (amdgpu_drm.h), 40 bytes::

        struct drm_amdgpu_gem_list_handles_entry {
            __u32 gem_handle;
            __u32 flags;              /* AMDGPU_GEM_LIST_HANDLES_FLAG_IS_IMPORT (1 << 0) */
            __u64 size;
            __u64 preferred_domains;
            __u64 alloc_flags;
            __u64 alignment;
        };
    """

    _fields_ = [("gem_handle", c_uint32), ("flags", c_uint32), ("size", c_uint64), ("preferred_domains", c_uint64),
                ("alloc_flags", c_uint64), ("alignment", c_uint64)]


# ---------------------------------------------------------------------------------------------- ioctl numbers

AMDKFD_IOC_GET_VERSION = ior(AMDKFD_IOCTL_BASE, 0x01, KfdIoctlGetVersionArgs)
AMDKFD_IOC_ALLOC_MEMORY_OF_GPU = iowr(AMDKFD_IOCTL_BASE, 0x16, KfdIoctlAllocMemoryOfGpuArgs)
AMDKFD_IOC_MAP_MEMORY_TO_GPU = iowr(AMDKFD_IOCTL_BASE, 0x18, KfdIoctlMapMemoryToGpuArgs)
AMDKFD_IOC_GET_DMABUF_INFO = iowr(AMDKFD_IOCTL_BASE, 0x1C, KfdIoctlGetDmabufInfoArgs)
AMDKFD_IOC_IMPORT_DMABUF = iowr(AMDKFD_IOCTL_BASE, 0x1D, KfdIoctlImportDmabufArgs)
AMDKFD_IOC_CRIU_OP = iowr(AMDKFD_IOCTL_BASE, 0x22, KfdIoctlCriuArgs)
AMDKFD_IOC_CREATE_PROCESS = io(AMDKFD_IOCTL_BASE, 0x27)  # KFD 1.19+, not in the vendored 1.8 header
AMDKFD_COMMAND_START = 0x01
AMDKFD_COMMAND_END = 0x23  # vendored header 1.8; newer kernels accept more (0x27 CREATE_PROCESS)

DRM_IOCTL_VERSION = iowr(DRM_IOCTL_BASE, 0x00, DrmVersion)
DRM_IOCTL_GEM_CLOSE = iow(DRM_IOCTL_BASE, 0x09, DrmGemClose)
DRM_IOCTL_PRIME_HANDLE_TO_FD = iowr(DRM_IOCTL_BASE, 0x2D, DrmPrimeHandle)
DRM_IOCTL_PRIME_FD_TO_HANDLE = iowr(DRM_IOCTL_BASE, 0x2E, DrmPrimeHandle)
DRM_IOCTL_AMDGPU_GEM_CREATE = iowr(DRM_IOCTL_BASE, DRM_COMMAND_BASE + 0x00, DrmAmdgpuGemCreate)
DRM_IOCTL_AMDGPU_GEM_MMAP = iowr(DRM_IOCTL_BASE, DRM_COMMAND_BASE + 0x01, DrmAmdgpuGemMmap)
DRM_IOCTL_AMDGPU_GEM_LIST_HANDLES = iowr(DRM_IOCTL_BASE, DRM_COMMAND_BASE + 0x19, DrmAmdgpuGemListHandles)
AMDGPU_GEM_LIST_HANDLES_FLAG_IS_IMPORT = 1 << 0
AMDGPU_GEM_DOMAIN_GTT = 0x2
AMDGPU_GEM_DOMAIN_VRAM = 0x4

# ---------------------------------------------------------------------------------------------- values


class CriuOp:
    """``enum kfd_criu_op`` (kfd_ioctl.h)."""

    PROCESS_INFO = 0
    CHECKPOINT = 1
    UNPAUSE = 2
    RESTORE = 3
    RESUME = 4

    NAMES: ClassVar[dict[int, str]] = {0: "PROCESS_INFO", 1: "CHECKPOINT", 2: "UNPAUSE", 3: "RESTORE", 4: "RESUME"}


class AllocFlag:
    """``KFD_IOC_ALLOC_MEM_FLAGS_*`` (kfd_ioctl.h): memory type in the low bits, attributes in the high bits."""

    VRAM = 1 << 0
    GTT = 1 << 1
    USERPTR = 1 << 2
    DOORBELL = 1 << 3
    MMIO_REMAP = 1 << 4
    WRITABLE = 1 << 31
    EXECUTABLE = 1 << 30
    PUBLIC = 1 << 29
    NO_SUBSTITUTE = 1 << 28
    AQL_QUEUE_MEM = 1 << 27
    COHERENT = 1 << 26
    UNCACHED = 1 << 25


# Only VRAM/GTT contents are copied (USERPTR pages are ordinary process memory the core dumps);
# VMAs of VRAM/GTT/MMIO_REMAP/DOORBELL BOs move to the offsets RESTORE hands back.
CONTENT_FLAGS = AllocFlag.VRAM | AllocFlag.GTT
REMAP_FLAGS = AllocFlag.VRAM | AllocFlag.GTT | AllocFlag.MMIO_REMAP | AllocFlag.DOORBELL

KFD_INVALID_FD = 0xFFFFFFFF
KFD_IOCTL_MAJOR_VERSION = 1
MIN_KFD_IOCTL_MINOR_VERSION = 8  # 1.7 introduced CRIU, 1.8 added SDMA copies of GTT BOs

# kfd_priv.h (kernel-private): mmap offsets of /dev/kfd carry a type and, for doorbells/MMIO, the *actual* gpu_id.
KFD_MMAP_TYPE_SHIFT = 62
KFD_MMAP_TYPE_MASK = 0x3 << KFD_MMAP_TYPE_SHIFT
KFD_MMAP_TYPE_DOORBELL = 0x3 << KFD_MMAP_TYPE_SHIFT
KFD_MMAP_TYPE_EVENTS = 0x2 << KFD_MMAP_TYPE_SHIFT
KFD_MMAP_TYPE_RESERVED_MEM = 0x1 << KFD_MMAP_TYPE_SHIFT
KFD_MMAP_TYPE_MMIO = 0x0 << KFD_MMAP_TYPE_SHIFT
KFD_MMAP_GPU_ID_SHIFT = 46
KFD_MMAP_GPU_ID_MASK = 0xFFFF << KFD_MMAP_GPU_ID_SHIFT
KFD_MMAP_VALUE_MASK = (1 << KFD_MMAP_GPU_ID_SHIFT) - 1


def mmap_offset(mmap_type: int, gpu_id: int, value: int = 0) -> int:
    """A /dev/kfd mmap offset (``KFD_MMAP_TYPE_* | KFD_MMAP_GPU_ID(gpu_id) | value``)."""
    return mmap_type | ((gpu_id & 0xFFFF) << KFD_MMAP_GPU_ID_SHIFT) | (value & KFD_MMAP_VALUE_MASK)


def mmap_offset_gpu_id(offset: int) -> int:
    return (offset & KFD_MMAP_GPU_ID_MASK) >> KFD_MMAP_GPU_ID_SHIFT
