"""Choosing the pages to dump and copying them into pages-N.img.

Selection (reference §3 step 6, images §1.4), per VMA:

* anonymous private: pages present or swapped, except the shared zero page → PE_LAZY|PE_PRESENT;
* private file mapping: pages that differ from the file (present and anonymous, or swapped) → PE_PRESENT;
* ``[vdso]``: every page → PE_PRESENT;
* shared mappings, ``[vvar]``, ``[vsyscall]``: nothing.

PAGEMAP_SCAN (Linux 6.7+) returns only populated runs, so sparse multi-TiB MAP_NORESERVE areas cost what their
populated part costs, and it reports the zero page itself (PAGE_IS_PFNZERO). Older kernels fall back to reading
``/proc/PID/pagemap`` in chunks and comparing PFNs with the zero page's (readable as root).

The copy goes through process_vm_readv into a reused 4 MiB bounce buffer (up to 1024 remote iovecs per call),
then ``write`` to the image; ranges process_vm_readv cannot read (PROT_NONE, EFAULT) go through /proc/PID/mem.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterable
from typing import BinaryIO

from criu_core.errors import SyscallError
from criu_core.progress import Progress
from criu_core.ptrace import RemoteTask
from criu_core.records import dataclass
from criu_core.sys.memory import IOV_MAX, buffer_address, process_vm_readv
from criu_core.sys.pagemap import (
    PAGE_IS_FILE,
    PAGE_IS_PFNZERO,
    PAGE_IS_PRESENT,
    PAGE_IS_SWAPPED,
    PM_FILE,
    PM_PFN_MASK,
    PM_PRESENT,
    PM_SWAP,
    pagemap_scan,
    read_pagemap,
)

__all__ = ["PAGE_SIZE", "PE_LAZY", "PE_PRESENT", "PageRun", "PageSelector", "copy_pages", "zero_pfn"]

PAGE_SIZE = mmap.PAGESIZE
PE_LAZY = 2
PE_PRESENT = 4
_BOUNCE = 4 << 20
_CHUNK_PAGES = 1 << 16


@dataclass(frozen=True)
class PageRun:
    """``npages`` consecutive pages at ``start`` to dump with pagemap ``flags``; ``readable`` says whether
    process_vm_readv can read them (else /proc/PID/mem is used)."""

    start: int
    npages: int
    flags: int
    readable: bool = True

    @property
    def end(self) -> int:
        return self.start + self.npages * PAGE_SIZE


_zero_pfn: int | None = None


def zero_pfn() -> int:
    """PFN of the kernel's shared zero page (read a never-written anonymous page of our own)."""
    global _zero_pfn
    if _zero_pfn is None:
        m = mmap.mmap(-1, PAGE_SIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        try:
            _ = m[0]
            addr = buffer_address(m)
            fd = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
            try:
                (entry,) = read_pagemap(fd, addr, 1)
            finally:
                os.close(fd)
        finally:
            m.close()
        _zero_pfn = entry & PM_PFN_MASK if entry & PM_PRESENT else -1
    return _zero_pfn


class PageSelector:
    """Selects the pages of one process; keep one per process (it holds its pagemap open)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY | os.O_CLOEXEC)
        self.use_scan = True
        self.scanned = 0

    def close(self) -> None:
        os.close(self.fd)

    def runs(self, start: int, end: int, *, anon: bool, lazy: bool, readable: bool) -> list[PageRun]:
        """The runs to dump in [start, end): ``anon`` selects anonymous-private rules, else private-file rules."""
        self.scanned += (end - start) // PAGE_SIZE
        flags = PE_PRESENT | (PE_LAZY if lazy else 0)
        if self.use_scan:
            try:
                regions = pagemap_scan(self.fd, start, end, pid=self.pid)
            except SyscallError:
                self.use_scan = False
            else:
                out = []
                for s, e, cat in regions:
                    if cat & PAGE_IS_SWAPPED or (
                        cat & PAGE_IS_PRESENT and not cat & PAGE_IS_PFNZERO and (anon or not cat & PAGE_IS_FILE)
                    ):
                        _append(out, s, e, flags, readable)
                return out
        return self._runs_classic(start, end, anon=anon, flags=flags, readable=readable)

    def _runs_classic(self, start: int, end: int, *, anon: bool, flags: int, readable: bool) -> list[PageRun]:
        zpfn = zero_pfn()
        out: list[PageRun] = []
        addr = start
        while addr < end:
            n = min(_CHUNK_PAGES, (end - addr) // PAGE_SIZE)
            for i, pme in enumerate(read_pagemap(self.fd, addr, n)):
                take = bool(pme & PM_SWAP) or (
                    bool(pme & PM_PRESENT) and (pme & PM_PFN_MASK) != zpfn and (anon or not pme & PM_FILE)
                )
                if take:
                    a = addr + i * PAGE_SIZE
                    _append(out, a, a + PAGE_SIZE, flags, readable)
            addr += n * PAGE_SIZE
        return out


def _append(out: list[PageRun], s: int, e: int, flags: int, readable: bool) -> None:
    if out and out[-1].end == s and out[-1].flags == flags:
        prev = out[-1]
        out[-1] = PageRun(prev.start, prev.npages + (e - s) // PAGE_SIZE, flags, readable)
    else:
        out.append(PageRun(s, (e - s) // PAGE_SIZE, flags, readable))


def copy_pages(task: RemoteTask, runs: Iterable[PageRun], out: BinaryIO, progress: Progress | None = None) -> int:
    """Copy ``runs`` of ``task``'s process into ``out`` in order; returns the number of pages written."""
    buf = bytearray(_BOUNCE)
    base = buffer_address(buf)
    view = memoryview(buf)
    pending: list[tuple[int, int]] = []
    filled = 0
    written = 0

    def flush() -> None:
        nonlocal filled
        if not pending:
            return
        try:
            got = process_vm_readv(task.pid, [(base, filled)], pending)
        except SyscallError:
            got = 0
        if got < filled:
            # finish through /proc/PID/mem (FOLL_FORCE), range by range
            off = 0
            for addr, length in pending:
                if off + length > got:
                    skip = max(0, got - off)
                    data = task.read_mem(addr + skip, length - skip)
                    view[off + skip : off + length] = data
                off += length
        out.write(view[:filled])
        if progress is not None:
            progress.advance(filled)
        pending.clear()
        filled = 0

    for run in runs:
        if not run.readable:
            flush()
            addr = run.start
            while addr < run.end:
                n = min(_BOUNCE, run.end - addr)
                out.write(task.read_mem(addr, n))
                addr += n
            written += run.npages
            continue
        addr = run.start
        while addr < run.end:
            n = min(_BOUNCE - filled, run.end - addr)
            pending.append((addr, n))
            filled += n
            addr += n
            if filled == _BOUNCE or len(pending) == IOV_MAX:
                flush()
        written += run.npages
    flush()
    return written
