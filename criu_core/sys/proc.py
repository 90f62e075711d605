"""Process-level system calls: pidfd_*, kcmp, prctl, tgkill, rt_tgsigqueueinfo, waitpid helpers.

``waitpid`` is :func:`os.waitpid` (it handles EINTR); only the ``__WALL`` flag, which the os module lacks, is here.
"""

from __future__ import annotations

import ctypes

from criu_core.errors import SyscallError
from criu_core.sys.libc import syscall, syscall_nocheck

__all__ = [
    "F_GETPIPE_SZ",
    "KCMP_EPOLL_TFD",
    "KCMP_FILE",
    "KCMP_FILES",
    "KCMP_FS",
    "KCMP_IO",
    "KCMP_SIGHAND",
    "KCMP_SYSVSEM",
    "KCMP_VM",
    "PR_CAPBSET_READ",
    "PR_CAP_AMBIENT",
    "PR_GET_CHILD_SUBREAPER",
    "PR_GET_DUMPABLE",
    "PR_GET_NAME",
    "PR_GET_NO_NEW_PRIVS",
    "PR_GET_PDEATHSIG",
    "PR_GET_SECCOMP",
    "PR_GET_SECUREBITS",
    "PR_GET_THP_DISABLE",
    "PR_GET_TID_ADDRESS",
    "PR_SET_CHILD_SUBREAPER",
    "PR_SET_DUMPABLE",
    "PR_SET_MM",
    "PR_SET_MM_MAP",
    "PR_SET_MM_MAP_SIZE",
    "PR_SET_NAME",
    "PR_SET_NO_NEW_PRIVS",
    "PR_SET_PDEATHSIG",
    "PR_SET_SECCOMP",
    "PR_SET_SECUREBITS",
    "PR_SET_THP_DISABLE",
    "PR_SET_VMA",
    "PR_SET_VMA_ANON_NAME",
    "SPLICE_F_NONBLOCK",
    "WALL",
    "WCLONE",
    "WNOTHREAD",
    "get_robust_list",
    "kcmp",
    "pidfd_getfd",
    "pidfd_open",
    "pidfd_send_signal",
    "prctl",
    "rt_tgsigqueueinfo",
    "set_child_subreaper",
    "tee",
    "tgkill",
]

SPLICE_F_NONBLOCK = 2
F_GETPIPE_SZ = 1032

# linux/wait.h
WNOTHREAD = 0x20000000
WALL = 0x40000000
WCLONE = 0x80000000

# linux/kcmp.h
KCMP_FILE, KCMP_VM, KCMP_FILES, KCMP_FS, KCMP_SIGHAND, KCMP_IO, KCMP_SYSVSEM, KCMP_EPOLL_TFD = range(8)

# linux/prctl.h
PR_SET_PDEATHSIG = 1
PR_GET_PDEATHSIG = 2
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
PR_GET_NAME = 16
PR_GET_SECCOMP = 21
PR_SET_SECCOMP = 22
PR_CAPBSET_READ = 23
PR_GET_SECUREBITS = 27
PR_SET_SECUREBITS = 28
PR_SET_MM = 35
PR_SET_MM_MAP = 14
PR_SET_MM_MAP_SIZE = 15
PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_GET_TID_ADDRESS = 40
PR_SET_THP_DISABLE = 41
PR_GET_THP_DISABLE = 42
PR_CAP_AMBIENT = 47
PR_SET_VMA = 0x53564D41
PR_SET_VMA_ANON_NAME = 0


def pidfd_open(pid: int, flags: int = 0) -> int:
    """pidfd_open(2): a pidfd for process ``pid`` (close it with os.close)."""
    return syscall("pidfd_open", pid, flags, pid=pid)


def pidfd_getfd(pidfd: int, targetfd: int, *, pid: int | None = None) -> int:
    """pidfd_getfd(2): a duplicate, in this process, of descriptor ``targetfd`` of the pidfd's process.

    The new descriptor is always O_CLOEXEC. Needs PTRACE_MODE_ATTACH_REALCREDS over the target.
    """
    return syscall("pidfd_getfd", pidfd, targetfd, 0, pid=pid)


def pidfd_send_signal(
    pidfd: int, sig: int, info: bytes | None = None, flags: int = 0, *, pid: int | None = None
) -> None:
    """pidfd_send_signal(2); ``info`` is an optional raw 128-byte siginfo."""
    buf = ctypes.create_string_buffer(bytes(info), 128) if info is not None else None
    syscall("pidfd_send_signal", pidfd, sig, buf, flags, pid=pid)


def kcmp(pid1: int, pid2: int, kind: int, idx1: int = 0, idx2: int = 0) -> int:
    """kcmp(2): 0 if equal, 1 / 2 for an ordering, 3 if not equal (unordered)."""
    return syscall("kcmp", pid1, pid2, kind, idx1, idx2, pid=pid1)


def prctl(option: int, arg2: object = 0, arg3: object = 0, arg4: object = 0, arg5: object = 0) -> int:
    """prctl(2) in this process."""
    return syscall("prctl", option, arg2, arg3, arg4, arg5)


def set_child_subreaper(on: bool = True) -> None:
    """PR_SET_CHILD_SUBREAPER: orphans of our descendants are reparented to us (harnesses need it)."""
    prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0)


def tgkill(tgid: int, tid: int, sig: int) -> None:
    """tgkill(2)."""
    syscall("tgkill", tgid, tid, sig, pid=tid)


def rt_tgsigqueueinfo(tgid: int, tid: int, sig: int, info: bytes) -> None:
    """rt_tgsigqueueinfo(2) from this process. The kernel refuses (EPERM) si_code >= 0 or SI_TKILL for another
    process; inject the call into the target itself to queue such a siginfo unchanged."""
    buf = ctypes.create_string_buffer(bytes(info), 128)
    ret, err = syscall_nocheck("rt_tgsigqueueinfo", tgid, tid, sig, buf)
    if ret == -1:
        raise SyscallError(err, "rt_tgsigqueueinfo", tid)


def get_robust_list(tid: int) -> tuple[int, int]:
    """get_robust_list(2) of another thread: (head address, length). Needs ptrace-read access."""
    head = ctypes.c_uint64()
    length = ctypes.c_size_t()
    syscall("get_robust_list", tid, ctypes.byref(head), ctypes.byref(length), pid=tid)
    return head.value, length.value


def tee(fd_in: int, fd_out: int, length: int, flags: int = 0) -> int:
    """tee(2): duplicate up to ``length`` bytes from pipe ``fd_in`` into pipe ``fd_out`` without consuming."""
    return syscall("tee", fd_in, fd_out, length, flags)
