"""The ctypes ABI layer: the only package of criu-core that uses ctypes.

* :mod:`.libc` -- the CDLL/PyDLL handles and raw ``syscall(2)``
* :mod:`.structs` -- kernel structures (user_regs_struct, clone_args, prctl_mm_map, ...)
* :mod:`.ptrace` -- ptrace requests and wrappers
* :mod:`.memory` -- process_vm_readv/writev
* :mod:`.proc` -- pidfd_*, kcmp, prctl, tgkill, wait flags
* :mod:`.clone` -- clone3 with set_tid through PyDLL (seed creation)

Every failure raises :class:`criu_core.errors.SyscallError` with the errno, the call's name and the task.
"""

from __future__ import annotations

from criu_core.sys import clone, libc, memory, proc, ptrace, structs
from criu_core.sys.libc import syscall, syscall_nocheck
from criu_core.sys.memory import IOV_MAX, process_vm_readv, process_vm_writev, read_remote
from criu_core.sys.proc import WALL, kcmp, pidfd_getfd, pidfd_open, pidfd_send_signal, prctl, set_child_subreaper
from criu_core.sys.structs import (
    CloneArgs,
    Iovec,
    Itimerval,
    KernelSigaction,
    PeekSiginfoArgs,
    PrctlMmMap,
    RseqConfig,
    Siginfo,
    SockFilter,
    SockFprog,
    StackT,
    UserRegs,
)

__all__ = [
    "IOV_MAX",
    "WALL",
    "CloneArgs",
    "Iovec",
    "Itimerval",
    "KernelSigaction",
    "PeekSiginfoArgs",
    "PrctlMmMap",
    "RseqConfig",
    "Siginfo",
    "SockFilter",
    "SockFprog",
    "StackT",
    "UserRegs",
    "clone",
    "kcmp",
    "libc",
    "memory",
    "pidfd_getfd",
    "pidfd_open",
    "pidfd_send_signal",
    "prctl",
    "proc",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "read_remote",
    "set_child_subreaper",
    "structs",
    "syscall",
    "syscall_nocheck",
]
