"""Struct sizes pinned against the kernel headers, and pure arch helpers."""

from __future__ import annotations

import ctypes
import errno

import pytest

from criu_core.arch.x86_64 import NR, find_syscall_insn, restart_fixup, signed, unsigned
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


def test_find_syscall_insn() -> None:
    assert find_syscall_insn(b"\x90\x90\x0f\x05\xc3", 0x7000) == 0x7002
    assert find_syscall_insn(b"\x90\x90", 0x7000) is None


def test_vm_transfer_calls_stay_below_the_kernels_per_call_cap():
    from criu_core.sys.memory import CALL_BYTES_MAX, IOV_MAX, _calls

    three_gib = [(0x10000000, 3 << 30)]
    calls = _calls(three_gib)
    assert [sum(n for _, n in c) for c in calls] == [1 << 30] * 3
    assert calls[1][0][0] == 0x10000000 + (1 << 30)
    many = [(i * 8192, 4096) for i in range(2500)]
    calls = _calls(many)
    assert [len(c) for c in calls] == [IOV_MAX, IOV_MAX, 2500 - 2 * IOV_MAX]
    assert sum(sum(n for _, n in c) for c in _calls([(0, CALL_BYTES_MAX + 4096)])) == CALL_BYTES_MAX + 4096
