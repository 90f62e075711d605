"""Find uprobe probe sites in a task's code by comparing its private copies of code pages with the mapped file.

When a uprobe is installed in a task, the kernel COW-copies the code page that holds the probed instruction and
writes into the copy (``uprobe_write_opcode``):

* an ``int3`` (0xcc) over the instruction's first byte: the ordinary probe, whose displaced instruction runs out
  of line in the ``[uprobes]`` page or is emulated;
* on Linux 6.18+, for a probe on a 5-byte nop (``0f 1f 44 00 00``, the USDT site), after the first hit: a
  ``call rel32`` (``e8 xx xx xx xx``) into the ``[uprobes-trampoline]`` page, the "optimised" uprobe.

Only pages that are anonymous in ``/proc/PID/pagemap`` can differ from the file, so only they are read. The task
must be stopped (it is frozen during a dump).
"""

from __future__ import annotations

import os
import struct

from criu_core.records import dataclass

__all__ = [
    "PAGE_SIZE",
    "MapLine",
    "ProbeSite",
    "TextDiff",
    "parse_maps",
    "scan_text",
    "stack_refs",
    "thread_regs",
    "write_text",
]

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
INT3 = 0xCC
CALL_REL32 = 0xE8
NOP5 = bytes.fromhex("0f1f440000")

# /proc/PID/pagemap (Documentation/admin-guide/mm/pagemap.rst): bit 63 present, 62 swapped, 61 file-page or
# shared-anon. A present or swapped page without bit 61 in a private file mapping is the task's own copy.
_PM_PRESENT = 1 << 63
_PM_SWAP = 1 << 62
_PM_FILE = 1 << 61


@dataclass(frozen=True)
class MapLine:
    """One line of /proc/PID/maps."""

    start: int
    end: int
    perms: str
    pgoff: int
    dev: str
    inode: int
    name: str

    @property
    def is_file(self) -> bool:
        return self.inode != 0 and self.name.startswith("/")


@dataclass(frozen=True)
class ProbeSite:
    """A probe site in a task's code: ``kind`` is ``"int3"`` or ``"call"`` (optimised, into ``target``).

    ``original`` holds the file's bytes at the site (1 byte for int3, 5 for a call); ``path``/``file_offset``
    name the place in the file, as uprobe_events does.
    """

    addr: int
    kind: str
    original: bytes
    path: str
    file_offset: int
    target: int = 0


@dataclass
class TextDiff:
    """The result of :func:`scan_text`: probe sites, and addresses of differences that are no probe site."""

    sites: list[ProbeSite]
    other: list[int]

    def calls_into(self, start: int, end: int) -> list[ProbeSite]:
        return [s for s in self.sites if s.kind == "call" and start <= s.target < end]


def parse_maps(pid: int, proc: str = "/proc") -> list[MapLine]:
    out = []
    with open(f"{proc}/{pid}/maps") as f:
        for line in f:
            parts = line.split(maxsplit=5)
            start, end = (int(x, 16) for x in parts[0].split("-"))
            name = parts[5].rstrip("\n") if len(parts) > 5 else ""
            out.append(MapLine(start, end, parts[1], int(parts[2], 16), parts[3], int(parts[4]), name))
    return out


def _own_pages(pid: int, start: int, end: int, proc: str) -> list[int]:
    """Addresses of the pages in [start, end) that are the task's own (anonymous) copies."""
    npages = (end - start) // PAGE_SIZE
    with open(f"{proc}/{pid}/pagemap", "rb") as f:
        f.seek(start // PAGE_SIZE * 8)
        raw = f.read(npages * 8)
    out = []
    for i, entry in enumerate(struct.unpack(f"<{len(raw) // 8}Q", raw)):
        if entry & (_PM_PRESENT | _PM_SWAP) and not entry & _PM_FILE:
            out.append(start + i * PAGE_SIZE)
    return out


def scan_text(pid: int, maps: list[MapLine] | None = None, proc: str = "/proc") -> TextDiff:
    """Compare every private copy of a page of an executable file mapping of ``pid`` with the file.

    A differing byte is an int3 site if the task holds 0xcc there; five differing bytes are an optimised site
    if the task holds ``e8 rel32`` where the file holds a 5-byte nop. Every other difference (a JIT, a debugger's
    breakpoint, self-modifying code) is reported in ``other``.
    """
    maps = maps if maps is not None else parse_maps(pid, proc)
    sites: list[ProbeSite] = []
    other: list[int] = []
    with open(f"{proc}/{pid}/mem", "rb", buffering=0) as mem:
        for m in maps:
            if not (m.is_file and "x" in m.perms and m.perms[3] == "p"):
                continue
            pages = _own_pages(pid, m.start, m.end, proc)
            if not pages:
                continue
            try:
                fd = os.open(m.name, os.O_RDONLY)
            except OSError:
                other.extend(pages)  # the file is gone: nothing to compare with
                continue
            try:
                for page in pages:
                    foff = m.pgoff + (page - m.start)
                    orig = os.pread(fd, PAGE_SIZE, foff).ljust(PAGE_SIZE, b"\0")
                    mem.seek(page)
                    cur = mem.read(PAGE_SIZE)
                    if cur != orig:
                        _diff_page(page, cur, orig, m.name, foff, sites, other)
            finally:
                os.close(fd)
    return TextDiff(sites, other)


def _diff_page(
    page: int, cur: bytes, orig: bytes, path: str, foff: int, sites: list[ProbeSite], other: list[int]
) -> None:
    i = 0
    while i < PAGE_SIZE:
        if cur[i] == orig[i]:
            i += 1
            continue
        addr = page + i
        if cur[i] == CALL_REL32 and orig[i : i + 5] == NOP5 and i + 5 <= PAGE_SIZE:
            rel = struct.unpack_from("<i", cur, i + 1)[0]
            sites.append(ProbeSite(addr, "call", orig[i : i + 5], path, foff + i, addr + 5 + rel))
            i += 5
        elif cur[i] == INT3:
            sites.append(ProbeSite(addr, "int3", orig[i : i + 1], path, foff + i))
            i += 1
        else:
            other.append(addr)
            i += 1


def thread_regs(pid: int, proc: str = "/proc") -> dict[int, tuple[int, int]]:
    """``{tid: (sp, pc)}`` for every stopped thread of ``pid``, from /proc/PID/task/TID/syscall.

    The file ends with ``SP PC`` for a thread that is not running (``running`` otherwise: left out).
    """
    out: dict[int, tuple[int, int]] = {}
    for tid in os.listdir(f"{proc}/{pid}/task"):
        try:
            with open(f"{proc}/{pid}/task/{tid}/syscall") as f:
                parts = f.read().split()
        except OSError:
            continue
        if len(parts) >= 3 and parts[0] != "running":
            out[int(tid)] = (int(parts[-2], 16), int(parts[-1], 16))
    return out


def stack_refs(pid: int, sp: int, start: int, end: int, maps: list[MapLine], proc: str = "/proc") -> list[int]:
    """Addresses of 8-byte words between ``sp`` and the end of its mapping whose value lies in [start, end).

    A return address or a signal frame's saved pc pointing there is among them (so may be some unrelated data:
    callers treat a hit conservatively).
    """
    vma = next((m for m in maps if m.start <= sp < m.end), None)
    if vma is None:
        return []
    base = sp & ~7
    with open(f"{proc}/{pid}/mem", "rb", buffering=0) as mem:
        mem.seek(base)
        try:
            data = mem.read(vma.end - base)
        except OSError:
            return []
    words = struct.unpack(f"<{len(data) // 8}Q", data[: len(data) // 8 * 8])
    return [base + 8 * i for i, w in enumerate(words) if start <= w < end]


def write_text(pid: int, addr: int, data: bytes, proc: str = "/proc") -> None:
    """Write ``data`` into the stopped task's memory at ``addr`` (a forced write: code pages are not writable)."""
    with open(f"{proc}/{pid}/mem", "r+b", buffering=0) as mem:
        mem.seek(addr)
        if mem.write(data) != len(data):
            raise OSError(f"short write to {pid}:{addr:x}")
