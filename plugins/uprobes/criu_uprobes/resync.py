"""Restore: bring uprobe breakpoints in restored code pages in line with the probes registered *now*.

A dump with ``--allow-uprobes`` keeps every code page the kernel had copied to put a breakpoint in, int3
included. If the probe is gone at restore, the restored task's next pass over the site gets SIGTRAP with
``si_code`` SI_KERNEL (0x80) and, by default, dies; if a probe was added after the dump on such a page, the
restored page has no breakpoint and the probe never fires in that task. CRIU 4.2 does neither better.

Which breakpoints the kernel would install in this file's code right now is something it tells anyone who maps
the file: ``uprobe_mmap()`` writes an int3 for every registered probe into a new private executable mapping.
So the restorer maps the file's page into itself (a scratch mapping that it never executes) and compares:

* the restored byte is int3, the file's is not, the scratch page has no int3: a stale breakpoint, the file's
  byte is put back;
* the scratch page has int3 where the restored page holds the file's byte: a probe registered since the dump,
  the breakpoint is put in (the kernel had installed it when the core mapped the file, and the core's page
  write overwrote it).

Only pages whose differences from the file are all breakpoints are touched: a page the task changed itself
(a JIT, a debugger's breakpoint) is left as dumped. Behind the plugin's ``--uprobes-resync`` restore option.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from criu_uprobes.textscan import INT3, PAGE_SIZE, MapLine, parse_maps, write_text

if TYPE_CHECKING:
    from criu_core.context import RestoreContext
    from criu_core.resources import VmaImage

__all__ = ["ResyncReport", "resync_range", "resync_vma"]

PROT_EXEC = 0x4  # sys/mman.h


@dataclass
class ResyncReport:
    """What :func:`resync_range` did: addresses whose stale int3 was removed, whose new int3 was put in, and
    pages left alone because they differ from the file in other ways."""

    removed: list[int] = field(default_factory=list)
    added: list[int] = field(default_factory=list)
    skipped_pages: list[int] = field(default_factory=list)


def resync_range(pid: int, start: int, end: int, proc: str = "/proc") -> ResyncReport:
    """Resync breakpoints in the executable private file mappings of stopped task ``pid`` within [start, end)."""
    report = ResyncReport()
    for m in parse_maps(pid, proc):
        lo, hi = max(m.start, start), min(m.end, end)
        if lo >= hi or not (m.is_file and "x" in m.perms and m.perms[3] == "p"):
            continue
        _resync_mapping(pid, m, lo, hi, proc, report)
    return report


def resync_vma(ctx: RestoreContext, vma: VmaImage, proc: str = "/proc") -> ResyncReport:
    """The ``criu_vma_pages_restore`` step: resync one restored VMA (executable ones only), log what changed."""
    if not vma.entry.prot & PROT_EXEC:
        return ResyncReport()
    report = resync_range(vma.pid, vma.entry.start, vma.entry.end, proc)
    for addr in report.removed:
        ctx.log.info("uprobes: removed a stale breakpoint at %x of task %d", addr, vma.pid)
    for addr in report.added:
        ctx.log.info("uprobes: put in the breakpoint of a probe added since the dump at %x of task %d", addr, vma.pid)
    for page in report.skipped_pages:
        ctx.log.debug(
            "uprobes: page %x of task %d differs from its file beyond breakpoints: left as dumped", page, vma.pid
        )
    return report


def _resync_mapping(pid: int, m: MapLine, lo: int, hi: int, proc: str, report: ResyncReport) -> None:
    fd = os.open(m.name, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        with open(f"{proc}/{pid}/mem", "rb", buffering=0) as mem:
            for page in range(lo & ~(PAGE_SIZE - 1), hi, PAGE_SIZE):
                foff = m.pgoff + (page - m.start)
                if foff >= size:
                    break
                orig = os.pread(fd, PAGE_SIZE, foff).ljust(PAGE_SIZE, b"\0")
                mem.seek(page)
                cur = mem.read(PAGE_SIZE)
                diffs = [i for i in range(PAGE_SIZE) if cur[i] != orig[i]] if cur != orig else []
                if any(cur[i] != INT3 for i in diffs):
                    report.skipped_pages.append(page)
                    continue
                now = _kernel_view(fd, foff)
                for i in diffs:
                    if now[i] != INT3:  # no probe behind this breakpoint any more
                        write_text(pid, page + i, orig[i : i + 1], proc)
                        report.removed.append(page + i)
                for i in range(PAGE_SIZE):
                    if now[i] == INT3 and orig[i] != INT3 and cur[i] == orig[i]:
                        write_text(pid, page + i, bytes([INT3]), proc)
                        report.added.append(page + i)
    finally:
        os.close(fd)


def _kernel_view(fd: int, foff: int) -> bytes:
    """The file page as a new private executable mapping of it shows it: with the breakpoints of every probe
    registered now (``uprobe_mmap`` installs them at mmap time; this process never runs that code)."""
    with mmap.mmap(fd, PAGE_SIZE, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_EXEC, offset=foff) as scratch:
        return bytes(scratch[:PAGE_SIZE])
