"""The two libc handles and the raw ``syscall(2)`` entry point every wrapper goes through.

``libc`` is a :class:`ctypes.CDLL`: calls release the GIL, which is what blocking calls (waitpid, process_vm_*)
want. ``pylibc`` is a :class:`ctypes.PyDLL` over the same library: the GIL stays held across the call. Fork-like
calls (``clone3``) must use it (reference P13): with CDLL another Python thread may hold the GIL, or any lock, at
the instant of the fork, and the child then hangs forever (17/20 hangs measured). Both use ``use_errno=True`` or
``ctypes.get_errno()`` returns a stale value (reference P12).

Raw ``syscall(2)`` is used instead of glibc's wrappers: glibc's ``ptrace()`` reinterprets PEEK requests, and
several calls used here (pidfd_*, clone3, kcmp, rseq) have no wrapper in glibc 2.36.
"""

from __future__ import annotations

import ctypes
from typing import Any

from criu_core.arch.x86_64.syscalls import NR
from criu_core.errors import SyscallError

__all__ = ["check", "libc", "pylibc", "syscall", "syscall_nocheck", "to_c_arg"]

libc = ctypes.CDLL(None, use_errno=True)
pylibc = ctypes.PyDLL(None, use_errno=True)

libc.syscall.restype = ctypes.c_long
pylibc.syscall.restype = ctypes.c_long

_U64 = 1 << 64
_S64 = 1 << 63


def to_c_arg(value: Any) -> Any:
    """Turn a Python argument into something that travels as a full 64-bit register through ``syscall(2)``.

    ctypes passes a bare ``int`` to a variadic function as a C ``int`` (32 bits), which silently truncates
    addresses; every integer is therefore wrapped in ``c_long`` (values >= 2**63 wrap to their signed form).
    ctypes objects and ``byref()`` results pass through unchanged.
    """
    if value is None:
        return ctypes.c_long(0)
    if isinstance(value, bool):
        return ctypes.c_long(int(value))
    if isinstance(value, int):
        value %= _U64
        if value >= _S64:
            value -= _U64
        return ctypes.c_long(value)
    return value


def syscall_nocheck(name: str, *args: Any, lib: ctypes.CDLL = libc) -> tuple[int, int]:
    """Run system call ``name`` in this process; return ``(result, errno)`` without raising."""
    ctypes.set_errno(0)
    ret = lib.syscall(ctypes.c_long(NR[name]), *(to_c_arg(a) for a in args))
    return ret, (ctypes.get_errno() if ret == -1 else 0)


def syscall(name: str, *args: Any, pid: int | None = None) -> int:
    """Run system call ``name`` in this process; raise :class:`SyscallError` (with ``pid``) on failure."""
    ret, err = syscall_nocheck(name, *args)
    if ret == -1:
        raise SyscallError(err, name, pid)
    return ret


def check(ret: int, name: str, pid: int | None = None) -> int:
    """Raise :class:`SyscallError` from ``ctypes.get_errno()`` if a libc call returned -1."""
    if ret == -1:
        raise SyscallError(ctypes.get_errno(), name, pid)
    return ret
