"""A model of the kernel's KFD that speaks the same bytes: the state machine behind every emulated ``/dev/kfd``.

It parses arguments with the structures of :mod:`criu_amdgpu.abi`, follows pointers through a
:class:`~criu_amdgpu.kfd.Memory` of the caller, and enforces the kernel's rules from reference §1.4: ENOTTY for
unknown commands, EBADF for a descriptor used by another process than its opener (except CRIU_OP from the owner's
ptrace parent thread), EACCES without CAP_CHECKPOINT_RESTORE, ENODEV/EINVAL/ESRCH for the CRIU ops. BO contents
live in memfds; "dmabuf fds" handed to a caller are descriptors onto them, installed by a caller-side callback.

The private blob follows the §1.6 layout (process_priv, device_priv × n, bo_priv × n, objects), so a round trip
through the images checks that the plugin carries it unchanged.
"""

from __future__ import annotations

import ctypes
import errno
import itertools
import os
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from criu_amdgpu import abi
from criu_amdgpu.kfd import LocalMemory, Memory

__all__ = [
    "KFD_CRIU_PRIV_VERSION",
    "FakeBo",
    "FakeDrmDevice",
    "FakeDrmFile",
    "FakeGpu",
    "FakeKfd",
    "FakeKfdDevice",
    "FakeKfdFile",
    "FakeProcess",
    "alloc_memory",
    "proc_tracer_of",
]

KFD_CRIU_PRIV_VERSION = 1
_PROCESS_PRIV = struct.Struct("<II")  # version, xnack_mode
_DEVICE_PRIV = struct.Struct("<Q")  # reserved
_OBJECT_PRIV = struct.Struct("<IIQ")  # object_type, user gpu_id, payload (the fake's own queue/event record)


def _bo_priv(max_gpu_instance: int) -> struct.Struct:
    # u64 user_addr, u32 idr_handle, u32 mapped_gpuids[MAX_GPU_INSTANCE], padded to 8 (80 B for 16, 272 B for 64)
    s = struct.Struct(f"<QI{max_gpu_instance}I")
    return struct.Struct(f"<QI{max_gpu_instance}I{(-s.size) % 8}x")


@dataclass(frozen=True)
class FakeGpu:
    """A GPU of the emulated machine: its gpu_id (topology hash) and render minor."""

    gpu_id: int
    render_minor: int = 128


@dataclass
class FakeBo:
    handle: int
    addr: int
    size: int
    flags: int
    gpu_id: int  # actual gpu_id
    offset: int
    memfd: int = -1  # content, for VRAM/GTT (a memfd, or a file of the store directory)
    mapped: list[int] = field(default_factory=list)
    path: str = ""  # the content's file in the store directory
    gem_flags: int = 0  # a GEM BO's domain_flags (its ``flags`` hold the GEM domains)

    def read(self) -> bytes:
        return os.pread(self.memfd, self.size, 0) if self.memfd >= 0 else b""

    def write(self, data: bytes, at: int = 0) -> None:
        os.pwrite(self.memfd, data, at)


@dataclass
class FakeProcess:
    """A KFD process: one per opener, with a pdd (device) per GPU: ``pdds`` maps actual gpu_id → user gpu_id."""

    pid: int
    pdds: dict[int, int]
    bos: dict[int, FakeBo] = field(default_factory=dict)
    objects: list[tuple[int, int, int]] = field(default_factory=list)  # (type, user gpu_id, payload)
    xnack: int = 0
    paused: bool = False
    restored: bool = False  # RESTORE done; queues stay evicted until RESUME
    running: bool = True
    bound: dict[int, int] = field(default_factory=dict)  # actual gpu_id -> drm fd number given at RESTORE
    _idr: itertools.count = field(default_factory=lambda: itertools.count(1))

    def user_to_actual(self, user: int) -> int | None:
        for actual, u in self.pdds.items():
            if u == user:
                return actual
        return None


@dataclass
class FakeKfdFile:
    """An open ``/dev/kfd``: bound to the KFD process of the process that opened it."""

    owner: int
    process: FakeProcess


@dataclass
class FakeDrmFile:
    """An open render node of GPU ``gpu_id`` (actual): the GEM BOs made through it, by handle."""

    owner: int
    gpu_id: int
    handles: dict[int, FakeBo] = field(default_factory=dict)
    _next: itertools.count = field(default_factory=lambda: itertools.count(1))


def proc_tracer_of(pid: int) -> int | None:
    """The TracerPid of ``pid`` from /proc (what the kernel compares with the caller thread)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("TracerPid:"):
                    return int(line.split()[1]) or None
    except OSError:
        return None
    return None


class FakeKfd:
    """The emulated KFD driver: GPUs, KFD processes, and the ioctl handler.

    :param gpus: the GPUs of the emulated machine (their order is the pdd order).
    :param version: what GET_VERSION reports.
    :param max_gpu_instance: size of bo_priv's mapped_gpuids (16 or 64: blobs are kernel-build specific).
    :param tracer_of: ``pid -> tracer tid``; CRIU_OP from that thread is allowed on another process's fd.
    :param store_dir: keep VRAM/GTT contents in files ``<store_dir>/<pid>/<addr hex>.bo`` (removed when the KFD
        process goes) instead of memfds, so a test can look at the device's memory from outside the emulator.
    :param list_handles: whether render nodes answer AMDGPU_GEM_LIST_HANDLES (kernels before it say EINVAL).
    """

    def __init__(self, gpus: list[FakeGpu], *, version: tuple[int, int] = (1, 17), max_gpu_instance: int = 16,
                 tracer_of: Callable[[int], int | None] = proc_tracer_of, store_dir: str | None = None,
                 list_handles: bool = True) -> None:
        self.gpus = list(gpus)
        self.version = version
        self.bo_priv = _bo_priv(max_gpu_instance)
        self.max_gpu_instance = max_gpu_instance
        self.tracer_of = tracer_of
        self.store_dir = store_dir
        self.list_handles = list_handles
        self.drm_files: list[FakeDrmFile] = []
        self.processes: dict[int, FakeProcess] = {}
        self.resumed: list[int] = []
        self._offsets = itertools.count(1)
        self._generation: dict[int, object] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------------ files
    def open(self, pid: int, generation: object = None) -> FakeKfdFile:
        """open("/dev/kfd") by process ``pid``: creates its KFD process (one per process) with a pdd per GPU.

        ``generation`` tells processes that reuse a pid apart (the FUSE server passes the start time): the kernel
        drops a KFD process when its mm goes away, so a new process with the same pid starts afresh.
        """
        with self._lock:
            proc = self.processes.get(pid)
            if proc is not None and generation is not None and self._generation.get(pid) != generation:
                self._drop(pid)
                proc = None
            if proc is None:
                proc = FakeProcess(pid, {g.gpu_id: g.gpu_id for g in self.gpus})
                self.processes[pid] = proc
                self._generation[pid] = generation
            return FakeKfdFile(pid, proc)

    def exit(self, pid: int) -> None:
        """The process ``pid`` exited: its KFD process and BOs go away."""
        with self._lock:
            self._drop(pid)

    def _drop(self, pid: int) -> None:
        proc = self.processes.pop(pid, None)
        if proc:
            for bo in proc.bos.values():
                if bo.memfd >= 0:
                    os.close(bo.memfd)
                if bo.path:
                    os.unlink(bo.path)

    # ------------------------------------------------------------------------------------------ BO memory
    def bo_at(self, gpu_id: int, offset: int) -> FakeBo | None:
        """The VRAM/GTT BO on GPU ``gpu_id`` (actual) whose mmap offset range holds ``offset`` (any process)."""
        with self._lock:
            bos = [b for p in self.processes.values() for b in p.bos.values()]
            bos += [b for f in self.drm_files for b in f.handles.values()]
            for bo in bos:
                if bo.memfd >= 0 and bo.gpu_id == gpu_id and bo.offset <= offset < bo.offset + bo.size:
                    return bo
        return None

    # ------------------------------------------------------------------------------------------ render nodes
    def open_render(self, pid: int, gpu_id: int) -> FakeDrmFile:
        with self._lock:
            f = FakeDrmFile(pid, gpu_id)
            self.drm_files.append(f)
            return f

    def close_render(self, f: FakeDrmFile) -> None:
        """The last reference to the render file went: its GEM BOs go with it."""
        with self._lock:
            if f in self.drm_files:
                self.drm_files.remove(f)
            for bo in f.handles.values():
                os.close(bo.memfd)
                if bo.path:
                    os.unlink(bo.path)

    def drm_ioctl(self, f: FakeDrmFile, cmd: int, buf: bytearray, mem: Memory) -> None:
        """The amdgpu DRM ioctls of a render node the emulator knows: GEM_CREATE, GEM_MMAP, GEM_LIST_HANDLES."""
        cmd &= 0xFFFFFFFF
        if cmd == abi.DRM_IOCTL_AMDGPU_GEM_CREATE:
            a = abi.DrmAmdgpuGemCreate.from_buffer_copy(bytes(buf))
            size, domains, flags = a.in_.bo_size, a.in_.domains, a.in_.domain_flags
            if size == 0 or not domains & (abi.AMDGPU_GEM_DOMAIN_VRAM | abi.AMDGPU_GEM_DOMAIN_GTT):
                raise OSError(errno.EINVAL, "GEM_CREATE: size 0 or no VRAM/GTT domain")
            size = (size + 4095) // 4096 * 4096
            with self._lock:
                handle = next(f._next)
                bo = FakeBo(handle, 0, size, domains, f.gpu_id, next(self._offsets) << 32)
                bo.memfd = os.memfd_create(f"fake-gem-{f.owner}-{handle}", os.MFD_CLOEXEC)
                os.ftruncate(bo.memfd, size)
                bo.gem_flags = int(flags)
                f.handles[handle] = bo
            out = abi.DrmAmdgpuGemCreate()
            out.out.handle = handle
            buf[:] = bytes(out)
        elif cmd == abi.DRM_IOCTL_AMDGPU_GEM_MMAP:
            a = abi.DrmAmdgpuGemMmap.from_buffer_copy(bytes(buf))
            bo = f.handles.get(a.in_.handle)
            if bo is None:
                raise OSError(errno.ENOENT, "no such GEM handle")
            out = abi.DrmAmdgpuGemMmap()
            out.out.addr_ptr = bo.offset
            buf[:] = bytes(out)
        elif cmd == abi.DRM_IOCTL_AMDGPU_GEM_LIST_HANDLES:
            if not self.list_handles:
                raise OSError(errno.EINVAL, "this kernel has no AMDGPU_GEM_LIST_HANDLES")
            a = abi.DrmAmdgpuGemListHandles.from_buffer_copy(bytes(buf))
            with self._lock:
                bos = list(f.handles.items())
            if a.num_entries >= len(bos) and bos:
                mem.write(a.entries, b"".join(
                    bytes(abi.DrmAmdgpuGemListHandlesEntry(h, 0, bo.size, bo.flags, bo.gem_flags, 4096))
                    for h, bo in bos))
            a.num_entries = len(bos)
            buf[:] = bytes(a)
        else:
            raise OSError(errno.ENOTTY, "DRM ioctl not emulated")

    def read_device(self, gpu_id: int, offset: int, size: int) -> bytes:
        """A read of a render node at ``offset``: BO bytes where a BO is mapped there, zeros elsewhere (exactly
        ``size`` bytes: FUSE takes a short read as end of file)."""
        out = bytearray(size)
        pos = 0
        while pos < size:
            bo = self.bo_at(gpu_id, offset + pos)
            if bo is None:
                pos = (offset + pos + 4096) // 4096 * 4096 - offset  # next page
                continue
            at = offset + pos - bo.offset
            n = min(size - pos, bo.size - at)
            out[pos:pos + n] = os.pread(bo.memfd, n, at)
            pos += n
        return bytes(out[:size])

    def write_device(self, gpu_id: int, offset: int, data: bytes) -> int:
        """A write to a render node at ``offset``: into the BOs mapped there (ENXIO where none is)."""
        pos = 0
        while pos < len(data):
            bo = self.bo_at(gpu_id, offset + pos)
            if bo is None:
                raise OSError(errno.ENXIO, f"no BO at offset {offset + pos:#x}")
            at = offset + pos - bo.offset
            n = min(len(data) - pos, bo.size - at)
            os.pwrite(bo.memfd, data[pos:pos + n], at)
            pos += n
        return len(data)

    def close(self) -> None:
        for pid in list(self.processes):
            self.exit(pid)

    # ------------------------------------------------------------------------------------------ ioctl
    def ioctl(self, file: FakeKfdFile, cmd: int, buf: bytearray, mem: Memory, *, caller: int,
              caller_tid: int | None = None, privileged: bool = True,
              install_fd: Callable[[int], int] = os.dup) -> None:
        """Handle one ioctl on ``file`` from process ``caller`` (thread ``caller_tid``); raise OSError like the kernel.

        ``buf`` is the argument (``_IOC_SIZE(cmd)`` bytes), updated in place; ``install_fd(memfd)`` puts a dmabuf
        stand-in into the caller's fd table and returns its number.
        """
        cmd &= 0xFFFFFFFF
        nr = abi.ioc_nr(cmd)
        if abi.ioc_type(cmd) != abi.AMDKFD_IOCTL_BASE or not abi.AMDKFD_COMMAND_START <= nr < abi.AMDKFD_COMMAND_END:
            raise OSError(errno.ENOTTY, "unknown KFD ioctl")
        handlers = {
            abi.AMDKFD_IOC_GET_VERSION: self._get_version,
            abi.AMDKFD_IOC_ALLOC_MEMORY_OF_GPU: self._alloc,
            abi.AMDKFD_IOC_MAP_MEMORY_TO_GPU: self._map,
            abi.AMDKFD_IOC_CRIU_OP: self._criu_op,
        }
        handler = handlers.get(cmd)
        if handler is None:
            raise OSError(errno.ENOTTY, "KFD ioctl not emulated")
        if file.owner != caller:
            tid = caller_tid if caller_tid is not None else caller
            if cmd != abi.AMDKFD_IOC_CRIU_OP or self.tracer_of(file.owner) != tid:
                raise OSError(errno.EBADF, "KFD fd used by a process that did not open it")
        if cmd == abi.AMDKFD_IOC_CRIU_OP and not privileged:
            raise OSError(errno.EACCES, "CRIU_OP needs CAP_CHECKPOINT_RESTORE")
        with self._lock:
            handler(file.process, buf, mem, install_fd)

    def _get_version(self, proc: FakeProcess, buf: bytearray, mem: Memory, install_fd: Callable[[int], int]) -> None:
        buf[:8] = bytes(abi.KfdIoctlGetVersionArgs(*self.version))

    def _alloc(self, proc: FakeProcess, buf: bytearray, mem: Memory, install_fd: Callable[[int], int]) -> None:
        a = abi.KfdIoctlAllocMemoryOfGpuArgs.from_buffer_copy(bytes(buf))
        actual = proc.user_to_actual(a.gpu_id)
        if actual is None:
            raise OSError(errno.EINVAL, "no such gpu_id")
        if a.size == 0 or a.size % 4096:
            raise OSError(errno.EINVAL, "size must be a non-zero page multiple")
        bo = self._new_bo(proc, a.va_addr, a.size, a.flags, actual)
        a.handle = (a.gpu_id << 32) | bo.handle  # MAKE_HANDLE(gpu_id, idr_handle)
        a.mmap_offset = bo.offset
        buf[:] = bytes(a)

    def _new_bo(self, proc: FakeProcess, addr: int, size: int, flags: int, actual: int,
                handle: int | None = None) -> FakeBo:
        handle = next(proc._idr) if handle is None else handle
        if flags & abi.AllocFlag.DOORBELL:
            offset = abi.mmap_offset(abi.KFD_MMAP_TYPE_DOORBELL, actual)
        elif flags & abi.AllocFlag.MMIO_REMAP:
            offset = abi.mmap_offset(abi.KFD_MMAP_TYPE_MMIO, actual)
        elif flags & abi.CONTENT_FLAGS:
            offset = next(self._offsets) << 32  # a DRM fake offset of the render node: unique, page aligned
        else:
            offset = addr  # USERPTR: the CPU address
        bo = FakeBo(handle, addr, size, flags, actual, offset)
        if flags & abi.CONTENT_FLAGS:
            if self.store_dir:
                d = os.path.join(self.store_dir, str(proc.pid))
                os.makedirs(d, exist_ok=True)
                bo.path = os.path.join(d, f"{addr:x}.bo")
                bo.memfd = os.open(bo.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            else:
                bo.memfd = os.memfd_create(f"fake-bo-{proc.pid}-{handle}", os.MFD_CLOEXEC)
            os.ftruncate(bo.memfd, size)
        proc.bos[handle] = bo
        return bo

    def _map(self, proc: FakeProcess, buf: bytearray, mem: Memory, install_fd: Callable[[int], int]) -> None:
        a = abi.KfdIoctlMapMemoryToGpuArgs.from_buffer_copy(bytes(buf))
        bo = proc.bos.get(a.handle & 0xFFFFFFFF)
        if bo is None or a.n_devices == 0:
            raise OSError(errno.EINVAL, "bad handle")
        ids = struct.unpack(f"<{a.n_devices}I", mem.read(a.device_ids_array_ptr, 4 * a.n_devices))
        for user in ids:
            actual = proc.user_to_actual(user)
            if actual is None:
                raise OSError(errno.EINVAL, "no such gpu_id")
            if actual not in bo.mapped:
                bo.mapped.append(actual)
        a.n_success = a.n_devices
        buf[:] = bytes(a)

    def add_queue(self, pid: int, user_gpu_id: int, payload: int) -> None:
        """A queue object of process ``pid`` (the fake's stand-in for queues/events/SVM ranges)."""
        self.processes[pid].objects.append((0, user_gpu_id, payload))

    # ------------------------------------------------------------------------------------------ CRIU_OP
    def _criu_op(self, proc: FakeProcess, buf: bytearray, mem: Memory, install_fd: Callable[[int], int]) -> None:
        a = abi.KfdIoctlCriuArgs.from_buffer_copy(bytes(buf))
        ops = {abi.CriuOp.PROCESS_INFO: self._process_info, abi.CriuOp.CHECKPOINT: self._checkpoint,
               abi.CriuOp.UNPAUSE: self._unpause, abi.CriuOp.RESTORE: self._restore, abi.CriuOp.RESUME: self._resume}
        op = ops.get(a.op)
        if op is None:
            raise OSError(errno.EINVAL, "unknown CRIU op")
        op(proc, a, mem, install_fd)
        buf[:] = bytes(a)

    def _priv_size(self, proc: FakeProcess) -> int:
        return (_PROCESS_PRIV.size + _DEVICE_PRIV.size * len(proc.pdds) + self.bo_priv.size * len(proc.bos)
                + _OBJECT_PRIV.size * len(proc.objects))

    def _process_info(self, proc: FakeProcess, a: abi.KfdIoctlCriuArgs, mem: Memory, install_fd) -> None:
        if not proc.pdds:
            raise OSError(errno.ENODEV, "process has no KFD devices")
        proc.paused = True  # evicts queues
        a.num_devices, a.num_bos, a.num_objects = len(proc.pdds), len(proc.bos), len(proc.objects)
        a.priv_data_size = self._priv_size(proc)
        a.pid = proc.pid

    def _checkpoint(self, proc: FakeProcess, a: abi.KfdIoctlCriuArgs, mem: Memory, install_fd) -> None:
        if not a.devices or not a.bos or not a.priv_data:
            raise OSError(errno.EINVAL, "null pointer")
        if not proc.paused:
            raise OSError(errno.EINVAL, "process is not paused (PROCESS_INFO first)")
        if (a.num_devices, a.num_bos, a.num_objects, a.priv_data_size) != (
                len(proc.pdds), len(proc.bos), len(proc.objects), self._priv_size(proc)):
            raise OSError(errno.EINVAL, "counts differ from the process's")
        devs = b"".join(bytes(abi.KfdCriuDeviceBucket(user, actual, 0, 0)) for actual, user in proc.pdds.items())
        bos = []
        blob = [_PROCESS_PRIV.pack(KFD_CRIU_PRIV_VERSION, proc.xnack)]
        blob += [_DEVICE_PRIV.pack(0) for _ in proc.pdds]
        for bo in proc.bos.values():
            dmabuf = install_fd(bo.memfd) if bo.memfd >= 0 else abi.KFD_INVALID_FD
            bos.append(bytes(abi.KfdCriuBoBucket(bo.addr, bo.size, bo.offset, 0, proc.pdds[bo.gpu_id], bo.flags,
                                                 dmabuf, 0)))
            mapped = [proc.pdds[g] for g in bo.mapped][: self.max_gpu_instance]
            mapped += [0] * (self.max_gpu_instance - len(mapped))
            blob.append(self.bo_priv.pack(bo.addr, bo.handle, *mapped))
        blob += [_OBJECT_PRIV.pack(*o) for o in proc.objects]
        mem.write(a.devices, devs)
        mem.write(a.bos, b"".join(bos))
        mem.write(a.priv_data, b"".join(blob))

    def _unpause(self, proc: FakeProcess, a: abi.KfdIoctlCriuArgs, mem: Memory, install_fd) -> None:
        if not proc.paused:
            raise OSError(errno.EINVAL, "process is not paused")
        proc.paused = False

    def _restore(self, proc: FakeProcess, a: abi.KfdIoctlCriuArgs, mem: Memory, install_fd) -> None:
        if not (a.bos and a.devices and a.priv_data and a.priv_data_size and a.num_devices and a.num_bos):
            raise OSError(errno.EINVAL, "RESTORE needs devices, BOs and private data")
        if a.num_devices != len(proc.pdds):
            raise OSError(errno.EINVAL, "num_devices differs from this machine's KFD devices")
        if proc.bound or proc.bos:
            raise OSError(errno.EINVAL, "process already restored (a pdd has a drm_file)")
        blob = mem.read(a.priv_data, a.priv_data_size)
        dsz, bsz = ctypes.sizeof(abi.KfdCriuDeviceBucket), ctypes.sizeof(abi.KfdCriuBoBucket)
        raw_dev = mem.read(a.devices, dsz * a.num_devices)
        raw_bo = bytearray(mem.read(a.bos, bsz * a.num_bos))
        pos = 0

        def take(s: struct.Struct) -> tuple:
            nonlocal pos
            if pos + s.size > len(blob):
                raise OSError(errno.EINVAL, "private data too short")
            out = s.unpack_from(blob, pos)
            pos += s.size
            return out

        version, xnack = take(_PROCESS_PRIV)
        if version != KFD_CRIU_PRIV_VERSION:
            raise OSError(errno.EINVAL, "private data version")
        pdds: dict[int, int] = {}
        bound: dict[int, int] = {}
        for i in range(a.num_devices):
            d = abi.KfdCriuDeviceBucket.from_buffer_copy(raw_dev, i * dsz)
            take(_DEVICE_PRIV)
            if d.user_gpu_id == 0 or d.actual_gpu_id not in proc.pdds or d.actual_gpu_id in bound:
                raise OSError(errno.EINVAL, f"bad device bucket {i}")
            pdds[d.actual_gpu_id] = d.user_gpu_id
            bound[d.actual_gpu_id] = d.drm_fd
        new_bos: list[FakeBo] = []
        for i in range(a.num_bos):
            b = abi.KfdCriuBoBucket.from_buffer_copy(raw_bo, i * bsz)
            addr, handle, *mapped = take(self.bo_priv)
            actual = next((g for g, u in pdds.items() if u == b.gpu_id), None)
            if actual is None or addr != b.addr:
                raise OSError(errno.EINVAL, f"BO {i} names an unknown gpu or address")
            bo = FakeBo(handle, b.addr, b.size, b.alloc_flags, actual, 0)
            new_bos.append(bo)
            bo.mapped = [g for g, u in pdds.items() if u in mapped]
        objects = []
        for _ in range(a.num_objects):
            objects.append(take(_OBJECT_PRIV))
        if pos != len(blob):
            raise OSError(errno.EINVAL, "private data not fully consumed")
        proc.pdds, proc.bound, proc.xnack, proc.objects = pdds, bound, xnack, list(objects)
        proc.paused, proc.restored = True, True
        for i, bo in enumerate(new_bos):
            real = self._new_bo(proc, bo.addr, bo.size, bo.flags, bo.gpu_id, handle=bo.handle)
            real.mapped = bo.mapped
            b = abi.KfdCriuBoBucket.from_buffer_copy(raw_bo, i * bsz)
            b.restored_offset = real.offset
            b.dmabuf_fd = install_fd(real.memfd) if real.memfd >= 0 else abi.KFD_INVALID_FD
            raw_bo[i * bsz:(i + 1) * bsz] = bytes(b)
        mem.write(a.bos, bytes(raw_bo))

    def _resume(self, proc: FakeProcess, a: abi.KfdIoctlCriuArgs, mem: Memory, install_fd) -> None:
        target = self.processes.get(a.pid)
        if target is None:
            raise OSError(errno.ESRCH, "no KFD process with that pid")
        target.paused = target.restored = False
        self.resumed.append(a.pid)


class FakeKfdDevice:
    """The in-process seam: a :class:`~criu_amdgpu.kfd.KfdDevice` backed by a :class:`FakeKfd` file.

    ``caller``/``caller_tid`` say who issues the ioctls (the owner, or a tracer thread), dmabuf stand-ins are
    dup'ed into this process's fd table, pointers are followed in this process.
    """

    def __init__(self, kfd: FakeKfd, file: FakeKfdFile, *, caller: int | None = None, caller_tid: int | None = None,
                 privileged: bool = True, mem: Memory | None = None) -> None:
        self.kfd = kfd
        self.file = file
        self.caller = file.owner if caller is None else caller
        self.caller_tid = caller_tid
        self.privileged = privileged
        self.mem: Memory = mem or LocalMemory()
        self.pid: int | None = file.owner

    def ioctl(self, cmd: int, buf: bytearray) -> None:
        self.kfd.ioctl(self.file, cmd, buf, self.mem, caller=self.caller, caller_tid=self.caller_tid,
                       privileged=self.privileged)


class FakeDrmDevice:
    """The in-process seam for a render node: ioctls on a :class:`FakeDrmFile`, pointers in this process."""

    def __init__(self, kfd: FakeKfd, file: FakeDrmFile, mem: Memory | None = None) -> None:
        self.kfd, self.file = kfd, file
        self.mem: Memory = mem or LocalMemory()
        self.pid: int | None = file.owner

    def ioctl(self, cmd: int, buf: bytearray) -> None:
        self.kfd.drm_ioctl(self.file, cmd, buf, self.mem)


def alloc_memory(dev, gpu_id: int, va_addr: int, size: int, flags: int) -> tuple[int, int]:
    """ALLOC_MEMORY_OF_GPU through a KfdDevice (what a ROCm runtime does); returns (handle, mmap_offset)."""
    buf = bytearray(bytes(abi.KfdIoctlAllocMemoryOfGpuArgs(va_addr, size, 0, 0, gpu_id, flags)))
    dev.ioctl(abi.AMDKFD_IOC_ALLOC_MEMORY_OF_GPU, buf)
    a = abi.KfdIoctlAllocMemoryOfGpuArgs.from_buffer_copy(bytes(buf))
    return a.handle, a.mmap_offset
