"""The raw system calls behind ``criu-py check`` (``criu_core.kerndat``): each does one thing and raises
:class:`~criu_core.errors.SyscallError` when the kernel says no.

Kept apart from the tracer's own wrappers so the check stays cheap to import; the numbers are x86_64's
(``arch/x86/entry/syscalls/syscall_64.tbl``) until ``criu_core.arch.x86_64`` exports them.
"""

from __future__ import annotations

import ctypes
import os

from criu_core.errors import SyscallError

__all__ = [
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
    "uffdio_api",
    "userfaultfd",
]

NR = {
    "ioctl": 16,
    "ptrace": 101,
    "prctl": 157,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "kcmp": 312,
    "userfaultfd": 323,
    "pidfd_open": 434,
    "clone3": 435,
    "pidfd_getfd": 438,
}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

# linux/ptrace.h
PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_GET_RSEQ_CONFIGURATION = 0x420F
PTRACE_O_SUSPEND_SECCOMP = 1 << 21
# linux/prctl.h
PR_SET_MM = 35
PR_SET_MM_MAP_SIZE = 15
PR_TIMER_CREATE_RESTORE_IDS = 77
PR_TIMER_CREATE_RESTORE_IDS_GET = 2
# linux/fs.h (6.7+): PAGEMAP_SCAN = _IOWR('f', 16, struct pm_scan_arg)
PAGEMAP_SCAN = (3 << 30) | (96 << 16) | (ord("f") << 8) | 16
PAGE_IS_PRESENT = 1 << 3
PAGE_IS_GUARD = 1 << 8
# linux/userfaultfd.h: UFFDIO_API = _IOWR(0xAA, 0x3F, struct uffdio_api)
UFFD_API = 0xAA
UFFDIO_API = (3 << 30) | (24 << 16) | (0xAA << 8) | 0x3F
# linux/kcmp.h
KCMP_FILE = 0


def syscall(name: str, *args: int | ctypes.c_void_p | None, pid: int | None = None) -> int:
    """``syscall(NR_name, args...)``; returns the result, raises SyscallError on -1."""
    ret = _libc.syscall(ctypes.c_long(NR[name]), *[ctypes.c_ulong(a) if isinstance(a, int) else a for a in args])
    if ret == -1:
        raise SyscallError(ctypes.get_errno(), name, pid)
    return ret


def ptrace(request: int, pid: int, addr: int = 0, data: int | ctypes.c_void_p = 0, *, what: str = "ptrace") -> int:
    ret = _libc.syscall(
        ctypes.c_long(NR["ptrace"]),
        ctypes.c_long(request),
        ctypes.c_long(pid),
        ctypes.c_ulong(addr),
        data if not isinstance(data, int) else ctypes.c_ulong(data),
    )
    if ret == -1:
        raise SyscallError(ctypes.get_errno(), what, pid)
    return ret


def prctl(
    option: int,
    a2: int | ctypes.c_void_p = 0,
    a3: int | ctypes.c_void_p = 0,
    a4: int = 0,
    a5: int = 0,
    *,
    what: str = "prctl",
) -> int:
    args = [a if not isinstance(a, int) else ctypes.c_ulong(a) for a in (a2, a3, a4, a5)]
    ret = _libc.prctl(ctypes.c_int(option), *args)
    if ret == -1:
        raise SyscallError(ctypes.get_errno(), what)
    return ret


def ioctl(fd: int, request: int, arg: ctypes.c_void_p | int, *, what: str = "ioctl") -> int:
    ret = _libc.syscall(
        ctypes.c_long(NR["ioctl"]),
        ctypes.c_long(fd),
        ctypes.c_ulong(request),
        arg if not isinstance(arg, int) else ctypes.c_ulong(arg),
    )
    if ret == -1:
        raise SyscallError(ctypes.get_errno(), what)
    return ret


class Buffer:
    """A C buffer whose address is the same in a forked child (copy-on-write), for the cross-process probes."""

    def __init__(self, data: bytes) -> None:
        self.raw = ctypes.create_string_buffer(data, len(data))
        self.addr = ctypes.addressof(self.raw)
        self.size = len(data)

    def bytes(self) -> bytes:
        return self.raw.raw[: self.size]


class _Iovec(ctypes.Structure):
    """``struct iovec`` (sys/uio.h)."""

    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


def _vm(name: str, pid: int, local: Buffer, remote_addr: int) -> int:
    liov = _Iovec(local.addr, local.size)
    riov = _Iovec(remote_addr, local.size)
    return syscall(name, pid, ctypes.byref(liov), 1, ctypes.byref(riov), 1, 0, pid=pid)


def process_vm_readv(pid: int, local: Buffer, remote_addr: int) -> int:
    """Read ``local.size`` bytes at ``remote_addr`` of ``pid`` into ``local``; returns the count."""
    return _vm("process_vm_readv", pid, local, remote_addr)


def process_vm_writev(pid: int, local: Buffer, remote_addr: int) -> int:
    """Write ``local`` at ``remote_addr`` of ``pid``; returns the count."""
    return _vm("process_vm_writev", pid, local, remote_addr)


def pidfd_open(pid: int) -> int:
    return syscall("pidfd_open", pid, 0, pid=pid)


def pidfd_getfd(pidfd: int, targetfd: int, pid: int | None = None) -> int:
    return syscall("pidfd_getfd", pidfd, targetfd, 0, pid=pid)


def kcmp(pid1: int, pid2: int, kind: int, idx1: int, idx2: int) -> int:
    return syscall("kcmp", pid1, pid2, kind, idx1, idx2, pid=pid2)


class _CloneArgs(ctypes.Structure):
    """``struct clone_args`` up to CLONE_ARGS_SIZE_VER2 (linux/sched.h)."""

    _fields_ = [
        (name, ctypes.c_uint64)
        for name in (
            "flags",
            "pidfd",
            "child_tid",
            "parent_tid",
            "exit_signal",
            "stack",
            "stack_size",
            "tls",
            "set_tid",
            "set_tid_size",
            "cgroup",
        )
    ]


def clone3_set_tid_probe() -> int:
    """Ask ``clone3`` for a child with this process's own PID: a kernel with ``set_tid`` (5.5+) answers
    EEXIST without creating anything. Returns the errno the kernel gave (0 is impossible in practice)."""
    tid = (ctypes.c_int * 1)(os.getpid())
    args = _CloneArgs(exit_signal=17, set_tid=ctypes.addressof(tid), set_tid_size=1)
    ret = _libc.syscall(ctypes.c_long(NR["clone3"]), ctypes.byref(args), ctypes.c_size_t(ctypes.sizeof(args)))
    if ret == 0:  # a child: cannot happen with a PID in use; never run Python in a raw clone
        os._exit(0)
    if ret > 0:
        os.waitpid(ret, 0)
        return 0
    return ctypes.get_errno()


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


class _RseqConf(ctypes.Structure):
    """``struct ptrace_rseq_configuration`` (linux/ptrace.h)."""

    _fields_ = [
        ("rseq_abi_pointer", ctypes.c_uint64),
        ("rseq_abi_size", ctypes.c_uint32),
        ("signature", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
    ]


def get_rseq_configuration(pid: int) -> tuple[int, int, int]:
    """(rseq area address, size, signature) of a ptrace-stopped task."""
    conf = _RseqConf()
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


class _PmScanArg(ctypes.Structure):
    """``struct pm_scan_arg`` (linux/fs.h, 6.7+)."""

    _fields_ = [
        (name, ctypes.c_uint64)
        for name in (
            "size",
            "flags",
            "start",
            "end",
            "walk_end",
            "vec",
            "vec_len",
            "max_pages",
            "category_inverted",
            "category_mask",
            "category_anyof_mask",
            "return_mask",
        )
    ]


class _PageRegion(ctypes.Structure):
    """``struct page_region`` (linux/fs.h)."""

    _fields_ = [("start", ctypes.c_uint64), ("end", ctypes.c_uint64), ("categories", ctypes.c_uint64)]


def pagemap_scan(pagemap_fd: int, start: int, end: int, return_mask: int) -> list[tuple[int, int, int]]:
    """One ``PAGEMAP_SCAN`` over [start, end) returning up to 16 regions with any of ``return_mask``."""
    vec = (_PageRegion * 16)()
    arg = _PmScanArg(
        size=ctypes.sizeof(_PmScanArg),
        start=start,
        end=end,
        vec=ctypes.addressof(vec),
        vec_len=16,
        category_anyof_mask=return_mask,
        return_mask=return_mask,
    )
    n = ioctl(pagemap_fd, PAGEMAP_SCAN, ctypes.cast(ctypes.byref(arg), ctypes.c_void_p), what="ioctl(PAGEMAP_SCAN)")
    return [(vec[i].start, vec[i].end, vec[i].categories) for i in range(n)]
