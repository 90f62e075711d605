"""Where the devices come from: the real ``/dev/kfd`` and restored tasks, or an emulation (tests, benchmark).

A :class:`DeviceProvider` is per-run state (kept in the context's stash), so a test swaps in the emulated KFD by
putting its provider there before the first hook runs. :class:`TaskSide` is the restored task as the KFD
RESTORE needs it: the task itself must open ``/dev/kfd`` and the render nodes and issue the ioctl (the KFD process
belongs to the opener's mm); the real implementation injects those syscalls through the core's ``RemoteTask``.
"""

from __future__ import annotations

import errno as _errno
import os
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from criu_core.errors import CriuError, SyscallError, UsageError

from criu_amdgpu.config import AmdgpuConfig
from criu_amdgpu.engines import CopyEngine, select_engine
from criu_amdgpu.ioctl import pidfd_getfd
from criu_amdgpu.kfd import FdKfdDevice, KfdDevice, KfdError, ioctl_name
from criu_amdgpu.topology import Topology, parse_topology

__all__ = ["DeviceProvider", "RealProvider", "RemoteKfdDevice", "RemoteMemory", "RemoteTaskSide", "TaskSide", "max_buffer_size"]

AT_FDCWD = -100
F_DUPFD_CLOEXEC = 1030
PROT_RW = 0x3
MAP_PRIVATE_ANON = 0x02 | 0x20


@runtime_checkable
class TaskSide(Protocol):
    """A task being restored, seen from the plugin."""

    pid: int

    def open(self, path: str, flags: int) -> int:
        """Open ``path`` in the task; the descriptor is moved above the task's own fds. Returns its number."""

    def kfd_device(self, task_fd: int) -> KfdDevice:
        """A KfdDevice whose ioctls the task issues on its descriptor ``task_fd``."""

    def getfd(self, task_fd: int) -> int:
        """A copy of the task's descriptor in this process (pidfd_getfd)."""

    def close(self, task_fd: int) -> None: ...

    def mmap(self, addr: int, length: int, prot: int, flags: int, task_fd: int, offset: int) -> int: ...


@runtime_checkable
class DeviceProvider(Protocol):
    config: AmdgpuConfig

    def own_device(self) -> tuple[KfdDevice, int]:
        """Open our own KFD device (version check, RESUME): the device and the fd to close."""

    def task_device(self, fd: Any) -> KfdDevice:
        """The dumpee's KFD descriptor (``fd.local_fd``, a pidfd_getfd copy) as a KfdDevice."""

    def render_device(self, fd: Any) -> KfdDevice:
        """The dumpee's render-node descriptor (``fd.local_fd``) for DRM queries (the same ioctl seam)."""

    def task_side(self, pid: int, remote: Any, fd_alloc: Callable[[], int]) -> TaskSide:
        """The restored task ``pid`` (``remote``: the core's RemoteTask); ``fd_alloc`` gives free descriptor
        numbers for the plugin's own descriptors in it (``ctx.alloc_task_fd``)."""

    def engine(self) -> CopyEngine: ...

    def local_topology(self) -> Topology: ...


class RemoteMemory:
    """Scratch memory in a restored task: an injected anonymous mmap per allocation, written via /proc/PID/mem."""

    def __init__(self, remote: Any) -> None:
        self.remote = remote
        self._sizes: dict[int, int] = {}

    def alloc(self, size: int) -> int:
        length = (max(size, 1) + 4095) & ~4095
        addr = self.remote.syscall("mmap", 0, length, PROT_RW, MAP_PRIVATE_ANON, -1, 0)
        self._sizes[addr] = length
        return addr

    def read(self, addr: int, size: int) -> bytes:
        return self.remote.read_mem(addr, size) if size else b""

    def write(self, addr: int, data: bytes) -> None:
        if data:
            self.remote.write_mem(addr, bytes(data))

    def free(self, addr: int) -> None:
        length = self._sizes.pop(addr, 0)
        if length:
            self.remote.syscall("munmap", addr, length, check=False)


class RemoteKfdDevice:
    """ioctls injected into the restored task, the argument and its arrays in the task's memory."""

    def __init__(self, remote: Any, fd: int) -> None:
        self.remote, self.fd = remote, fd
        self.pid: int | None = remote.pid
        self.mem = RemoteMemory(remote)

    def ioctl(self, cmd: int, buf: bytearray) -> None:
        addr = self.mem.alloc(len(buf))
        try:
            self.mem.write(addr, bytes(buf))
            ret = self.remote.syscall("ioctl", self.fd, cmd & 0xFFFFFFFF, addr, check=False)
            if ret < 0:
                raise KfdError(-ret, f"ioctl({ioctl_name(cmd, buf)}) in the restored task", self.pid)
            buf[:] = self.mem.read(addr, len(buf))
        finally:
            self.mem.free(addr)


class RemoteTaskSide:
    """:class:`TaskSide` over the core's RemoteTask (``syscall(name, *args, check=)``, ``read_mem``, ``write_mem``).

    ``fd_alloc``: returns the number each plugin-opened descriptor is moved to, one above the task's dumped fd
    table that the core's later ``dup3`` of the task's own descriptors never lands on (``ctx.alloc_task_fd``,
    CRIU's ``fd_next``).
    """

    def __init__(self, remote: Any, fd_alloc: Callable[[], int]) -> None:
        self.remote = remote
        self.pid: int = remote.pid
        self.fd_alloc = fd_alloc
        self.mem = RemoteMemory(remote)

    def open(self, path: str, flags: int) -> int:
        data = os.fsencode(path) + b"\0"
        addr = self.mem.alloc(len(data))
        try:
            self.mem.write(addr, data)
            fd = self.remote.syscall("openat", AT_FDCWD, addr, flags | os.O_CLOEXEC, 0)
        finally:
            self.mem.free(addr)
        high = self.remote.syscall("fcntl", fd, F_DUPFD_CLOEXEC, self.fd_alloc())
        self.remote.syscall("close", fd)
        return high

    def kfd_device(self, task_fd: int) -> KfdDevice:
        return RemoteKfdDevice(self.remote, task_fd)

    def getfd(self, task_fd: int) -> int:
        return pidfd_getfd(self.pid, task_fd)

    def close(self, task_fd: int) -> None:
        self.remote.syscall("close", task_fd, check=False)

    def mmap(self, addr: int, length: int, prot: int, flags: int, task_fd: int, offset: int) -> int:
        got = self.remote.syscall("mmap", addr, length, prot, flags, task_fd, offset)
        if got != addr:
            raise SyscallError(_errno.EFAULT, "mmap", self.pid, f"device VMA {addr:#x} landed at {got:#x}")
        return got


class RealProvider:
    """The machine's own KFD, render nodes and topology, at the configured paths."""

    def __init__(self, config: AmdgpuConfig) -> None:
        self.config = config
        self._engine: CopyEngine | None = None
        self._topology: Topology | None = None

    def own_device(self) -> tuple[KfdDevice, int]:
        try:
            fd = os.open(self.config.kfd_path, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            raise SyscallError(exc.errno or _errno.ENODEV, f"open({self.config.kfd_path})") from None
        return FdKfdDevice(fd), fd

    def task_device(self, fd: Any) -> KfdDevice:
        # our own copy: UNPAUSE may come after the core let go of its descriptor copies (a failed dump's fini)
        return FdKfdDevice(os.dup(fd.local_fd), fd.pid, owned=True)

    def render_device(self, fd: Any) -> KfdDevice:
        return FdKfdDevice(fd.local_fd, fd.pid)

    def task_side(self, pid: int, remote: Any, fd_alloc: Callable[[], int]) -> TaskSide:
        if remote is None:
            raise CriuError(f"amdgpu: the KFD process of task {pid} must be restored from inside the task, and the "
                            "core gave the plugin no handle on it")
        return RemoteTaskSide(remote, fd_alloc)

    def engine(self) -> CopyEngine:
        if self._engine is None:
            def render_path(gpu: int) -> str:
                node = self.local_topology().gpu(gpu)
                if node is None:
                    raise CriuError(f"amdgpu: GPU {gpu:04x} is not in this machine's KFD topology")
                return self.config.render_path(node.render_minor)

            self._engine = select_engine(self.config.copy_engine, render_path,
                                         max_buffer_size(self.config.env.get("KFD_MAX_BUFFER_SIZE", "")))
        return self._engine

    def release_engine(self) -> list[str]:
        """Close the copy engine's devices (SDMA); returns where ``auto`` fell back to plain copies, and why."""
        engine, self._engine = self._engine, None
        if engine is None:
            return []
        notes = [f"GPU {gpu:04x}: plain copies ({why})" for gpu, why in getattr(engine, "fallbacks", {}).items()]
        close = getattr(engine, "close", None)
        if close is not None:
            close()
        return notes

    def local_topology(self) -> Topology:
        if self._topology is None:
            self._topology = parse_topology(self.config.topology_root)
        return self._topology


def max_buffer_size(text: str) -> int:
    """CRIU's ``KFD_MAX_BUFFER_SIZE``: bytes, with an optional k/K, M or G suffix; empty or 0 = no limit."""
    text = text.strip()
    if not text:
        return 0
    mult = {"k": 1 << 10, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1], 1)
    try:
        return int(text[:-1] if mult > 1 else text, 0) * mult
    except ValueError:
        raise UsageError(f"KFD_MAX_BUFFER_SIZE={text}: expected a size such as 64M") from None
