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
from array import array
from bisect import bisect_right
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

__all__ = [
    "PAGE_SIZE",
    "PE_LAZY",
    "PE_PRESENT",
    "PageRun",
    "PageSelector",
    "PfnSnapshot",
    "copy_pages",
    "read_shared_by_mem",
    "split_shared_with_parent",
    "zero_pfn",
]

PAGE_SIZE = mmap.PAGESIZE
PE_LAZY = 2
PE_PRESENT = 4
_BOUNCE = 4 << 20
PM_MMAP_EXCLUSIVE = 1 << 56  # /proc/PID/pagemap: the page is mapped once (fs/proc/task_mmu.c)
_CHUNK_PAGES = 1 << 16


@dataclass(frozen=True)
class PageRun:
    """``npages`` consecutive pages at ``start`` to dump with pagemap ``flags``; ``readable`` says whether
    process_vm_readv can read them (else /proc/PID/mem is used). ``in_parent`` runs are not copied: they are
    the parent process's own pages (--dedup-cow-pages): not in the pagemap, listed in criu-core-PID.img."""

    start: int
    npages: int
    flags: int
    readable: bool = True
    in_parent: bool = False

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


class PfnSnapshot:
    """The physical page numbers of some pages of a process (0: not present), read before its pages are copied.

    Copying is why: process_vm_readv pins the pages it reads (FOLL_PIN), and since Linux 5.19 pinning an
    anonymous page that is shared copy-on-write unshares it first (the pinned task gets its own copy, same
    content). The dump reads such pages through /proc/PID/mem instead (:func:`read_shared_by_mem`), but the
    sharing that counts is the one before any copy, whatever path the copy takes.
    """

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._pfns: list[array] = []

    def add(self, fd: int, runs: Iterable[PageRun]) -> None:
        """Record the PFNs of ``runs`` (in address order, after those already added) from pagemap ``fd``."""
        for run in runs:
            pfns = array("Q")
            addr = run.start
            while addr < run.end:
                n = min(_CHUNK_PAGES, (run.end - addr) // PAGE_SIZE)
                pfns.extend(pme & PM_PFN_MASK if pme & PM_PRESENT else 0 for pme in read_pagemap(fd, addr, n))
                addr += n * PAGE_SIZE
            self._starts.append(run.start)
            self._pfns.append(pfns)

    def pfns(self, start: int, npages: int) -> array:
        """PFNs of ``npages`` pages from ``start``; 0 for a page not recorded."""
        out = array("Q", bytes(8 * npages))
        end = start + npages * PAGE_SIZE
        i = max(0, bisect_right(self._starts, start) - 1)
        while i < len(self._starts) and self._starts[i] < end:
            s, pf = self._starts[i], self._pfns[i]
            lo, hi = max(s, start), min(s + len(pf) * PAGE_SIZE, end)
            if lo < hi:
                a, b = (lo - s) // PAGE_SIZE, (hi - s) // PAGE_SIZE
                out[(lo - start) // PAGE_SIZE : (hi - start) // PAGE_SIZE] = pf[a:b]
            i += 1
        return out


def split_shared_with_parent(runs: Iterable[PageRun], fd: int, parent: PfnSnapshot) -> list[PageRun]:
    """Mark ``in_parent`` the pages of ``runs`` that are the very same physical pages as the parent's at the same
    addresses, i.e. still shared copy-on-write since fork(): same PFN in this process's pagemap (``fd``) as
    in the parent's snapshot, taken before the parent's pages were copied (see :class:`PfnSnapshot`). Both
    processes are frozen, so no write happened in between; PFNs read as 0 without CAP_SYS_ADMIN, and then
    nothing is shared; a page swapped out in either is kept in the child's images.

    CRIU 4.2 has no such thing: it stores each process's pages and finds the sharing again at restore by
    comparing contents (restore_priv_vma_content); see builtin/cow_restore.py.
    """
    out: list[PageRun] = []

    def add(addr: int, n: int, flags: int, readable: bool, in_parent: bool) -> None:
        last = out[-1] if out else None
        if last and last.end == addr and last.in_parent == in_parent and last.flags == flags:
            out[-1] = PageRun(last.start, last.npages + n, flags, readable, in_parent)
        else:
            out.append(PageRun(addr, n, flags, readable, in_parent))

    for run in runs:
        addr = run.start
        while addr < run.end:
            n = min(_CHUNK_PAGES, (run.end - addr) // PAGE_SIZE)
            theirs = parent.pfns(addr, n)
            shared = [
                pme & PM_PRESENT != 0 and 0 != pme & PM_PFN_MASK == theirs[i]
                for i, pme in enumerate(read_pagemap(fd, addr, n))
            ]
            i = 0
            while i < n:  # one run per stretch of pages that are all shared, or all not
                j = i + 1
                while j < n and shared[j] == shared[i]:
                    j += 1
                add(addr + i * PAGE_SIZE, j - i, 0 if shared[i] else run.flags, run.readable, shared[i])
                i = j
            addr += n * PAGE_SIZE
    return out


def read_shared_by_mem(runs: Iterable[PageRun], fd: int) -> list[PageRun]:
    """``runs`` with their pages mapped by more than one process (shared copy-on-write since a fork) marked
    not ``readable``, so that copy_pages reads them through /proc/PID/mem.

    process_vm_readv pins the pages it reads (FOLL_PIN), and since Linux 5.19 pinning an anonymous page that
    is shared copy-on-write first unshares it: the dumped task gets a copy of its own. A tree left running
    after the dump (or dumped twice) would lose its sharing and grow by as much, and every shared page would
    be copied twice. /proc/PID/mem only takes references (FOLL_GET), which leaves the sharing alone. ``fd``
    is the process's /proc/PID/pagemap.
    """
    out: list[PageRun] = []

    def add(addr: int, n: int, run: PageRun, readable: bool) -> None:
        last = out[-1] if out else None
        if last and last.end == addr and last.readable == readable and last.flags == run.flags:
            out[-1] = PageRun(last.start, last.npages + n, run.flags, readable, run.in_parent)
        else:
            out.append(PageRun(addr, n, run.flags, readable, run.in_parent))

    for run in runs:
        if not run.readable or run.in_parent:
            out.append(run)
            continue
        addr = run.start
        while addr < run.end:
            n = min(_CHUNK_PAGES, (run.end - addr) // PAGE_SIZE)
            pmes = read_pagemap(fd, addr, n)
            i = 0
            while i < n:
                shared = pmes[i] & (PM_PRESENT | PM_MMAP_EXCLUSIVE) == PM_PRESENT
                j = i + 1
                while j < n and (pmes[j] & (PM_PRESENT | PM_MMAP_EXCLUSIVE) == PM_PRESENT) == shared:
                    j += 1
                add(addr + i * PAGE_SIZE, j - i, run, not shared)
                i = j
            addr += n * PAGE_SIZE
    return out


def copy_pages(task: RemoteTask, runs: Iterable[PageRun], out: BinaryIO, progress: Progress | None = None) -> int:
    """Copy ``runs`` of ``task``'s process into ``out`` in order; returns the number of pages written."""
    runs = list(runs)
    # No bigger than what there is to read: zeroing and faulting in 4 MiB costs milliseconds for a tiny task.
    cap = min(_BOUNCE, sum(r.end - r.start for r in runs if r.readable)) or 1
    buf = bytearray(cap)
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
            n = min(cap - filled, run.end - addr)
            pending.append((addr, n))
            filled += n
            addr += n
            if filled == cap or len(pending) == IOV_MAX:
                flush()
        written += run.npages
    flush()
    return written
