"""Finding a ``syscall`` instruction (``0f 05``) to single-step for injected system calls."""

from __future__ import annotations

from criu_core.arch.x86_64.regs import SYSCALL_INSN

__all__ = ["find_syscall_insn"]


def find_syscall_insn(code: bytes, base: int) -> int | None:
    """Address of the first ``0f 05`` byte pair in ``code`` (mapped at ``base``), or ``None``.

    Any byte pair works, even one in the middle of another instruction: the task executes it only because we
    point ``rip`` at it and single-step. The vDSO always contains real ``syscall`` instructions (the
    clock_gettime fallbacks), so the first hit is used.
    """
    i = code.find(SYSCALL_INSN)
    return None if i < 0 else base + i
