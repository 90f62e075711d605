"""The KFD seam and the CRIU_OP sequence built on it.

Every ioctl goes through one seam, :class:`KfdDevice` (``ioctl(cmd, buf)`` plus the :class:`Memory` the argument's
pointers point into), so tests put an emulated device behind it and the restore can issue the ioctl from inside a
restored task. The op helpers below build the 56-byte ``kfd_ioctl_criu_args`` and the bucket arrays exactly as C
does (arrays in memory, their addresses in the args) and decode what the kernel wrote back.

Kernel rules the caller must respect (reference §1.4): dump-side ops must come from the task's ptrace parent *thread*
(the one that seized it), never from a pool thread; RESTORE from inside the restored task; RESUME from our own
``/dev/kfd`` fd with the task's real pid.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os
from dataclasses import dataclass, field
from typing import Protocol, Self, runtime_checkable

from criu_core.errors import KernelFeatureMissing, SyscallError

from criu_amdgpu import abi
from criu_amdgpu.ioctl import ioctl_buf, process_vm_readv, process_vm_writev

__all__ = [
    "Arrays",
    "BoBucket",
    "CheckpointData",
    "DeviceBucket",
    "FdKfdDevice",
    "KfdDevice",
    "KfdError",
    "LocalMemory",
    "Memory",
    "ProcessInfo",
    "ProcessMemory",
    "call",
    "check_version",
    "checkpoint",
    "get_version",
    "ioctl_name",
    "process_info",
    "restore",
    "resume",
    "struct_size",
    "unpause",
]


class KfdError(SyscallError):
    """A KFD ioctl failed: carries ``errno``, the op's name and the task it concerned."""


@runtime_checkable
class Memory(Protocol):
    """Where the pointer fields of an ioctl argument point: this process, or a task being restored."""

    def alloc(self, size: int) -> int:
        """Reserve ``size`` zeroed bytes; return their address (never 0 for size > 0)."""

    def read(self, addr: int, size: int) -> bytes: ...

    def write(self, addr: int, data: bytes) -> None: ...

    def free(self, addr: int) -> None: ...


class LocalMemory:
    """Memory of this process: ctypes buffers kept alive until :meth:`free`."""

    def __init__(self) -> None:
        self._bufs: dict[int, ctypes.Array[ctypes.c_char]] = {}

    def alloc(self, size: int) -> int:
        buf = ctypes.create_string_buffer(max(size, 1))
        addr = ctypes.addressof(buf)
        self._bufs[addr] = buf
        return addr

    def read(self, addr: int, size: int) -> bytes:
        return ctypes.string_at(addr, size)

    def write(self, addr: int, data: bytes) -> None:
        ctypes.memmove(addr, bytes(data), len(data))

    def free(self, addr: int) -> None:
        self._bufs.pop(addr, None)


class ProcessMemory:
    """Memory of another process through ``process_vm_readv/writev``.

    ``allocate``/``release`` place scratch areas in it (for a restored task: an injected anonymous mmap); the
    emulated device uses it without them, only to follow the caller's pointers.
    """

    def __init__(self, pid: int, allocate=None, release=None) -> None:
        self.pid = pid
        self._allocate = allocate
        self._release = release

    def alloc(self, size: int) -> int:
        if self._allocate is None:
            raise NotImplementedError("this ProcessMemory cannot allocate")
        return int(self._allocate(size))

    def read(self, addr: int, size: int) -> bytes:
        return process_vm_readv(self.pid, addr, size)

    def write(self, addr: int, data: bytes) -> None:
        process_vm_writev(self.pid, addr, data)

    def free(self, addr: int) -> None:
        if self._release is not None:
            self._release(addr)


@runtime_checkable
class KfdDevice(Protocol):
    """The one seam every KFD ioctl goes through.

    ``ioctl`` updates ``buf`` in place (the argument struct) and raises :class:`KfdError` (an ``OSError``-like
    errno carrier) as the kernel would; ``mem`` is the address space the argument's pointers refer to; ``pid``
    names the caller in errors.
    """

    mem: Memory
    pid: int | None

    def ioctl(self, cmd: int, buf: bytearray) -> None: ...


class FdKfdDevice:
    """A real (or FUSE-emulated) ``/dev/kfd`` descriptor of this process: ``fcntl.ioctl`` on ``fd``.

    With ``owned`` the descriptor is ours to :meth:`close`.
    """

    def __init__(self, fd: int, pid: int | None = None, owned: bool = False) -> None:
        self.fd = fd
        self.pid = pid
        self.owned = owned
        self.mem: Memory = LocalMemory()

    def close(self) -> None:
        if self.owned and self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def ioctl(self, cmd: int, buf: bytearray) -> None:
        try:
            ioctl_buf(self.fd, cmd, buf, ioctl_name(cmd, buf), self.pid)
        except SyscallError as exc:
            raise KfdError(exc.errno, exc.syscall, self.pid) from None  # type: ignore[attr-defined]


def ioctl_name(cmd: int, buf: bytearray | bytes) -> str:
    """``AMDKFD_IOC_CRIU_OP RESTORE``, ``AMDKFD_IOC_GET_VERSION``... for messages."""
    if cmd == abi.AMDKFD_IOC_CRIU_OP and len(buf) >= 52:
        op = int.from_bytes(buf[48:52], "little")
        return f"AMDKFD_IOC_CRIU_OP {abi.CriuOp.NAMES.get(op, op)}"
    for name in ("AMDKFD_IOC_GET_VERSION", "AMDKFD_IOC_ALLOC_MEMORY_OF_GPU", "AMDKFD_IOC_MAP_MEMORY_TO_GPU",
                 "AMDKFD_IOC_GET_DMABUF_INFO", "AMDKFD_IOC_IMPORT_DMABUF", "DRM_IOCTL_AMDGPU_GEM_CREATE",
                 "DRM_IOCTL_AMDGPU_GEM_MMAP", "DRM_IOCTL_AMDGPU_GEM_LIST_HANDLES"):
        if getattr(abi, name) == cmd:
            return name
    return hex(cmd)


def struct_size(struct: type) -> int:
    """Bytes of one of :mod:`criu_amdgpu.abi`'s structures (array strides, argument buffers)."""
    return ctypes.sizeof(struct)


def call(dev: KfdDevice, cmd: int, buf: bytearray) -> None:
    """``dev.ioctl(cmd, buf)``; any failure raised as a :class:`KfdError` naming the ioctl."""
    try:
        dev.ioctl(cmd, buf)
    except KfdError:
        raise
    except SyscallError as exc:
        raise KfdError(exc.errno, f"ioctl({ioctl_name(cmd, buf)})", dev.pid) from None  # type: ignore[attr-defined]
    except OSError as exc:
        raise KfdError(exc.errno or _errno.EIO, f"ioctl({ioctl_name(cmd, buf)})", dev.pid) from None


# ---------------------------------------------------------------------------------------------- buckets


@dataclass(frozen=True)
class DeviceBucket:
    """One ``kfd_criu_device_bucket``: the image's (user) gpu_id, the local GPU, the render fd of the caller."""

    user_gpu_id: int
    actual_gpu_id: int = 0
    drm_fd: int = 0


@dataclass
class BoBucket:
    """One ``kfd_criu_bo_bucket``; ``gpu_id`` is the *user* gpu_id; ``dmabuf_fd`` lives in the caller's fd table."""

    addr: int
    size: int
    offset: int
    alloc_flags: int
    gpu_id: int
    restored_offset: int = 0
    dmabuf_fd: int = abi.KFD_INVALID_FD

    @property
    def has_content(self) -> bool:
        return bool(self.alloc_flags & abi.CONTENT_FLAGS)


@dataclass(frozen=True)
class ProcessInfo:
    """What PROCESS_INFO reports (and leaves the process's queues evicted)."""

    num_devices: int
    num_bos: int
    num_objects: int
    priv_data_size: int
    pid: int


@dataclass
class CheckpointData:
    """What CHECKPOINT fills: device and BO buckets and the opaque private blob."""

    info: ProcessInfo
    devices: list[DeviceBucket] = field(default_factory=list)
    bos: list[BoBucket] = field(default_factory=list)
    priv_data: bytes = b""


def _args(**kw: int) -> bytearray:
    return bytearray(bytes(abi.KfdIoctlCriuArgs(**kw)))


def _parse_args(buf: bytearray) -> abi.KfdIoctlCriuArgs:
    return abi.KfdIoctlCriuArgs.from_buffer_copy(bytes(buf))


# ---------------------------------------------------------------------------------------------- ops


def get_version(dev: KfdDevice) -> tuple[int, int]:
    buf = bytearray(ctypes.sizeof(abi.KfdIoctlGetVersionArgs))
    call(dev, abi.AMDKFD_IOC_GET_VERSION, buf)
    v = abi.KfdIoctlGetVersionArgs.from_buffer_copy(bytes(buf))
    return v.major_version, v.minor_version


def check_version(dev: KfdDevice) -> tuple[int, int]:
    """GET_VERSION must report major 1 and minor >= 8 (CRIU's MIN_KFD_IOCTL_MINOR_VERSION)."""
    major, minor = get_version(dev)
    if major != abi.KFD_IOCTL_MAJOR_VERSION or minor < abi.MIN_KFD_IOCTL_MINOR_VERSION:
        raise KernelFeatureMissing(
            "KFD CRIU ioctls",
            f"KFD ioctl version {major}.{minor} is too old for checkpoint/restore "
            f"(need {abi.KFD_IOCTL_MAJOR_VERSION}.{abi.MIN_KFD_IOCTL_MINOR_VERSION} or later)")
    return major, minor


def process_info(dev: KfdDevice) -> ProcessInfo:
    """PROCESS_INFO: evicts the process's queues and reports the counts CHECKPOINT needs."""
    buf = _args(op=abi.CriuOp.PROCESS_INFO)
    call(dev, abi.AMDKFD_IOC_CRIU_OP, buf)
    a = _parse_args(buf)
    return ProcessInfo(a.num_devices, a.num_bos, a.num_objects, a.priv_data_size, a.pid)


class Arrays:
    """Bucket arrays and the blob placed in ``mem``; freed on exit."""

    def __init__(self, mem: Memory) -> None:
        self.mem = mem
        self.addrs: list[int] = []

    def put(self, data: bytes) -> int:
        # Never a null pointer, even for an empty array: the kernel rejects null devices/bos/priv_data.
        addr = self.mem.alloc(max(len(data), 1))
        self.addrs.append(addr)
        if data:
            self.mem.write(addr, data)
        return addr

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        for addr in self.addrs:
            self.mem.free(addr)


def checkpoint(dev: KfdDevice, info: ProcessInfo) -> CheckpointData:
    """CHECKPOINT: the counts must be PROCESS_INFO's; VRAM/GTT BOs come with new dmabuf fds in *our* fd table."""
    dev_sz, bo_sz = ctypes.sizeof(abi.KfdCriuDeviceBucket), ctypes.sizeof(abi.KfdCriuBoBucket)
    with Arrays(dev.mem) as arrays:
        devices = arrays.put(bytes(dev_sz * info.num_devices))
        bos = arrays.put(bytes(bo_sz * info.num_bos))
        priv = arrays.put(bytes(info.priv_data_size))
        buf = _args(op=abi.CriuOp.CHECKPOINT, devices=devices, bos=bos, priv_data=priv,
                    priv_data_size=info.priv_data_size, num_devices=info.num_devices, num_bos=info.num_bos,
                    num_objects=info.num_objects)
        call(dev, abi.AMDKFD_IOC_CRIU_OP, buf)
        raw_dev = dev.mem.read(devices, dev_sz * info.num_devices) if devices else b""
        raw_bo = dev.mem.read(bos, bo_sz * info.num_bos) if bos else b""
        blob = dev.mem.read(priv, info.priv_data_size) if priv else b""
    out = CheckpointData(info, priv_data=blob)
    for i in range(info.num_devices):
        d = abi.KfdCriuDeviceBucket.from_buffer_copy(raw_dev, i * dev_sz)
        out.devices.append(DeviceBucket(d.user_gpu_id, d.actual_gpu_id, d.drm_fd))
    for i in range(info.num_bos):
        b = abi.KfdCriuBoBucket.from_buffer_copy(raw_bo, i * bo_sz)
        out.bos.append(BoBucket(b.addr, b.size, b.offset, b.alloc_flags, b.gpu_id, b.restored_offset, b.dmabuf_fd))
    return out


def unpause(dev: KfdDevice) -> None:
    """UNPAUSE: restart the queues PROCESS_INFO evicted (EINVAL if they are not paused)."""
    call(dev, abi.AMDKFD_IOC_CRIU_OP, _args(op=abi.CriuOp.UNPAUSE))


def restore(dev: KfdDevice, devices: list[DeviceBucket], bos: list[BoBucket], priv_data: bytes,
            num_objects: int) -> list[BoBucket]:
    """RESTORE, on a KFD fd the restored task just opened: returns the BOs with ``restored_offset`` and the
    dmabuf fds the kernel installed in the caller's fd table."""
    dev_arr = (abi.KfdCriuDeviceBucket * len(devices))(
        *[abi.KfdCriuDeviceBucket(d.user_gpu_id, d.actual_gpu_id, d.drm_fd, 0) for d in devices])
    bo_arr = (abi.KfdCriuBoBucket * len(bos))(
        *[abi.KfdCriuBoBucket(b.addr, b.size, b.offset, b.restored_offset, b.gpu_id, b.alloc_flags,
                              abi.KFD_INVALID_FD, 0) for b in bos])
    bo_sz = ctypes.sizeof(abi.KfdCriuBoBucket)
    with Arrays(dev.mem) as arrays:
        dptr = arrays.put(bytes(dev_arr))
        bptr = arrays.put(bytes(bo_arr))
        pptr = arrays.put(priv_data)
        buf = _args(op=abi.CriuOp.RESTORE, devices=dptr, bos=bptr, priv_data=pptr, priv_data_size=len(priv_data),
                    num_devices=len(devices), num_bos=len(bos), num_objects=num_objects)
        call(dev, abi.AMDKFD_IOC_CRIU_OP, buf)
        raw = dev.mem.read(bptr, bo_sz * len(bos)) if bptr else b""
    out = []
    for i, orig in enumerate(bos):
        b = abi.KfdCriuBoBucket.from_buffer_copy(raw, i * bo_sz)
        out.append(BoBucket(orig.addr, orig.size, orig.offset, orig.alloc_flags, orig.gpu_id, b.restored_offset,
                            b.dmabuf_fd))
    return out


def resume(dev: KfdDevice, pid: int) -> None:
    """RESUME the restored task ``pid`` (its real pid), from our own /dev/kfd fd."""
    call(dev, abi.AMDKFD_IOC_CRIU_OP, _args(op=abi.CriuOp.RESUME, pid=pid))
