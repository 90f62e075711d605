"""XSAVE area helpers (``NT_X86_XSTATE`` regset).

The layout is the standard-format XSAVE area (Intel SDM vol. 1, 13.4): 512 bytes of legacy FXSAVE state, a
64-byte XSAVE header whose first u64 is XSTATE_BV, then the extended components. Its size depends on the CPU's
enabled features (2,432 bytes on the project's machine with AVX-512); always size buffers from what
PTRACE_GETREGSET returned. The 48 software-reserved bytes at offset 464 hold ``xstate_bv``/``xstate_size``
as written by the kernel (``struct _fpx_sw_bytes``, asm/sigcontext.h).
"""

from __future__ import annotations

import struct

__all__ = ["FXSAVE_SIZE", "XSAVE_HDR_OFFSET", "mxcsr", "split_legacy", "sw_reserved", "xstate_bv"]

FXSAVE_SIZE = 512
XSAVE_HDR_OFFSET = 512
_SW_RESERVED = 464


def xstate_bv(area: bytes) -> int:
    """XSTATE_BV: which components are present in the area."""
    return struct.unpack_from("<Q", area, XSAVE_HDR_OFFSET)[0] if len(area) >= XSAVE_HDR_OFFSET + 8 else 0


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
