"""The plugin's own ioctl module: the only place (with :mod:`criu_amdgpu.abi`) where it uses ctypes.

``process_vm_readv``/``process_vm_writev`` let the emulated device follow the pointers in an ioctl argument into
the calling process, and let the plugin place bucket arrays in a restored task's memory. STYLE allows a plugin's
own ioctl module to hold this; every failure raises :class:`~criu_core.errors.SyscallError`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno as _errno
import fcntl
import os

from criu_core.errors import SyscallError

__all__ = ["Iovec", "ioctl_buf", "pidfd_getfd", "process_vm_readv", "process_vm_writev"]

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


class Iovec(ctypes.Structure):
    """``struct iovec`` (uapi/linux/uio.h): ``void *iov_base; __kernel_size_t iov_len;``."""

    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


for _name in ("process_vm_readv", "process_vm_writev"):
    _fn = getattr(_libc, _name)
    _fn.argtypes = [ctypes.c_int, ctypes.POINTER(Iovec), ctypes.c_ulong, ctypes.POINTER(Iovec), ctypes.c_ulong,
                    ctypes.c_ulong]
    _fn.restype = ctypes.c_ssize_t


def _vm(name: str, pid: int, local_addr: int, remote_addr: int, size: int) -> None:
    done = 0
    while done < size:
        local = Iovec(local_addr + done, size - done)
        remote = Iovec(remote_addr + done, size - done)
        n = getattr(_libc, name)(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
        if n < 0:
            raise SyscallError(ctypes.get_errno(), name, pid, f"{size} bytes at {remote_addr:#x}")
        if n == 0:
            raise SyscallError(_errno.EFAULT, name, pid, f"short transfer at {remote_addr + done:#x}")
        done += n


def process_vm_readv(pid: int, addr: int, size: int) -> bytes:
    """Read ``size`` bytes at ``addr`` in process (or thread) ``pid``."""
    if size == 0:
        return b""
    buf = ctypes.create_string_buffer(size)
    _vm("process_vm_readv", pid, ctypes.addressof(buf), addr, size)
    return buf.raw


def process_vm_writev(pid: int, addr: int, data: bytes) -> None:
    """Write ``data`` at ``addr`` in process (or thread) ``pid``."""
    if not data:
        return
    buf = ctypes.create_string_buffer(bytes(data), len(data))
    _vm("process_vm_writev", pid, ctypes.addressof(buf), addr, len(data))


def ioctl_buf(fd: int, cmd: int, buf: bytearray, what: str = "", pid: int | None = None) -> None:
    """``ioctl(fd, cmd, buf)`` with the argument updated in place; errors become SyscallError."""
    try:
        fcntl.ioctl(fd, cmd & 0xFFFFFFFF, buf, True)
    except OSError as exc:
        raise SyscallError(exc.errno or _errno.EIO, f"ioctl({what or hex(cmd)})", pid) from None



_SYS_PIDFD_GETFD = 438  # x86_64 (and every arch since 5.6: the unified syscall table)


def pidfd_getfd(pid: int, target_fd: int) -> int:
    """A copy, in this process, of descriptor ``target_fd`` of process ``pid`` (needs ptrace rights over it)."""
    pidfd = os.pidfd_open(pid)
    try:
        fd = _libc.syscall(_SYS_PIDFD_GETFD, pidfd, target_fd, 0)
        if fd < 0:
            raise SyscallError(ctypes.get_errno(), "pidfd_getfd", pid, f"fd {target_fd}")
        return fd
    finally:
        os.close(pidfd)
