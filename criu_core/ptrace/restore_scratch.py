"""A scratch area inside a seed being restored: where injected syscalls find their in-memory arguments.

PR_SET_MM_MAP's struct and auxv, paths for openat, sigactions, itimervals... must live in the *target's*
memory (P1), so the restorer keeps one RWX area there, at an address free in both the seed's layout and the
dumped one, and bump-allocates argument blocks in it. Its first bytes hold ``syscall; int3`` (0f 05 cc): a
syscall instruction that survives the seed's big munmap and the vdso move, so injection never depends on a
mapping that is being changed (P3/step 4 of the validated restore order).
"""

from __future__ import annotations

from typing import Any

__all__ = ["SCRATCH_SIZE", "SYSCALL_TRAMPOLINE", "Scratch", "find_free_area"]

PAGE = 4096
SCRATCH_SIZE = 16 * PAGE
SYSCALL_TRAMPOLINE = b"\x0f\x05\xcc"  # syscall; int3
TASK_SIZE = 0x7FFFFFFFF000  # x86_64 user address limit with 4-level paging
_MIN_ADDR = 0x10000  # above vm.mmap_min_addr


def find_free_area(size: int, busy: list[tuple[int, int]], *, hint: int = 0x100000000) -> int:
    """The lowest page-aligned address >= ``hint`` where ``size`` bytes overlap no (start, end) range in ``busy``,
    keeping a page of distance so the area never merges with, or becomes the guard gap of, a neighbour."""
    addr = max(hint, _MIN_ADDR)
    for start, end in sorted(busy):
        if end + PAGE <= addr:
            continue
        if addr + size + PAGE <= start:
            break
        addr = max(addr, (end + PAGE + PAGE - 1) & ~(PAGE - 1))
    if addr + size > TASK_SIZE:
        raise ValueError(f"no free area of {size} bytes in the address space")
    return addr


class Scratch:
    """Bump allocator over ``[addr, addr + size)`` in ``remote``; the first 16 bytes hold the trampoline."""

    def __init__(self, remote: Any, addr: int, size: int = SCRATCH_SIZE) -> None:
        self.remote = remote
        self.addr = addr
        self.size = size
        self._head = 16

    @property
    def syscall_ip(self) -> int:
        return self.addr

    def reset(self) -> None:
        """Forget every block handed out (call between independent steps)."""
        self._head = 16

    def alloc(self, n: int, align: int = 16) -> int:
        head = (self._head + align - 1) & ~(align - 1)
        if head + n > self.size:
            self.reset()
            head = 16
            if head + n > self.size:
                raise ValueError(f"scratch block of {n} bytes does not fit in {self.size}")
        self._head = head + n
        return self.addr + head

    def put(self, data: bytes, align: int = 16) -> int:
        """Copy ``data`` into the task; returns its address there."""
        at = self.alloc(len(data), align)
        self.remote.write_mem(at, bytes(data))
        return at

    def cstr(self, text: str | bytes) -> int:
        raw = text.encode() if isinstance(text, str) else bytes(text)
        if b"\0" in raw:
            raise ValueError(f"path contains a NUL byte: {raw!r}")
        return self.put(raw + b"\0", 1)

    def read(self, at: int, n: int) -> bytes:
        return self.remote.read_mem(at, n)
