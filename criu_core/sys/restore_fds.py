"""Descriptor constructors the restorer needs and Python's standard library lacks: signalfd, timerfd, epoll.

Each returns a new O_CLOEXEC descriptor of this process (the task pulls it in with pidfd_getfd) and raises
:class:`~criu_core.errors.SyscallError` on failure.
"""

from __future__ import annotations

import ctypes
import os

from criu_core.sys.libc import syscall

__all__ = ["epoll_create", "signalfd", "timerfd_create", "timerfd_settime"]

_O_CLOEXEC = os.O_CLOEXEC


def signalfd(mask: int, flags: int = 0) -> int:
    """signalfd4(-1, &mask, 8, flags | SFD_CLOEXEC): a new signalfd for the 64-bit signal ``mask``."""
    m = ctypes.c_uint64(mask)
    return syscall("signalfd4", -1, ctypes.byref(m), 8, flags | _O_CLOEXEC)


def timerfd_create(clockid: int, flags: int = 0) -> int:
    """timerfd_create(clockid, flags | TFD_CLOEXEC)."""
    return syscall("timerfd_create", clockid, flags | _O_CLOEXEC)


class _Itimerspec(ctypes.Structure):
    """``linux/time_types.h``: ``struct itimerspec { struct timespec it_interval, it_value; };`` (4 x s64)."""

    _fields_ = [("isec", ctypes.c_int64), ("insec", ctypes.c_int64), ("vsec", ctypes.c_int64),
                ("vnsec", ctypes.c_int64)]


def timerfd_settime(fd: int, flags: int, interval: tuple[int, int], value: tuple[int, int]) -> None:
    """timerfd_settime(fd, flags, {interval, value}, NULL); times are (seconds, nanoseconds)."""
    its = _Itimerspec(interval[0], interval[1], value[0], value[1])
    syscall("timerfd_settime", fd, flags, ctypes.byref(its), 0)


def epoll_create() -> int:
    """epoll_create1(EPOLL_CLOEXEC): an empty epoll instance."""
    return syscall("epoll_create1", _O_CLOEXEC)
