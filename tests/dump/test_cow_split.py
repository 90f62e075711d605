"""--dedup-cow-pages at dump: which pages of a child are left to its parent, from pagemap PFNs (recorded pagemap
files stand in for /proc/PID/pagemap: one u64 per page at offset vaddr / 4096 * 8)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from criu_core.dumping.pages import (
    PE_LAZY,
    PE_PRESENT,
    PageRun,
    PfnSnapshot,
    read_shared_by_mem,
    split_shared_with_parent,
)

PG = 4096
BASE = 0x7F0000000000
PRESENT, SWAP = 1 << 63, 1 << 62


def _pagemap(tmp_path: Path, name: str, pages: dict[int, int]) -> int:
    """A file laid out as /proc/PID/pagemap with ``pages`` (page index from BASE -> pagemap entry)."""
    path = tmp_path / name
    with open(path, "wb") as f:
        for i, pme in pages.items():
            f.seek((BASE // PG + i) * 8)
            f.write(struct.pack("<Q", pme))
    return os.open(path, os.O_RDONLY)


def test_only_pages_with_the_parents_pfn_are_left_to_it(tmp_path: Path) -> None:
    parent = {i: PRESENT | (1000 + i) for i in range(10)}
    child = dict(parent)
    child[2] = PRESENT | 5002  # the child wrote page 2 after fork: its own copy
    child[5] = SWAP | 77  # swapped out in the child: no PFN to compare, kept in its images
    child[7] = PRESENT | 0  # PFN hidden (no CAP_SYS_ADMIN): kept
    parent[8] = PRESENT | 9008  # the parent wrote page 8 after fork: the child keeps the old page
    pfd, cfd = _pagemap(tmp_path, "parent", parent), _pagemap(tmp_path, "child", child)
    try:
        snap = PfnSnapshot()
        snap.add(pfd, [PageRun(BASE, 4, PE_LAZY | PE_PRESENT), PageRun(BASE + 4 * PG, 6, PE_LAZY | PE_PRESENT)])
        os.close(pfd)  # the snapshot is all that is needed afterwards
        pfd = -1
        out = split_shared_with_parent([PageRun(BASE, 10, PE_LAZY | PE_PRESENT)], cfd, snap)
    finally:
        os.close(cfd)
        if pfd >= 0:
            os.close(pfd)
    got = [((r.start - BASE) // PG, r.npages, r.in_parent, r.flags) for r in out]
    keep = PE_LAZY | PE_PRESENT
    assert got == [
        (0, 2, True, 0),
        (2, 1, False, keep),
        (3, 2, True, 0),
        (5, 1, False, keep),
        (6, 1, True, 0),
        (7, 2, False, keep),
        (9, 1, True, 0),
    ]


def test_pages_the_parent_snapshot_does_not_cover_are_kept(tmp_path: Path) -> None:
    pages = {i: PRESENT | (1000 + i) for i in range(6)}
    pfd, cfd = _pagemap(tmp_path, "parent", pages), _pagemap(tmp_path, "child", pages)
    try:
        snap = PfnSnapshot()
        snap.add(pfd, [PageRun(BASE + 2 * PG, 2, PE_PRESENT)])  # the parent dumped only pages 2 and 3
        out = split_shared_with_parent([PageRun(BASE, 6, PE_PRESENT)], cfd, snap)
    finally:
        os.close(pfd)
        os.close(cfd)
    assert [((r.start - BASE) // PG, r.npages, r.in_parent) for r in out] == [
        (0, 2, False),
        (2, 2, True),
        (4, 2, False),
    ]


def test_pages_mapped_by_other_processes_are_read_through_proc_mem(tmp_path: Path) -> None:
    """read_shared_by_mem: pages not exclusively mapped (bit 56 clear) become not ``readable`` (copy_pages reads
    them through /proc/PID/mem, which does not unshare them); exclusive or absent pages stay as they were."""
    excl = 1 << 56
    pages = {0: PRESENT | excl | 1, 1: PRESENT | 2, 2: PRESENT | 3, 3: PRESENT | excl | 4, 4: SWAP | 9}
    fd = _pagemap(tmp_path, "task", pages)
    try:
        runs = [PageRun(BASE, 5, PE_LAZY | PE_PRESENT), PageRun(BASE + 8 * PG, 1, PE_PRESENT, readable=False)]
        out = read_shared_by_mem(runs, fd)
    finally:
        os.close(fd)
    got = [((r.start - BASE) // PG, r.npages, r.readable, r.flags) for r in out]
    keep = PE_LAZY | PE_PRESENT
    assert got == [(0, 1, True, keep), (1, 2, False, keep), (3, 2, True, keep), (8, 1, False, PE_PRESENT)]
