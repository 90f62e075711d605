"""x86_64 register helpers: signed views, syscall argument registers, the syscall-restart fixup.

Pure functions over :class:`criu_core.sys.structs.UserRegs`-like objects (anything with the attributes).
"""

from __future__ import annotations

import errno
from typing import Any

__all__ = [
    "ERESTARTNOHAND",
    "ERESTARTNOINTR",
    "ERESTARTSYS",
    "ERESTART_RESTARTBLOCK",
    "SYSCALL_ARG_REGS",
    "SYSCALL_INSN",
    "in_syscall",
    "kernel_restart",
    "restart_fixup",
    "set_syscall",
    "signed",
    "syscall_result",
    "unsigned",
]

# include/linux/errno.h (kernel-internal, seen by a tracer in rax of a task stopped while a syscall is pending)
ERESTARTSYS = 512
ERESTARTNOINTR = 513
ERESTARTNOHAND = 514
ERESTART_RESTARTBLOCK = 516

SYSCALL_ARG_REGS = ("rdi", "rsi", "rdx", "r10", "r8", "r9")
SYSCALL_INSN = b"\x0f\x05"

_U64 = 1 << 64


def signed(value: int) -> int:
    """A 64-bit register value as a signed int (rax = -514 etc.)."""
    value &= _U64 - 1
    return value - _U64 if value >> 63 else value


def unsigned(value: int) -> int:
    """A possibly negative int as the 64-bit register value."""
    return value % _U64


def set_syscall(regs: Any, ip: int, nr: int, args: tuple[int, ...]) -> None:
    """Prepare ``regs`` to execute syscall ``nr(*args)`` at a ``syscall`` instruction located at ``ip``.

    ``orig_rax`` is set to -1 so that, if the task was stopped inside an interrupted syscall, the kernel's
    restart logic on resume does not rewind our ``rip`` (it acts when orig_rax >= 0 and rax is -ERESTART*).
    """
    if len(args) > 6:
        raise ValueError("a syscall takes at most 6 arguments")
    regs.rax = nr
    regs.orig_rax = unsigned(-1)
    regs.rip = ip
    for name in SYSCALL_ARG_REGS:
        setattr(regs, name, 0)
    for name, value in zip(SYSCALL_ARG_REGS, args):
        setattr(regs, name, unsigned(value))


def syscall_result(regs: Any) -> int:
    """The signed return value of a syscall that just ran."""
    return signed(regs.rax)


def in_syscall(regs: Any) -> bool:
    """True if the stopped task was inside a system call (``orig_rax`` holds its number)."""
    return signed(regs.orig_rax) >= 0


def restart_fixup(regs: Any) -> Any:
    """Make the registers of a task frozen inside a syscall resumable without the kernel's help (CRIU-style).

    A task stopped in ``get_signal`` after an interrupted syscall has ``orig_rax`` = the syscall number and
    ``rax`` = -ERESTART*. Once restored (or simply resumed with these regs set by us) no kernel restart logic
    runs, so the dump stores the result of that logic:

    * -ERESTARTSYS, -ERESTARTNOINTR, -ERESTARTNOHAND: ``rax = orig_rax``, ``rip -= 2`` (re-execute the syscall);
    * -ERESTART_RESTARTBLOCK: ``rax = -EINTR`` (the restart block is kernel state that is lost; e.g. a
      ``clock_nanosleep`` returns early with EINTR, which every caller must handle);
    * finally ``orig_rax = -1`` in every case.

    Modifies and returns ``regs`` (pass a copy to keep the raw registers).
    """
    return _restart(regs, block_restarts=False)


NR_RESTART_SYSCALL = 219


def kernel_restart(regs: Any) -> Any:
    """Apply what the kernel's own restart logic would do on the way back to user space (arch_do_signal_or_restart
    without a handler), then ``orig_rax = -1`` so that it is not done twice.

    Needed to resume a thread with PTRACE_CONT from a stop outside get_signal (a syscall-exit stop of an
    injected call): there the kernel sees no pending signal and skips its restart logic, and the interrupted
    syscall would return -ERESTART* to user space. -ERESTART_RESTARTBLOCK becomes ``restart_syscall`` (the
    task's restart block is still the kernel's), the others re-execute the syscall. Modifies and returns ``regs``.
    """
    return _restart(regs, block_restarts=True)


def _restart(regs: Any, *, block_restarts: bool) -> Any:
    """The two rewrites share everything but -ERESTART_RESTARTBLOCK: CRIU turns it into EINTR (the restart block
    is lost with the dump), the live kernel into a ``restart_syscall`` (it still holds the block)."""
    if in_syscall(regs):
        ret = signed(regs.rax)
        if ret in (-ERESTARTSYS, -ERESTARTNOINTR, -ERESTARTNOHAND):
            regs.rax = regs.orig_rax
            regs.rip = unsigned(regs.rip - 2)
        elif ret == -ERESTART_RESTARTBLOCK:
            if block_restarts:
                regs.rax = NR_RESTART_SYSCALL
                regs.rip = unsigned(regs.rip - 2)
            else:
                regs.rax = unsigned(-errno.EINTR)
    regs.orig_rax = unsigned(-1)
    return regs
