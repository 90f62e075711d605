"""The ctypes structures and ioctl numbers match the kernel ABI (reference/amdgpu-kfd.md §1)."""

from __future__ import annotations

import ctypes
import struct

import pytest

from criu_amdgpu import abi


@pytest.mark.parametrize("name,number", [
    ("AMDKFD_IOC_GET_VERSION", 0x80084B01),
    ("AMDKFD_IOC_ALLOC_MEMORY_OF_GPU", 0xC0284B16),
    ("AMDKFD_IOC_MAP_MEMORY_TO_GPU", 0xC0184B18),
    ("AMDKFD_IOC_GET_DMABUF_INFO", 0xC0204B1C),
    ("AMDKFD_IOC_IMPORT_DMABUF", 0xC0184B1D),
    ("AMDKFD_IOC_CRIU_OP", 0xC0384B22),
    ("AMDKFD_IOC_CREATE_PROCESS", 0x00004B27),
    ("DRM_IOCTL_VERSION", 0xC0406400),
    ("DRM_IOCTL_GEM_CLOSE", 0x40086409),
    ("DRM_IOCTL_PRIME_HANDLE_TO_FD", 0xC00C642D),
    ("DRM_IOCTL_PRIME_FD_TO_HANDLE", 0xC00C642E),
    ("DRM_IOCTL_AMDGPU_GEM_CREATE", 0xC0206440),
    ("DRM_IOCTL_AMDGPU_GEM_MMAP", 0xC0086441),
    ("DRM_IOCTL_AMDGPU_GEM_LIST_HANDLES", 0xC0106459),
])
def test_ioctl_numbers(name, number):
    assert getattr(abi, name) == number


@pytest.mark.parametrize("struct_,size", [
    (abi.KfdIoctlGetVersionArgs, 8), (abi.KfdIoctlAllocMemoryOfGpuArgs, 40), (abi.KfdIoctlMapMemoryToGpuArgs, 24),
    (abi.KfdIoctlGetDmabufInfoArgs, 32), (abi.KfdIoctlImportDmabufArgs, 24), (abi.KfdIoctlCriuArgs, 56),
    (abi.KfdCriuDeviceBucket, 16), (abi.KfdCriuBoBucket, 48), (abi.DrmVersion, 64), (abi.DrmGemClose, 8),
    (abi.DrmPrimeHandle, 12), (abi.DrmAmdgpuGemCreate, 32), (abi.DrmAmdgpuGemMmap, 8),
    (abi.DrmAmdgpuGemListHandles, 16), (abi.DrmAmdgpuGemListHandlesEntry, 40),
])
def test_sizes(struct_, size):
    assert ctypes.sizeof(struct_) == size


def test_criu_args_layout():
    offsets = {name: getattr(abi.KfdIoctlCriuArgs, name).offset for name, _ in abi.KfdIoctlCriuArgs._fields_}
    assert offsets == {"devices": 0, "bos": 8, "priv_data": 16, "priv_data_size": 24, "num_devices": 32,
                       "num_bos": 36, "num_objects": 40, "pid": 44, "op": 48}
    assert ctypes.alignment(abi.KfdIoctlCriuArgs) == 8
    # the reference's pure-Python layout reads the same bytes
    a = abi.KfdIoctlCriuArgs(1, 2, 3, 4, 5, 6, 7, 8, 3)
    assert struct.Struct("<QQQQIIIII4x").unpack(bytes(a)) == (1, 2, 3, 4, 5, 6, 7, 8, 3)


def test_bucket_layouts():
    dev = {n: getattr(abi.KfdCriuDeviceBucket, n).offset for n, _ in abi.KfdCriuDeviceBucket._fields_}
    assert dev == {"user_gpu_id": 0, "actual_gpu_id": 4, "drm_fd": 8, "pad": 12}
    bo = {n: getattr(abi.KfdCriuBoBucket, n).offset for n, _ in abi.KfdCriuBoBucket._fields_}
    assert bo == {"addr": 0, "size": 8, "offset": 16, "restored_offset": 24, "gpu_id": 32, "alloc_flags": 36,
                  "dmabuf_fd": 40, "pad": 44}


def test_drm_layouts():
    assert abi.DrmPrimeHandle.fd.offset == 8
    assert abi.DrmVersion.name_len.offset == 16 and abi.DrmVersion.desc.offset == 56
    e = {n: getattr(abi.DrmAmdgpuGemListHandlesEntry, n).offset for n, _ in abi.DrmAmdgpuGemListHandlesEntry._fields_}
    assert e == {"gem_handle": 0, "flags": 4, "size": 8, "preferred_domains": 16, "alloc_flags": 24, "alignment": 32}
    assert abi.DrmAmdgpuGemListHandles.num_entries.offset == 8


def test_alloc_flags_and_mmap_offsets():
    assert (abi.AllocFlag.VRAM, abi.AllocFlag.GTT, abi.AllocFlag.USERPTR, abi.AllocFlag.DOORBELL,
            abi.AllocFlag.MMIO_REMAP) == (1, 2, 4, 8, 16)
    assert abi.AllocFlag.PUBLIC == 1 << 29 and abi.AllocFlag.WRITABLE == 1 << 31
    off = abi.mmap_offset(abi.KFD_MMAP_TYPE_DOORBELL, 0xBEEF, 0x1000)
    assert off >> 62 == 3 and abi.mmap_offset_gpu_id(off) == 0xBEEF and off & abi.KFD_MMAP_VALUE_MASK == 0x1000
    assert abi.ioc_size(abi.AMDKFD_IOC_CRIU_OP) == 56 and abi.ioc_dir(abi.AMDKFD_IOC_CRIU_OP) == 3


def test_ctypes_only_in_the_seams():
    """ctypes lives in the ABI, ioctl, KFD and libdrm modules (and the emulator); the rest goes through them."""
    import ast
    from pathlib import Path

    import criu_amdgpu

    seams = {"abi.py", "ioctl.py", "kfd.py", "libdrm.py"}
    pkg = Path(criu_amdgpu.__file__).parent
    users = []
    for path in sorted(pkg.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "ctypes" or n.startswith("ctypes.") for n in names):
                users.append(path.name)
    assert "sdma.py" in {p.name for p in pkg.glob("*.py")}  # the walk saw the package's modules
    assert sorted(set(users) - seams) == []
