"""Copy-on-write sharing between a parent and its child, kept across the restore.

A child is forked from its parent seed once the parent's memory is back (VMAs mapped, pages written), so it
inherits the parent's private anonymous VMAs with their physical pages, shared copy-on-write as after the
original fork(). The child then keeps each inherited VMA that it has itself, identical (same range, prot,
flags and status: anonymous private), drops everything else, and writes only the pages whose content differs
from the parent's image (a page the parent has and the child does not is discarded with MADV_DONTNEED).

This is what CRIU's restore does (mem.c, restore_priv_vma_content: it compares the child's pages with the
inherited ones and counts ``pages_compared`` / ``pages_skipped_cow``). CRIU 4.2 stores every task's pages in
its own pagemap, so by default the sharing is found again here, by content.

With criu-core's ``dump --dedup-cow-pages`` the pages that were still the parent's own physical pages at dump
are not in the child's pagemap or pages image but listed in its criu-core-PID.img (``parent_pages``), and the
child simply keeps what it inherited (no compare, no write). Such images name "criu-core-cow-pages" in the
inventory, so CRIU 4.2 refuses them rather than restoring those pages as zeros.
"""

from __future__ import annotations

import mmap
import os
from typing import Any

from criu_core.errors import CriuError
from criu_core.images.pagemap import PAGE_SIZE
from criu_core.images.vma import (
    VMA_AREA_VDSO,
    VMA_AREA_VVAR,
    cow_key,
)
from criu_core.ptrace.restore_scratch import TASK_SIZE
from criu_core.restore_plan import PageRun, TaskState

__all__ = ["inherit_memory", "write_pages_cow"]

PROT_WRITE = 2
MADV_DONTNEED = 4


def inherit_memory(st: TaskState, parent: TaskState) -> dict[int, int]:
    """In a child just forked from ``parent`` (whose memory is built): unmap all but the inherited VMAs the
    child has too, and make those writable where the child gets pages. Returns child VMA index → parent VMA
    index of the kept ones."""
    # only what the built-in handler mapped: a VMA a plugin claimed is offered to the plugins again
    pnames, names = parent.plan.vma_names, st.plan.vma_names
    pvmas = {cow_key(v.entry, pnames.get(v.entry.start)): v for v in parent.plan.vmas if v.index in parent.inheritable}
    pvmas.pop(None, None)
    kept: dict[int, int] = {}
    for v in st.plan.vmas:
        pv = pvmas.get(cow_key(v.entry, names.get(v.entry.start)))
        if pv is not None:
            kept[v.index] = pv.index
    keep = [(st.scratch.addr, st.scratch.addr + st.scratch.size)]
    keep += [(v.entry.start, v.entry.end) for v in parent.plan.vmas
             if v.entry.status & (VMA_AREA_VDSO | VMA_AREA_VVAR) and v.entry.end <= TASK_SIZE]
    keep += [(st.plan.vmas[i].entry.start, st.plan.vmas[i].entry.end) for i in kept]
    remote = st.remote
    cursor = 0
    for start, end in sorted(keep) + [(TASK_SIZE, TASK_SIZE)]:
        if start > cursor:
            remote.syscall("munmap", cursor, start - cursor)
        cursor = max(cursor, end)
    for ci, pi in kept.items():
        e = st.plan.vmas[ci].entry
        has = e.prot | (PROT_WRITE if pi in parent.pages_vmas else 0)
        want = e.prot | (PROT_WRITE if ci in st.pages_vmas else 0)
        if has != want:
            remote.syscall("mprotect", e.start, e.end - e.start, want)
        if has & PROT_WRITE:
            st.pages_vmas |= {ci}  # finish_vmas puts the dumped protection back
    st.inheritable |= set(kept)  # built-in anonymous memory as well: a grandchild may keep it in turn
    return kept


def _pages_by_addr(runs: tuple[PageRun, ...], ranges: list[tuple[int, int]]) -> dict[int, int]:
    """vaddr → file offset of every page of ``runs`` inside ``ranges``."""
    out: dict[int, int] = {}
    for r in runs:
        for s, e in ranges:
            lo, hi = max(r.vaddr, s), min(r.end, e)
            for a in range(lo, hi, PAGE_SIZE):
                out[a] = r.offset + (a - r.vaddr)
    return out


def _addrs(spans: tuple[tuple[int, int], ...], ranges: list[tuple[int, int]]) -> set[int]:
    """Every page address of the (vaddr, nr) ``spans`` that lies inside ``ranges``."""
    return set(_pages_by_addr(tuple(PageRun(a, n, 0) for a, n in spans), ranges))


def _map(path: Any) -> mmap.mmap | None:
    if path is None:
        return None
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        return mmap.mmap(f.fileno(), size, prot=mmap.PROT_READ) if size else None


def write_pages_cow(st: TaskState, parent: TaskState, kept: dict[int, int], write_runs: Any) -> tuple[int, int, int]:
    """Write the child's pages: all of them outside the kept VMAs, only those that differ inside.

    The child's ``parent_pages`` (--dedup-cow-pages) are left as inherited; each must be a page its parent has
    in a VMA the child kept. Returns (bytes written, pages compared, pages left shared after comparing).
    ``write_runs(pid, path, runs)`` writes runs.
    """
    ranges = sorted((st.plan.vmas[i].entry.start, st.plan.vmas[i].entry.end) for i in kept)
    inside = [r for r in st.plan.pages if any(s <= r.vaddr < e for s, e in ranges)]
    runs = [r for r in st.plan.pages if not any(s <= r.vaddr < e for s, e in ranges)]
    compared = same = 0
    left = _addrs(st.plan.parent_pages, ranges)
    if len(left) != sum(n for _, n in st.plan.parent_pages):
        raise CriuError(f"task {st.plan.pid}: pages its dump left to its parent {parent.plan.pid} lie in a VMA it "
                        "does not inherit from it as it was at dump", pid=st.plan.pid)
    if ranges:
        mine = _pages_by_addr(tuple(inside), ranges)
        theirs: dict[int, int | None] = dict(_pages_by_addr(parent.plan.pages, ranges))
        theirs.update(dict.fromkeys(_addrs(parent.plan.parent_pages, ranges)))  # its own from its parent
        if not left <= theirs.keys():
            raise CriuError(f"task {st.plan.pid}: pages its dump left to its parent {parent.plan.pid} are not "
                            "pages of the parent's images", pid=st.plan.pid)
        cbuf, pbuf = _map(st.plan.pages_path), _map(parent.plan.pages_path)
        try:
            for a in sorted(mine):
                off = mine[a]
                poff = theirs.get(a)
                if poff is not None and pbuf is not None:
                    compared += 1
                    if cbuf[off:off + PAGE_SIZE] == pbuf[poff:poff + PAGE_SIZE]:
                        same += 1
                        continue
                runs.append(PageRun(a, 1, off))
        finally:
            for b in (cbuf, pbuf):
                if b is not None:
                    b.close()
        gone = sorted(a for a in theirs if a not in mine and a not in left)
        i = 0
        while i < len(gone):  # the parent's pages the child does not have: back to zero-fill
            j = i
            while j + 1 < len(gone) and gone[j + 1] == gone[j] + PAGE_SIZE:
                j += 1
            st.remote.syscall("madvise", gone[i], (j - i + 1) * PAGE_SIZE, MADV_DONTNEED)
            i = j + 1
    runs.sort(key=lambda r: r.offset)
    merged: list[PageRun] = []
    for r in runs:
        m = merged[-1] if merged else None
        if m and m.end == r.vaddr and m.offset + m.nr * PAGE_SIZE == r.offset:
            merged[-1] = PageRun(m.vaddr, m.nr + r.nr, m.offset)
        else:
            merged.append(r)
    return write_runs(st.plan.pid, st.plan.pages_path, merged), compared, same
