"""XSAVE area helpers (``NT_X86_XSTATE`` regset).

The layout is the standard-format XSAVE area (Intel SDM vol. 1, 13.4): 512 bytes of legacy FXSAVE state, a
64-byte XSAVE header whose first u64 is XSTATE_BV, then the extended components. Its size depends on the CPU's
enabled features (2,432 bytes on the project's machine with AVX-512); always size buffers from what
PTRACE_GETREGSET returned. In a ptrace area the u64 at offset 464 is XCR0, the mask of enabled features (signal frames keep
``struct _fpx_sw_bytes`` there instead). Components CRIU's images do not carry (AMX tiles, 8 KiB on Sapphire
Rapids) keep whatever the restoring task has.
"""

from __future__ import annotations

import struct

__all__ = [
    "COMPONENTS",
    "FXSAVE_SIZE",
    "XCR0_OFFSET",
    "XSAVE_HDR_OFFSET",
    "component_offsets",
    "fpregs_fields",
    "mxcsr",
    "split_legacy",
    "sw_reserved",
    "xcr0",
    "xstate_bv",
    "xstate_from_fields",
]

FXSAVE_SIZE = 512
XSAVE_HDR_OFFSET = 512
_SW_RESERVED = 464
XCR0_OFFSET = 464


def xstate_bv(area: bytes) -> int:
    """XSTATE_BV: which components are present in the area."""
    return struct.unpack_from("<Q", area, XSAVE_HDR_OFFSET)[0] if len(area) >= XSAVE_HDR_OFFSET + 8 else 0


def xcr0(area: bytes) -> int:
    """The enabled-features mask (XCR0) the kernel stores at byte 464 of a *ptrace* XSTATE area
    (USER_XSTATE_XCR0_WORD, asm/user.h); signal frames use a different layout there (:func:`sw_reserved`)."""
    return struct.unpack_from("<Q", area, XCR0_OFFSET)[0]


def sw_reserved(area: bytes) -> dict[str, int]:
    """The kernel's ``_fpx_sw_bytes``: magic1, extended_size, xfeatures, xstate_size."""
    magic1, ext, feats, size = struct.unpack_from("<IIQI", area, _SW_RESERVED)
    return {"magic1": magic1, "extended_size": ext, "xfeatures": feats, "xstate_size": size}


def mxcsr(area: bytes) -> int:
    """MXCSR from the legacy area."""
    return struct.unpack_from("<I", area, 24)[0]


def split_legacy(area: bytes) -> tuple[bytes, bytes]:
    """(FXSAVE 512 bytes, the rest): CRIU's images store the legacy part and the extended part separately."""
    return area[:FXSAVE_SIZE], area[FXSAVE_SIZE:]


# XSAVE components carried by CRIU's user_x86_xsave_entry: bit → (image field, element format, size in bytes).
COMPONENTS: dict[int, tuple[str, str, int]] = {
    2: ("ymmh_space", "I", 256),
    3: ("bndreg_state", "Q", 64),
    4: ("bndcsr_state", "Q", 64),
    5: ("opmask_reg", "Q", 64),
    6: ("zmm_upper", "Q", 512),
    7: ("hi16_zmm", "Q", 1024),
    9: ("pkru", "I", 8),
}
# Standard-format offsets as Intel CPUs report them in CPUID leaf 0xD (fixed, with the MPX hole).
_INTEL_OFFSETS = {2: 576, 3: 960, 4: 1024, 5: 1088, 6: 1152, 7: 1664, 9: 2688}


def component_offsets(xfeatures: int, size: int) -> dict[int, int]:
    """Offsets of the user components in the standard-format area of ``size`` bytes.

    The kernel's uabi buffer uses the CPUID offsets. AMD CPUs pack the enabled components in order (2,432 bytes
    with AVX-512 and no PKRU on the project's machine); Intel keeps fixed offsets with holes. The packed guess is
    used when it accounts for ``size`` exactly, else Intel's table.
    """
    present = [b for b in sorted(COMPONENTS) if xfeatures & (1 << b)]
    packed: dict[int, int] = {}
    off = XSAVE_HDR_OFFSET + 64
    for b in present:
        packed[b] = off
        off += COMPONENTS[b][2]
    if off == size:
        return packed
    return {b: _INTEL_OFFSETS[b] for b in present if _INTEL_OFFSETS[b] + COMPONENTS[b][2] <= size}


def fpregs_fields(area: bytes) -> tuple[dict[str, object], dict[str, object]]:
    """Split an NT_X86_XSTATE area into CRIU's ``user_x86_fpregs_entry`` fields and its ``xsave`` fields.

    The legacy part follows ``struct user_i387_struct`` (asm/user_64.h): u16 cwd, swd, twd, fop; u64 rip, rdp;
    u32 mxcsr, mxcsr_mask; u32 st_space[32]; u32 xmm_space[64].
    """
    cwd, swd, twd, fop, rip, rdp, mx, mxmask = struct.unpack_from("<HHHHQQII", area, 0)
    fp: dict[str, object] = {
        "cwd": cwd,
        "swd": swd,
        "twd": twd,
        "fop": fop,
        "rip": rip,
        "rdp": rdp,
        "mxcsr": mx,
        "mxcsr_mask": mxmask,
        "st_space": list(struct.unpack_from("<32I", area, 32)),
        "xmm_space": list(struct.unpack_from("<64I", area, 160)),
    }
    xs: dict[str, object] = {"xstate_bv": xstate_bv(area)}
    if len(area) > FXSAVE_SIZE:
        feats = xcr0(area)
        for bit, off in component_offsets(feats, len(area)).items():
            name, fmt, size = COMPONENTS[bit]
            xs[name] = list(struct.unpack_from(f"<{size // struct.calcsize(fmt)}{fmt}", area, off))
    return fp, xs


def xstate_from_fields(template: bytes, fp: dict[str, object], xs: dict[str, object] | None) -> bytes:
    """Build an NT_X86_XSTATE area for PTRACE_SETREGSET from image fields (the inverse of :func:`fpregs_fields`).

    ``template`` is an area read from the task being restored (same CPU): it gives the size and the
    software-reserved bytes. Components absent from ``xs`` keep the template's content.
    """
    area = bytearray(template)
    struct.pack_into(
        "<HHHHQQII",
        area,
        0,
        fp["cwd"],
        fp["swd"],
        fp["twd"],
        fp["fop"],
        fp["rip"],
        fp["rdp"],
        fp["mxcsr"],
        fp["mxcsr_mask"],
    )
    struct.pack_into("<32I", area, 32, *fp["st_space"])  # type: ignore[misc]
    struct.pack_into("<64I", area, 160, *fp["xmm_space"])  # type: ignore[misc]
    if xs and len(area) > FXSAVE_SIZE:
        struct.pack_into("<Q", area, XSAVE_HDR_OFFSET, int(xs["xstate_bv"]))  # type: ignore[call-overload]
        feats = xcr0(template)
        for bit, off in component_offsets(feats, len(area)).items():
            name, fmt, size = COMPONENTS[bit]
            values = xs.get(name)
            if values:
                struct.pack_into(f"<{size // struct.calcsize(fmt)}{fmt}", area, off, *values)  # type: ignore[misc]
    return bytes(area)
