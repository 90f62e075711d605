"""ptrace(2) requests, options and thin wrappers that raise :class:`SyscallError`.

Constants are from ``linux/ptrace.h`` and ``sys/ptrace.h``. Every wrapper takes the tid as first argument and
reports it as the error's ``pid``. ptrace ties a tracee to the *thread* that attached it: every call for a given
tracee must come from the same OS thread (criu-core's tracer is single-threaded).
"""

from __future__ import annotations

import ctypes

from criu_core.errors import SyscallError
from criu_core.sys.libc import syscall_nocheck
from criu_core.sys.structs import SIGINFO_SIZE, Iovec, PeekSiginfoArgs, RseqConfig, SockFilter, UserRegs

__all__ = [
    "NT_PRFPREG",
    "NT_PRSTATUS",
    "NT_X86_XSTATE",
    "PTRACE_ATTACH",
    "PTRACE_CONT",
    "PTRACE_DETACH",
    "PTRACE_EVENT_CLONE",
    "PTRACE_EVENT_EXEC",
    "PTRACE_EVENT_EXIT",
    "PTRACE_EVENT_FORK",
    "PTRACE_EVENT_SECCOMP",
    "PTRACE_EVENT_STOP",
    "PTRACE_EVENT_VFORK",
    "PTRACE_EVENT_VFORK_DONE",
    "PTRACE_GETEVENTMSG",
    "PTRACE_GETREGS",
    "PTRACE_GETREGSET",
    "PTRACE_GETSIGINFO",
    "PTRACE_GETSIGMASK",
    "PTRACE_GET_RSEQ_CONFIGURATION",
    "PTRACE_INTERRUPT",
    "PTRACE_KILL",
    "PTRACE_LISTEN",
    "PTRACE_O_EXITKILL",
    "PTRACE_O_SUSPEND_SECCOMP",
    "PTRACE_O_TRACECLONE",
    "PTRACE_O_TRACEEXEC",
    "PTRACE_O_TRACEEXIT",
    "PTRACE_O_TRACEFORK",
    "PTRACE_O_TRACESECCOMP",
    "PTRACE_O_TRACESYSGOOD",
    "PTRACE_O_TRACEVFORK",
    "PTRACE_O_TRACEVFORKDONE",
    "PTRACE_PEEKSIGINFO",
    "PTRACE_PEEKSIGINFO_SHARED",
    "PTRACE_SECCOMP_GET_FILTER",
    "PTRACE_SEIZE",
    "PTRACE_SETOPTIONS",
    "PTRACE_SETREGS",
    "PTRACE_SETREGSET",
    "PTRACE_SETSIGINFO",
    "PTRACE_SETSIGMASK",
    "PTRACE_SINGLESTEP",
    "PTRACE_SYSCALL",
    "PTRACE_TRACEME",
    "SIGSET_ALL",
    "cont",
    "detach",
    "get_rseq_configuration",
    "geteventmsg",
    "getregs",
    "getregset",
    "getsiginfo",
    "getsigmask",
    "interrupt",
    "listen",
    "peeksiginfo",
    "ptrace",
    "seccomp_get_filter",
    "seize",
    "setoptions",
    "setregs",
    "setregset",
    "setsigmask",
    "singlestep",
    "syscall_stop",
    "traceme",
]

PTRACE_TRACEME = 0
PTRACE_CONT = 7
PTRACE_KILL = 8
PTRACE_SINGLESTEP = 9
PTRACE_SYSCALL = 24
PTRACE_GETREGS = 12
PTRACE_SETREGS = 13
PTRACE_ATTACH = 16
PTRACE_DETACH = 17
PTRACE_SETOPTIONS = 0x4200
PTRACE_GETEVENTMSG = 0x4201
PTRACE_GETSIGINFO = 0x4202
PTRACE_SETSIGINFO = 0x4203
PTRACE_GETREGSET = 0x4204
PTRACE_SETREGSET = 0x4205
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_LISTEN = 0x4208
PTRACE_PEEKSIGINFO = 0x4209
PTRACE_GETSIGMASK = 0x420A
PTRACE_SETSIGMASK = 0x420B
PTRACE_SECCOMP_GET_FILTER = 0x420C
PTRACE_GET_RSEQ_CONFIGURATION = 0x420F

PTRACE_O_TRACESYSGOOD = 1
PTRACE_O_TRACEFORK = 1 << 1
PTRACE_O_TRACEVFORK = 1 << 2
PTRACE_O_TRACECLONE = 1 << 3
PTRACE_O_TRACEEXEC = 1 << 4
PTRACE_O_TRACEVFORKDONE = 1 << 5
PTRACE_O_TRACEEXIT = 1 << 6
PTRACE_O_TRACESECCOMP = 1 << 7
PTRACE_O_EXITKILL = 1 << 20
PTRACE_O_SUSPEND_SECCOMP = 1 << 21

PTRACE_EVENT_FORK = 1
PTRACE_EVENT_VFORK = 2
PTRACE_EVENT_CLONE = 3
PTRACE_EVENT_EXEC = 4
PTRACE_EVENT_VFORK_DONE = 5
PTRACE_EVENT_EXIT = 6
PTRACE_EVENT_SECCOMP = 7
PTRACE_EVENT_STOP = 128

PTRACE_PEEKSIGINFO_SHARED = 1

# elf.h note types for PTRACE_GETREGSET.
NT_PRSTATUS = 1
NT_PRFPREG = 2
NT_X86_XSTATE = 0x202

SIGSET_ALL = (1 << 64) - 1

# Enough for every xstate layout seen so far (AMX tiles make it about 11 KiB); the kernel reports the real size.
_XSTATE_BUF = 16384


def ptrace(request: int, tid: int, addr: object = 0, data: object = 0, *, name: str = "ptrace") -> int:
    """Raw ``ptrace(request, tid, addr, data)``; raise SyscallError(errno, name, tid) on -1."""
    ret, err = syscall_nocheck("ptrace", request, tid, addr, data)
    if ret == -1:
        raise SyscallError(err, name, tid)
    return ret


def traceme() -> None:
    """PTRACE_TRACEME: make the parent this task's tracer."""
    ptrace(PTRACE_TRACEME, 0, name="ptrace(TRACEME)")


def seize(tid: int, options: int = 0) -> None:
    """PTRACE_SEIZE: attach without stopping; ``options`` are PTRACE_O_* flags."""
    ptrace(PTRACE_SEIZE, tid, 0, options, name="ptrace(SEIZE)")


def interrupt(tid: int) -> None:
    """PTRACE_INTERRUPT: ask a seized task to stop (reported as a PTRACE_EVENT_STOP)."""
    ptrace(PTRACE_INTERRUPT, tid, name="ptrace(INTERRUPT)")


def cont(tid: int, sig: int = 0) -> None:
    """PTRACE_CONT, delivering ``sig`` if the task is in a signal-delivery-stop."""
    ptrace(PTRACE_CONT, tid, 0, sig, name="ptrace(CONT)")


def syscall_stop(tid: int, sig: int = 0) -> None:
    """PTRACE_SYSCALL: resume until the next syscall-entry or syscall-exit stop (``SIGTRAP | 0x80`` with
    PTRACE_O_TRACESYSGOOD). Unlike single-stepping this sends no signal at all."""
    ptrace(PTRACE_SYSCALL, tid, 0, sig, name="ptrace(SYSCALL)")


def singlestep(tid: int, sig: int = 0) -> None:
    """PTRACE_SINGLESTEP: run one instruction (a ``syscall`` instruction runs the whole syscall)."""
    ptrace(PTRACE_SINGLESTEP, tid, 0, sig, name="ptrace(SINGLESTEP)")


def detach(tid: int, sig: int = 0) -> None:
    """PTRACE_DETACH; ``sig`` is only delivered from a signal-delivery-stop."""
    ptrace(PTRACE_DETACH, tid, 0, sig, name="ptrace(DETACH)")


def listen(tid: int) -> None:
    """PTRACE_LISTEN: leave a group-stopped seized task stopped but let it react to SIGCONT."""
    ptrace(PTRACE_LISTEN, tid, name="ptrace(LISTEN)")


def setoptions(tid: int, options: int) -> None:
    """PTRACE_SETOPTIONS."""
    ptrace(PTRACE_SETOPTIONS, tid, 0, options, name="ptrace(SETOPTIONS)")


def getregs(tid: int) -> UserRegs:
    """PTRACE_GETREGS: the general-purpose registers."""
    regs = UserRegs()
    ptrace(PTRACE_GETREGS, tid, 0, ctypes.byref(regs), name="ptrace(GETREGS)")
    return regs


def setregs(tid: int, regs: UserRegs) -> None:
    """PTRACE_SETREGS."""
    ptrace(PTRACE_SETREGS, tid, 0, ctypes.byref(regs), name="ptrace(SETREGS)")


def getregset(tid: int, note: int = NT_X86_XSTATE, bufsize: int = _XSTATE_BUF) -> bytes:
    """PTRACE_GETREGSET: a register set as raw bytes, sized by the ``iov_len`` the kernel writes back."""
    buf = ctypes.create_string_buffer(bufsize)
    iov = Iovec(ctypes.cast(buf, ctypes.c_void_p), bufsize)
    ptrace(PTRACE_GETREGSET, tid, note, ctypes.byref(iov), name="ptrace(GETREGSET)")
    return buf.raw[: iov.iov_len]


def setregset(tid: int, data: bytes, note: int = NT_X86_XSTATE) -> None:
    """PTRACE_SETREGSET from raw bytes (as :func:`getregset` returned them)."""
    buf = ctypes.create_string_buffer(bytes(data), len(data))
    iov = Iovec(ctypes.cast(buf, ctypes.c_void_p), len(data))
    ptrace(PTRACE_SETREGSET, tid, note, ctypes.byref(iov), name="ptrace(SETREGSET)")


def getsigmask(tid: int) -> int:
    """PTRACE_GETSIGMASK: the blocked mask as a 64-bit int (bit n-1 = signal n)."""
    mask = ctypes.c_uint64()
    ptrace(PTRACE_GETSIGMASK, tid, 8, ctypes.byref(mask), name="ptrace(GETSIGMASK)")
    return mask.value


def setsigmask(tid: int, mask: int) -> None:
    """PTRACE_SETSIGMASK (the kernel silently keeps SIGKILL and SIGSTOP unblockable)."""
    m = ctypes.c_uint64(mask & SIGSET_ALL)
    ptrace(PTRACE_SETSIGMASK, tid, 8, ctypes.byref(m), name="ptrace(SETSIGMASK)")


def geteventmsg(tid: int) -> int:
    """PTRACE_GETEVENTMSG: e.g. the new tid after PTRACE_EVENT_CLONE/FORK/VFORK."""
    msg = ctypes.c_ulong()
    ptrace(PTRACE_GETEVENTMSG, tid, 0, ctypes.byref(msg), name="ptrace(GETEVENTMSG)")
    return msg.value


def getsiginfo(tid: int) -> bytes:
    """PTRACE_GETSIGINFO: the 128-byte siginfo of the signal that caused the current stop."""
    buf = ctypes.create_string_buffer(SIGINFO_SIZE)
    ptrace(PTRACE_GETSIGINFO, tid, 0, buf, name="ptrace(GETSIGINFO)")
    return buf.raw


def peeksiginfo(tid: int, *, shared: bool, batch: int = 32) -> list[bytes]:
    """PTRACE_PEEKSIGINFO: every queued siginfo (128 bytes each) of the private or the shared pending queue.

    The queue is not modified.
    """
    out: list[bytes] = []
    buf = ctypes.create_string_buffer(SIGINFO_SIZE * batch)
    args = PeekSiginfoArgs(0, PTRACE_PEEKSIGINFO_SHARED if shared else 0, batch)
    while True:
        args.off = len(out)
        n = ptrace(PTRACE_PEEKSIGINFO, tid, ctypes.byref(args), buf, name="ptrace(PEEKSIGINFO)")
        raw = buf.raw
        out.extend(raw[i * SIGINFO_SIZE : (i + 1) * SIGINFO_SIZE] for i in range(n))
        if n < batch:
            return out


def get_rseq_configuration(tid: int) -> RseqConfig:
    """PTRACE_GET_RSEQ_CONFIGURATION (Linux 5.13+); ``rseq_abi_pointer == 0`` when none is registered."""
    conf = RseqConfig()
    ptrace(
        PTRACE_GET_RSEQ_CONFIGURATION,
        tid,
        ctypes.sizeof(conf),
        ctypes.byref(conf),
        name="ptrace(GET_RSEQ_CONFIGURATION)",
    )
    return conf


def seccomp_get_filter(tid: int, index: int) -> bytes | None:
    """PTRACE_SECCOMP_GET_FILTER: the classic-BPF program of filter ``index`` (0 = most recent), as raw
    ``struct sock_filter`` array bytes; ``None`` when ``index`` is past the last filter (ENOENT)."""
    ret, err = syscall_nocheck("ptrace", PTRACE_SECCOMP_GET_FILTER, tid, index, 0)
    if ret == -1:
        if err == 2:  # ENOENT: no filter at this index
            return None
        raise SyscallError(err, "ptrace(SECCOMP_GET_FILTER)", tid)
    size = ctypes.sizeof(SockFilter) * ret
    buf = ctypes.create_string_buffer(size)
    n = ptrace(PTRACE_SECCOMP_GET_FILTER, tid, index, buf, name="ptrace(SECCOMP_GET_FILTER)")
    return buf.raw[: ctypes.sizeof(SockFilter) * n]
