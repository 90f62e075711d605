"""PR_SET_CHILD_SUBREAPER for harnesses: PID 1 on this machine does not reap orphans."""

from __future__ import annotations

import ctypes
import os

from criu_core.errors import SyscallError

__all__ = ["is_child_subreaper", "set_child_subreaper"]

PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h
PR_GET_CHILD_SUBREAPER = 37

_libc = ctypes.CDLL(None, use_errno=True)


def set_child_subreaper(on: bool = True) -> None:
    """Make orphaned descendants (restored tasks among them) reparent to this process."""
    if _libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) != 0:
        raise SyscallError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)", os.getpid())


def is_child_subreaper() -> bool:
    val = ctypes.c_int(0)
    if _libc.prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(val), 0, 0, 0) != 0:
        raise SyscallError(ctypes.get_errno(), "prctl(PR_GET_CHILD_SUBREAPER)", os.getpid())
    return bool(val.value)
