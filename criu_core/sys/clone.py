"""clone3(2) with ``set_tid``, called through the GIL-holding :data:`pylibc` handle, and the seed handshake.

P13 (reference ``ptrace-dump-restore.md``): the child of a raw clone3 runs in a copy of this interpreter whose
other threads are gone. It must not take any lock another thread might have held at the fork (GIL included:
hence PyDLL, which keeps the GIL across the call), and glibc's cached TID in the TCB is *not* updated by a raw
clone3, so ``raise()``/``pthread_kill`` in the child would signal the parent. The child therefore does exactly
three raw syscalls, with argument objects built before the fork: ``ptrace(PTRACE_TRACEME)``, ``kill(getpid(),
SIGSTOP)`` (getpid is not cached since glibc 2.25) and, only if the tracer ever lets it run on, ``exit_group``.
"""

from __future__ import annotations

import ctypes
import signal

from criu_core.arch.x86_64.syscalls import NR
from criu_core.errors import PidInUse, SyscallError
from criu_core.sys.libc import pylibc, syscall
from criu_core.sys.structs import CloneArgs, KernelSigaction

__all__ = [
    "CLONE_CHILD_CLEARTID",
    "CLONE_CHILD_SETTID",
    "CLONE_FILES",
    "CLONE_FS",
    "CLONE_IO",
    "CLONE_NEWCGROUP",
    "CLONE_NEWIPC",
    "CLONE_NEWNET",
    "CLONE_NEWNS",
    "CLONE_NEWPID",
    "CLONE_NEWUSER",
    "CLONE_NEWUTS",
    "CLONE_PARENT",
    "CLONE_PARENT_SETTID",
    "CLONE_PIDFD",
    "CLONE_PTRACE",
    "CLONE_SETTLS",
    "CLONE_SIGHAND",
    "CLONE_SYSVSEM",
    "CLONE_THREAD",
    "CLONE_THREAD_FLAGS",
    "CLONE_UNTRACED",
    "CLONE_VFORK",
    "CLONE_VM",
    "RSEQ_FLAG_UNREGISTER",
    "RSEQ_SIG_X86",
    "clone3_traced_seed",
    "own_sigactions",
]

# linux/sched.h
CLONE_VM = 0x00000100
CLONE_FS = 0x00000200
CLONE_FILES = 0x00000400
CLONE_SIGHAND = 0x00000800
CLONE_PIDFD = 0x00001000
CLONE_PTRACE = 0x00002000
CLONE_VFORK = 0x00004000
CLONE_PARENT = 0x00008000
CLONE_THREAD = 0x00010000
CLONE_NEWNS = 0x00020000
CLONE_SYSVSEM = 0x00040000
CLONE_SETTLS = 0x00080000
CLONE_PARENT_SETTID = 0x00100000
CLONE_CHILD_CLEARTID = 0x00200000
CLONE_UNTRACED = 0x00800000
CLONE_CHILD_SETTID = 0x01000000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_IO = 0x80000000

# What glibc's pthread_create passes (minus CLONE_PARENT_SETTID, which needs a parent_tid pointer).
CLONE_THREAD_FLAGS = (
    CLONE_VM
    | CLONE_FS
    | CLONE_FILES
    | CLONE_SIGHAND
    | CLONE_THREAD
    | CLONE_SYSVSEM
    | CLONE_SETTLS
    | CLONE_CHILD_CLEARTID
)

# linux/rseq.h; the x86 signature glibc registers with (sysdeps/unix/sysv/linux/x86/bits/rseq.h).
RSEQ_FLAG_UNREGISTER = 1
RSEQ_SIG_X86 = 0x53053053

_EEXIST = 17
_ENOSPC = 28


def clone3_traced_seed(pid: int) -> int:
    """Create a child process with PID ``pid`` that is traced by the calling thread and stopped by SIGSTOP.

    Returns the pid in the parent after the clone; the caller must ``waitpid(pid, __WALL)`` for the SIGSTOP
    stop. Raises :class:`PidInUse` when ``pid`` is taken (EEXIST), :class:`SyscallError` otherwise.
    """
    tid_arr = (ctypes.c_int32 * 1)(pid)
    args = CloneArgs()
    args.exit_signal = int(signal.SIGCHLD)
    args.set_tid = ctypes.addressof(tid_arr)
    args.set_tid_size = 1
    # Everything the child touches is built here, before the fork (P13).
    sc = pylibc.syscall
    a_clone = (ctypes.c_long(NR["clone3"]), ctypes.byref(args), ctypes.c_long(ctypes.sizeof(args)))
    a_traceme = (ctypes.c_long(NR["ptrace"]), ctypes.c_long(0), ctypes.c_long(0), ctypes.c_long(0), ctypes.c_long(0))
    a_getpid = ctypes.c_long(NR["getpid"])
    a_kill = ctypes.c_long(NR["kill"])
    a_stop = ctypes.c_long(int(signal.SIGSTOP))
    a_exit = (ctypes.c_long(NR["exit_group"]), ctypes.c_long(127))
    ctypes.set_errno(0)
    ret = sc(*a_clone)
    if ret == 0:  # the child: three raw syscalls, never returns to the caller
        sc(*a_traceme)
        sc(a_kill, ctypes.c_long(sc(a_getpid)), a_stop)
        while True:
            sc(*a_exit)
    if ret == -1:
        err = ctypes.get_errno()
        if err == _EEXIST:
            raise PidInUse(pid)
        raise SyscallError(err, "clone3", pid, detail=f"set_tid={pid}")
    return ret


def own_sigactions() -> dict[int, tuple[int, int, int, int]]:
    """This process's signal dispositions as the kernel holds them (``rt_sigaction(sig, NULL, &old, 8)``):
    signal -> (handler, flags, restorer, mask), for every signal but SIGKILL and SIGSTOP. A process cloned
    without CLONE_SIGHAND right after starts with exactly these."""
    act = KernelSigaction()
    out = {}
    for sig in range(1, 65):
        if sig in (9, 19):
            continue
        syscall("rt_sigaction", sig, 0, ctypes.byref(act), 8)
        out[sig] = (act.sa_handler, act.sa_flags, act.sa_restorer, act.sa_mask)
    return out
