"""VMA status bits of ``vma_entry.status`` (``criu/include/image.h``, images reference §3.4).

Pure data, no protobuf import: the dumper sets these bits, the restore plan and the built-in memory handlers
read them, and ``crit show`` names them. Bits 27..31 are CRIU's in-memory bookkeeping; only ``VMA_UNSUPP``
is listed, because crit names it.
"""

from __future__ import annotations

__all__ = [
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
