"""Registers of a restored thread: general-purpose registers and the XSAVE area rebuilt from core-TID.img.

CRIU stores the FPU state field by field (fxsave legacy fields, then one array per XSAVE component); the kernel
takes it back as one standard-format XSAVE buffer through PTRACE_SETREGSET(NT_X86_XSTATE). The component
offsets of the standard format are the CPU's (CPUID leaf 0xD, EBX of sub-leaf n), not a constant: AMD CPUs
without MPX pack AVX-512 state at 832/896/1408 where Intel's are at 1088/1152/1664. They are read from
``/dev/cpu/0/cpuid`` (the cpuid driver: one pread at offset ``leaf | subleaf << 32`` gives eax, ebx, ecx,
edx); without the driver they are derived from the kernel's own buffer (features packed in order).
"""

from __future__ import annotations

import os
import struct
from typing import Any

from criu_core.errors import ImageFormatError, UnsupportedResource

__all__ = ["XFEATURE_SIZES", "build_regs", "build_xstate", "xstate_offsets"]

_U64 = (1 << 64) - 1
FXSAVE_SIZE = 512
XSAVE_HDR = 512
_SW_RESERVED = 464
# Component sizes (Intel SDM vol. 1 table 13-1): 2 AVX (YMM_Hi128), 3 BNDREGS, 4 BNDCSR, 5 opmask, 6 ZMM_Hi256,
# 7 Hi16_ZMM, 9 PKRU.
XFEATURE_SIZES = {2: 256, 3: 64, 4: 64, 5: 64, 6: 512, 7: 1024, 9: 8}


def _cpuid(leaf: int, sub: int) -> tuple[int, int, int, int] | None:
    try:
        fd = os.open("/dev/cpu/0/cpuid", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        raw = os.pread(fd, 16, leaf | (sub << 32))
    except OSError:
        return None
    finally:
        os.close(fd)
    return struct.unpack("<4I", raw) if len(raw) == 16 else None


def xstate_offsets(template: bytes) -> dict[int, tuple[int, int]]:
    """feature -> (offset, size) in the standard-format XSAVE area the kernel exchanges through ptrace.

    Only the features present in ``template`` count: for ptrace the kernel stores its user xfeatures mask as
    the first u64 of the software-reserved bytes (``user_xstateregs.i387.xstate_fx_sw[0]``, asm/user.h). A
    feature whose component would not fit in the buffer is left out.
    """
    feats = struct.unpack_from("<Q", template, _SW_RESERVED)[0] if len(template) >= FXSAVE_SIZE else 0
    if not feats:
        feats = 0x3  # FP|SSE only: a non-XSAVE kernel or a zeroed buffer
    out: dict[int, tuple[int, int]] = {}
    packed = FXSAVE_SIZE + 64
    for bit in sorted(XFEATURE_SIZES):
        if not feats >> bit & 1:
            continue
        size = XFEATURE_SIZES[bit]
        cpu = _cpuid(0xD, bit)
        off = cpu[1] if cpu and cpu[0] == size and cpu[1] else packed
        if off + size <= len(template):
            out[bit] = (off, size)
        packed = off + size
    return out


def _words(values: Any, fmt: str) -> bytes:
    return struct.pack(f"<{len(values)}{fmt}", *values)


def build_xstate(fpregs: Any, template: bytes, *, path: str = "core") -> bytes:
    """The NT_X86_XSTATE buffer for ``fpregs`` (user_x86_fpregs_entry), laid over the kernel's ``template``.

    ``template`` is the seed's own buffer (PTRACE_GETREGSET), which gives the size and the software-reserved
    bytes. A component the image has but this CPU lacks fails the restore if its XSTATE_BV bit is set (the
    task's state would be lost); an empty array means "not dumped" and keeps the init state.
    """
    buf = bytearray(template)
    if len(buf) < FXSAVE_SIZE:
        raise UnsupportedResource("xstate", msg=f"the kernel's xstate buffer is only {len(buf)} bytes")
    # struct user_i387_struct (asm/user_64.h): u16 cwd, swd, twd, fop; u64 rip, rdp; u32 mxcsr, mxcsr_mask
    struct.pack_into("<HHHHQQII", buf, 0, fpregs.cwd & 0xFFFF, fpregs.swd & 0xFFFF, fpregs.twd & 0xFFFF,
                     fpregs.fop & 0xFFFF, fpregs.rip & _U64, fpregs.rdp & _U64, fpregs.mxcsr, fpregs.mxcsr_mask)
    for name, off, count in (("st_space", 32, 32), ("xmm_space", 160, 64)):
        vals = list(getattr(fpregs, name))
        if len(vals) != count:
            raise ImageFormatError(path, 0, f"fpregs.{name} has {len(vals)} words, expected {count}")
        buf[off:off + 4 * count] = _words(vals, "I")
    if len(buf) < XSAVE_HDR + 64:
        return bytes(buf)
    bv = 0x3
    if fpregs.HasField("xsave"):
        xs = fpregs.xsave
        bv = xs.xstate_bv & (0x3 | sum(1 << b for b in XFEATURE_SIZES))
        offsets = xstate_offsets(template)
        comps = {2: _words(xs.ymmh_space, "I"), 3: _words(xs.bndreg_state, "Q"),
                 4: _words(xs.bndcsr_state, "Q"), 5: _words(xs.opmask_reg, "Q"),
                 6: _words(xs.zmm_upper, "Q"), 7: _words(xs.hi16_zmm, "Q"), 9: _words(xs.pkru, "I")}
        for bit, data in comps.items():
            if not data:
                bv &= ~(1 << bit)
                continue
            where = offsets.get(bit)
            if where is None:
                if bv >> bit & 1:
                    raise UnsupportedResource(f"xfeature {bit}", msg=f"{path}: the task uses xstate component "
                                              f"{bit}, which this CPU or kernel does not provide")
                continue
            off, size = where
            if len(data) != size:
                raise ImageFormatError(path, 0, f"xstate component {bit} is {len(data)} bytes, expected {size}")
            buf[off:off + size] = data
        bv &= 0x3 | sum(1 << b for b in offsets)
    # XSAVE header: XSTATE_BV, then XCOMP_BV = 0 (standard format) and reserved zeros, as the uabi requires
    buf[XSAVE_HDR:XSAVE_HDR + 64] = struct.pack("<Q", bv) + bytes(56)
    return bytes(buf)


def build_regs(gpregs: Any, regs: Any, *, path: str = "core") -> Any:
    """Fill ``regs`` (a UserRegs) from user_x86_regs_entry; ``orig_rax`` = -1 so no syscall restart runs.

    The dump already applied the restart fixup (ip rewound or ax = -EINTR, §4.3 of the image reference); with
    orig_rax = -1 the kernel leaves ip and ax alone when the task resumes from its ptrace stop.
    """
    if gpregs.HasField("mode") and gpregs.mode != 1:
        raise UnsupportedResource("compat task", msg=f"{path}: 32-bit (compat) tasks are not supported")
    names = {"bp": "rbp", "bx": "rbx", "ax": "rax", "cx": "rcx", "dx": "rdx", "si": "rsi", "di": "rdi",
             "ip": "rip", "flags": "eflags", "sp": "rsp"}
    for src in ("r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx", "dx", "si", "di",
                "ip", "cs", "flags", "sp", "ss", "fs_base", "gs_base", "ds", "es", "fs", "gs"):
        setattr(regs, names.get(src, src), getattr(gpregs, src) & _U64)
    regs.orig_rax = _U64
    return regs
