"""Struct sizes pinned against the kernel headers, and pure arch helpers."""

from __future__ import annotations

import ctypes
import errno

import pytest

from criu_core.arch.x86_64 import NR, find_syscall_insn, restart_fixup, signed, unsigned
from criu_core.arch.x86_64.regs import kernel_restart
from criu_core.sys import structs


@pytest.mark.parametrize(
    ("cls", "size"),
    [
        (structs.UserRegs, 27 * 8),
        (structs.Iovec, 16),
        (structs.CloneArgs, 88),  # CLONE_ARGS_SIZE_VER2
        (structs.PrctlMmMap, 104),
        (structs.RseqConfig, 24),
        (structs.KernelSigaction, 32),
        (structs.Siginfo, 128),
        (structs.PeekSiginfoArgs, 16),
        (structs.SockFilter, 8),
        (structs.SockFprog, 16),
        (structs.StackT, 24),
        (structs.Itimerval, 32),
    ],
)
def test_struct_sizes(cls: type, size: int) -> None:
    assert ctypes.sizeof(cls) == size


def test_user_regs_field_offsets() -> None:
    assert structs.UserRegs.rax.offset == 10 * 8
    assert structs.UserRegs.orig_rax.offset == 15 * 8
    assert structs.UserRegs.rip.offset == 16 * 8
    assert structs.UserRegs.fs_base.offset == 21 * 8
    assert structs.PrctlMmMap.exe_fd.offset == 100


def test_syscall_numbers() -> None:
    assert NR["read"] == 0 and NR["getpid"] == 39 and NR["clone3"] == 435 and NR["rseq"] == 334
    assert NR["pidfd_getfd"] == 438 and NR["rt_sigaction"] == 13 and NR["map_shadow_stack"] == 453


def _regs(rax: int, orig: int, rip: int = 0x1002) -> structs.UserRegs:
    r = structs.UserRegs()
    r.rax, r.orig_rax, r.rip = unsigned(rax), unsigned(orig), rip
    return r


@pytest.mark.parametrize("code", [-512, -513, -514])
def test_restart_fixup_reexecutes(code: int) -> None:
    r = restart_fixup(_regs(code, 34))
    assert r.rax == 34 and r.rip == 0x1000 and signed(r.orig_rax) == -1


def test_restart_fixup_restartblock_is_eintr() -> None:
    r = restart_fixup(_regs(-516, 230))
    assert signed(r.rax) == -errno.EINTR and r.rip == 0x1002 and signed(r.orig_rax) == -1


def test_restart_fixup_leaves_other_results() -> None:
    r = restart_fixup(_regs(-errno.EAGAIN, 0))
    assert signed(r.rax) == -errno.EAGAIN and r.rip == 0x1002 and signed(r.orig_rax) == -1
    r = restart_fixup(_regs(-512, -1))  # not in a syscall: rax is just a value
    assert signed(r.rax) == -512 and r.rip == 0x1002


def test_kernel_restart_does_what_the_kernel_would() -> None:
    """A thread resumed from a stop outside get_signal gets the kernel's restart done in its registers."""
    r = kernel_restart(_regs(-516, 230))  # clock_nanosleep: restart_syscall, its restart block kept
    assert r.rax == 219 and r.rip == 0x1000 and signed(r.orig_rax) == -1
    r = kernel_restart(_regs(-512, 34))
    assert r.rax == 34 and r.rip == 0x1000 and signed(r.orig_rax) == -1
    r = kernel_restart(_regs(-errno.EAGAIN, 0))
    assert signed(r.rax) == -errno.EAGAIN and r.rip == 0x1002


def test_find_syscall_insn() -> None:
    assert find_syscall_insn(b"\x90\x90\x0f\x05\xc3", 0x7000) == 0x7002
    assert find_syscall_insn(b"\x90\x90", 0x7000) is None


def test_process_vm_readv_splits_and_resumes() -> None:
    """Many iovecs (more than IOV_MAX) and a remote list read back in order from our own process."""
    import os

    from criu_core.sys.memory import process_vm_readv

    src = ctypes.create_string_buffer(bytes(range(256)) * 64)  # 16 KiB
    base = ctypes.addressof(src)
    remote = [(base + i * 8, 8) for i in range(2048)]  # 2048 iovecs of 8 bytes
    dst = ctypes.create_string_buffer(16384)
    assert process_vm_readv(os.getpid(), [(ctypes.addressof(dst), 16384)], remote) == 16384
    assert dst.raw == src.raw[:16384]
