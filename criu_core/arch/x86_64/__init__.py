"""x86_64 specifics: syscall numbers (:mod:`.syscalls`), registers and the restart fixup (:mod:`.regs`), the
XSAVE area (:mod:`.xstate`) and finding a ``syscall`` instruction (:mod:`.vdso`)."""

from __future__ import annotations

from criu_core.arch.x86_64 import regs, syscalls, vdso, xstate
from criu_core.arch.x86_64.regs import restart_fixup, set_syscall, signed, unsigned
from criu_core.arch.x86_64.syscalls import NR, nr
from criu_core.arch.x86_64.vdso import find_syscall_insn

__all__ = [
    "NR",
    "find_syscall_insn",
    "nr",
    "regs",
    "restart_fixup",
    "set_syscall",
    "signed",
    "syscalls",
    "unsigned",
    "vdso",
    "xstate",
]
