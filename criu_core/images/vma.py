"""VMA status bits of ``vma_entry.status`` (``criu/include/image.h``, images reference §3.4).

Pure data, no protobuf import: the dumper sets these bits, the restore plan and the built-in memory handlers
read them, and ``crit show`` names them. Bits 27..31 are CRIU's in-memory bookkeeping; only ``VMA_UNSUPP``
is listed, because crit names it.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ANON_NAME_MAX",
    "VMA_ANON_PRIVATE",
    "VMA_ANON_SHARED",
    "VMA_AREA_AIORING",
    "VMA_AREA_GUARD",
    "VMA_AREA_HEAP",
    "VMA_AREA_MEMFD",
    "VMA_AREA_REGULAR",
    "VMA_AREA_SHSTK",
    "VMA_AREA_SOCKET",
    "VMA_AREA_STACK",
    "VMA_AREA_SYSVIPC",
    "VMA_AREA_UPROBES",
    "VMA_AREA_VDSO",
    "VMA_AREA_VSYSCALL",
    "VMA_AREA_VVAR",
    "VMA_FILE_PRIVATE",
    "VMA_FILE_SHARED",
    "VMA_STATUS_NAMES",
    "VMA_UNSUPP",
    "anon_name_problem",
    "cow_key",
]

VMA_AREA_REGULAR = 1 << 0
VMA_AREA_STACK = 1 << 1
VMA_AREA_VSYSCALL = 1 << 2
VMA_AREA_VDSO = 1 << 3
VMA_AREA_HEAP = 1 << 5
VMA_FILE_PRIVATE = 1 << 6
VMA_FILE_SHARED = 1 << 7
VMA_ANON_SHARED = 1 << 8
VMA_ANON_PRIVATE = 1 << 9
VMA_AREA_SYSVIPC = 1 << 10
VMA_AREA_SOCKET = 1 << 11
VMA_AREA_VVAR = 1 << 12
VMA_AREA_AIORING = 1 << 13
VMA_AREA_MEMFD = 1 << 14
VMA_AREA_SHSTK = 1 << 15
VMA_AREA_GUARD = 1 << 16
VMA_AREA_UPROBES = 1 << 17
VMA_UNSUPP = 1 << 31

# (name, bit) in bit order, for flag decoding (``crit show``).
VMA_STATUS_NAMES: tuple[tuple[str, int], ...] = tuple(
    (name, value) for name, value in globals().items() if name.startswith(("VMA_AREA_", "VMA_FILE_", "VMA_ANON_"))
) + (("VMA_UNSUPP", VMA_UNSUPP),)

# Status bits of private anonymous VMAs that are not plain memory (kernel, device or special mappings).
_NOT_PLAIN_ANON = (VMA_AREA_VSYSCALL | VMA_AREA_VDSO | VMA_AREA_SYSVIPC | VMA_AREA_SOCKET | VMA_AREA_VVAR
                   | VMA_AREA_AIORING | VMA_AREA_MEMFD | VMA_AREA_SHSTK | VMA_AREA_GUARD | VMA_AREA_UPROBES)


def cow_key(entry: Any, name: str | None = None) -> tuple[Any, ...] | None:
    """What must be equal for a child to keep, copy-on-write, the VMA it inherits from its parent at restore:
    range, protection, flags, status and ``[anon:NAME]`` name (``name``: kept in criu-core-PID.img, not in the
    vma_entry) of a plain private anonymous VMA; None for any other VMA.

    The restore (builtin/cow_restore.py) keeps a child's VMA whose key equals its parent's, and the dump
    (--dedup-cow-pages) leaves out of the images only pages that lie in such a VMA.
    """
    if entry.status & (VMA_ANON_PRIVATE | _NOT_PLAIN_ANON) != VMA_ANON_PRIVATE:
        return None
    return (entry.start, entry.end, entry.prot, entry.flags, entry.status, name)


# PR_SET_VMA_ANON_NAME (mm/madvise.c): at most 79 bytes (ANON_VMA_NAME_MAX_LEN 80 with the NUL), printable
# ASCII without these characters.
ANON_NAME_MAX = 79
_ANON_NAME_BAD = set("\\`$[]")


def anon_name_problem(name: str | bytes) -> str | None:
    """Why the kernel would refuse ``name`` for PR_SET_VMA_ANON_NAME, or None if it is a valid VMA name.
    (protobuf hands a proto2 string that is not UTF-8 back as bytes.)"""
    if not isinstance(name, str):
        return "is not UTF-8 text"
    if len(name.encode()) > ANON_NAME_MAX:
        return f"longer than {ANON_NAME_MAX} bytes"
    for ch in name:
        if not 0x20 <= ord(ch) < 0x7F or ch in _ANON_NAME_BAD:
            return f"holds the character {ch!r}"
    return None
