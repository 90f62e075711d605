"""The raw system calls behind ``criu-py check`` (``criu_core.kerndat``): each does one thing and raises
:class:`~criu_core.errors.SyscallError` when the kernel says no.

Built on the rest of :mod:`criu_core.sys` (syscall numbers from :mod:`criu_core.arch.x86_64.syscalls`, the
structures from :mod:`.structs` and :mod:`.pagemap`): none of it imports protobuf or the engines, so the check
stays cheap. What is here is only what the probes need on top: failures named after the probe, and
single-shot forms of calls the engines wrap in loops.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

from criu_core.errors import SyscallError
from criu_core.sys.libc import syscall, syscall_nocheck
from criu_core.sys.memory import process_vm_readv as _vm_readv
from criu_core.sys.memory import process_vm_writev as _vm_writev
from criu_core.sys.pagemap import PAGE_IS_PRESENT, PAGEMAP_SCAN, PageRegion, PmScanArg
from criu_core.sys.proc import PR_SET_MM, PR_SET_MM_MAP_SIZE, kcmp, pidfd_getfd, pidfd_open
from criu_core.sys.ptrace import (
    PTRACE_DETACH,
    PTRACE_GET_RSEQ_CONFIGURATION,
    PTRACE_INTERRUPT,
    PTRACE_O_SUSPEND_SECCOMP,
    PTRACE_SEIZE,
)
from criu_core.sys.ptrace import ptrace as _ptrace
from criu_core.sys.structs import CloneArgs, RseqConfig

__all__ = [
    "KCMP_FILE",
    "PAGE_IS_GUARD",
    "PAGE_IS_PRESENT",
    "PTRACE_DETACH",
    "PTRACE_INTERRUPT",
    "PTRACE_O_SUSPEND_SECCOMP",
    "PTRACE_SEIZE",
    "Buffer",
    "clone3_set_tid_probe",
    "get_rseq_configuration",
    "ioctl",
    "kcmp",
    "pagemap_scan",
    "pidfd_getfd",
    "pidfd_open",
    "prctl",
    "prctl_mm_map_size",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "syscall",
    "timer_restore_ids_get",
    "uffdio_api",
    "userfaultfd",
]

# linux/prctl.h
PR_TIMER_CREATE_RESTORE_IDS = 77
PR_TIMER_CREATE_RESTORE_IDS_GET = 2
# linux/fs.h (6.14+): a guard region (MADV_GUARD_INSTALL), a PAGEMAP_SCAN category
PAGE_IS_GUARD = 1 << 8
# linux/userfaultfd.h: UFFDIO_API = _IOWR(0xAA, 0x3F, struct uffdio_api)
UFFD_API = 0xAA
UFFDIO_API = (3 << 30) | (24 << 16) | (0xAA << 8) | 0x3F
# linux/kcmp.h
KCMP_FILE = 0


def ptrace(request: int, pid: int, addr: int = 0, data: Any = 0, *, what: str = "ptrace") -> int:
    """``ptrace(request, pid, addr, data)``; a failure is named ``what``."""
    return _ptrace(request, pid, addr, data, name=what)


def prctl(option: int, a2: Any = 0, a3: Any = 0, a4: int = 0, a5: int = 0, *, what: str = "prctl") -> int:
    """``prctl(option, ...)`` in this process; a failure is named ``what``."""
    ret, err = syscall_nocheck("prctl", option, a2, a3, a4, a5)
    if ret == -1:
        raise SyscallError(err, what)
    return ret


def ioctl(fd: int, request: int, arg: Any, *, what: str = "ioctl") -> int:
    """``ioctl(fd, request, arg)``; a failure is named ``what``."""
    ret, err = syscall_nocheck("ioctl", fd, request, arg)
    if ret == -1:
        raise SyscallError(err, what)
    return ret


class Buffer:
    """A C buffer whose address is the same in a forked child (copy-on-write), for the cross-process probes."""

    def __init__(self, data: bytes) -> None:
        self.raw = ctypes.create_string_buffer(data, len(data))
        self.addr = ctypes.addressof(self.raw)
        self.size = len(data)

    def bytes(self) -> bytes:
        return self.raw.raw[: self.size]


def process_vm_readv(pid: int, local: Buffer, remote_addr: int) -> int:
    """Read ``local.size`` bytes at ``remote_addr`` of ``pid`` into ``local``; returns the count."""
    return _vm_readv(pid, [(local.addr, local.size)], [(remote_addr, local.size)])


def process_vm_writev(pid: int, local: Buffer, remote_addr: int) -> int:
    """Write ``local`` at ``remote_addr`` of ``pid``; returns the count."""
    return _vm_writev(pid, [(local.addr, local.size)], [(remote_addr, local.size)])


def clone3_set_tid_probe() -> int:
    """Ask ``clone3`` for a child with this process's own PID: a kernel with ``set_tid`` (5.5+) answers
    EEXIST without creating anything. Returns the errno the kernel gave (0 is impossible in practice)."""
    tid = (ctypes.c_int * 1)(os.getpid())
    args = CloneArgs(exit_signal=17, set_tid=ctypes.addressof(tid), set_tid_size=1)
    ret, err = syscall_nocheck("clone3", ctypes.byref(args), ctypes.sizeof(args))
    if ret == 0:  # a child: cannot happen with a PID in use; never run Python in a raw clone
        os._exit(0)
    if ret > 0:
        os.waitpid(ret, 0)
        return 0
    return err


def prctl_mm_map_size() -> int:
    """``prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE)``: the size of ``struct prctl_mm_map`` the kernel expects."""
    size = ctypes.c_uint(0)
    prctl(
        PR_SET_MM,
        PR_SET_MM_MAP_SIZE,
        ctypes.cast(ctypes.byref(size), ctypes.c_void_p),
        0,
        0,
        what="prctl(PR_SET_MM_MAP_SIZE)",
    )
    return size.value


def timer_restore_ids_get() -> int:
    """``prctl(PR_TIMER_CREATE_RESTORE_IDS, GET)``: 0 or 1 on kernels that create POSIX timers at given IDs."""
    return prctl(
        PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_GET, what="prctl(PR_TIMER_CREATE_RESTORE_IDS)"
    )


def get_rseq_configuration(pid: int) -> tuple[int, int, int]:
    """(rseq area address, size, signature) of a ptrace-stopped task."""
    conf = RseqConfig()
    ptrace(
        PTRACE_GET_RSEQ_CONFIGURATION,
        pid,
        ctypes.sizeof(conf),
        ctypes.cast(ctypes.byref(conf), ctypes.c_void_p),
        what="ptrace(PTRACE_GET_RSEQ_CONFIGURATION)",
    )
    return conf.rseq_abi_pointer, conf.rseq_abi_size, conf.signature


def userfaultfd(flags: int = os.O_CLOEXEC | os.O_NONBLOCK) -> int:
    return syscall("userfaultfd", flags)


class _UffdioApi(ctypes.Structure):
    """``struct uffdio_api`` (linux/userfaultfd.h)."""

    _fields_ = [("api", ctypes.c_uint64), ("features", ctypes.c_uint64), ("ioctls", ctypes.c_uint64)]


def uffdio_api(fd: int) -> int:
    """Handshake on a fresh userfaultfd; returns the feature bits the kernel offers."""
    api = _UffdioApi(api=UFFD_API, features=0)
    ioctl(fd, UFFDIO_API, ctypes.cast(ctypes.byref(api), ctypes.c_void_p), what="ioctl(UFFDIO_API)")
    return api.features


def pagemap_scan(pagemap_fd: int, start: int, end: int, return_mask: int) -> list[tuple[int, int, int]]:
    """One ``PAGEMAP_SCAN`` over [start, end) returning up to 16 regions with any of ``return_mask``.

    Unlike :func:`criu_core.sys.pagemap.pagemap_scan` it issues the ioctl even for an empty range: asking
    about a category the kernel does not know (``PAGE_IS_GUARD``) is how the guard-region probe works.
    """
    vec = (PageRegion * 16)()
    arg = PmScanArg(
        size=ctypes.sizeof(PmScanArg),
        start=start,
        end=end,
        vec=ctypes.addressof(vec),
        vec_len=16,
        category_anyof_mask=return_mask,
        return_mask=return_mask,
    )
    n = ioctl(pagemap_fd, PAGEMAP_SCAN, ctypes.cast(ctypes.byref(arg), ctypes.c_void_p), what="ioctl(PAGEMAP_SCAN)")
    return [(vec[i].start, vec[i].end, vec[i].categories) for i in range(n)]
