"""``dump --dedup-cow-pages``: pages a child still shares copy-on-write with its parent are stored once.

Target ``cowpages``: the parent fills 32 MiB, forks; the child rewrites 3 pages and drops one, the parent
rewrites 3 others. A default dump (CRIU 4.2's format) stores the region twice; with the option the child's
images hold only its 6 pages that differ from the parent's physical pages, the rest is absent from its pagemap
and listed in criu-core-CHILD.img (criu-core's own image; CRIU's pagemap is not extended), the inventory names
"criu-core-cow-pages" (so that CRIU 4.2 refuses the images), and after the restore both processes read their
own content and the child's region is shared again (Pss)."""

from __future__ import annotations

from pathlib import Path

from criu_core.images import ImageDir
from criu_core.images.pagemap import PE_PRESENT, flags, nr_pages

PG = 4096
MIB = 32
REGION = MIB << 20
CHILD_OWN, PARENT_OWN, DROPPED = 3, 3, 1  # what cowpages.c changes after fork()


def _child(pid: int) -> int:
    (kid,) = (int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split())
    return kid


def _region(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
        if hi - lo == REGION:
            return lo, hi
    raise AssertionError(f"no {MIB} MiB VMA in task {pid}")


def _pss_ratio(pid: int) -> float:
    """Pss/Rss of the region: about 0.5 while its pages are shared with one other task, 1.0 if private."""
    rss = pss = 0
    inside = False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        if line[0] in "0123456789abcdef" and "-" in line.split()[0]:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            inside = hi - lo == REGION
        elif inside and line.startswith("Rss:"):
            rss = int(line.split()[1])
        elif inside and line.startswith("Pss:"):
            pss = int(line.split()[1])
    assert rss, f"no resident {MIB} MiB VMA in task {pid}"
    return pss / rss


def _overlap(vaddr: int, n: int, region: tuple[int, int]) -> int:
    lo, hi = max(vaddr, region[0]), min(vaddr + n * PG, region[1])
    return max(0, hi - lo) // PG


def _pages(images: Path, pid: int, region: tuple[int, int]) -> tuple[int, int, int]:
    """(bytes of the task's pages image, pages of the region stored, pages of the region left to the parent)."""
    imgs = ImageDir(images)
    head, entries = imgs.read_pagemap(pid)
    assert all(flags(e) & PE_PRESENT for e in entries), "CRIU's pagemap has only pages that are in the image"
    stored = sum(_overlap(e.vaddr, nr_pages(e), region) for e in entries)
    parent = 0
    if imgs.exists("criu-core", pid):
        own = imgs.read_one("criu-core", pid)
        parent = sum(_overlap(r.vaddr, r.nr_pages, region) for r in own.parent_pages)
        assert parent, f"criu-core-{pid}.img written for nothing: {own}"
    return (images / f"pages-{head.pages_id}.img").stat().st_size, stored, parent


def _inventory_plugins(images: Path) -> list[str]:
    return list(ImageDir(images).read_one("inventory").plugins_entry.plugins)


def test_dedup_cow_pages(zdtm, engines) -> None:
    total = REGION // PG
    t = zdtm.start("cowpages", str(MIB))
    child = _child(t.pid)
    region = _region(t.pid)
    assert _region(child) == region
    assert max(_pss_ratio(t.pid), _pss_ratio(child)) < 0.6

    # The default dump is CRIU 4.2's: each process's pages in full, nothing in the inventory. Left running,
    # the tree still shares its pages (process_vm_readv would have unshared them: see read_shared_by_mem).
    plain = zdtm.images("plain")
    d = zdtm.dump(t, plain, "--leave-running")
    assert d.rc == 0, d.explain()
    _, p_stored, p_parent = _pages(plain, t.pid, region)
    c_bytes, c_stored, c_parent = _pages(plain, child, region)
    assert (p_stored, p_parent) == (total, 0)
    assert (c_stored, c_parent) == (total - DROPPED, 0)
    assert c_bytes >= (total - DROPPED) * PG
    assert "criu-core-cow-pages" not in _inventory_plugins(plain)
    assert not list(plain.glob("criu-core-*.img"))  # only CRIU's files
    still = (_pss_ratio(t.pid), _pss_ratio(child))
    assert max(still) < 0.6, f"Pss/Rss of the region after a --leave-running dump {still}: sharing lost"

    d, _ = zdtm.cycle(t, dump_args=["--dedup-cow-pages"])
    assert d is not None  # the engines fixture skips these tests under ZDTM_NOCR
    images = Path(d.args[d.args.index("-D") + 1])
    _, dp_stored, dp_parent = _pages(images, t.pid, region)
    dc_bytes, dc_stored, dc_parent = _pages(images, child, region)
    assert (dp_stored, dp_parent) == (total, 0)  # the parent's images are as without the option
    assert dc_stored == CHILD_OWN + PARENT_OWN, "the child's pages that differ from its parent's physical pages"
    assert dc_parent == total - CHILD_OWN - PARENT_OWN - DROPPED
    assert dc_bytes <= c_bytes - dc_parent * PG, (dc_bytes, c_bytes)  # the shared pages are stored once
    assert "criu-core-cow-pages" in _inventory_plugins(images)
    assert [p.name for p in images.glob("criu-core-*.img")] == [f"criu-core-{child}.img"]

    after = (_pss_ratio(t.pid), _pss_ratio(child))
    assert max(after) < 0.6, f"Pss/Rss of the region after restore {after}: not shared"
    t.check()  # both read their own content: the child's 3 pages, the parent's old 3, zeros at the dropped one


def test_dedup_cow_pages_three_levels(zdtm, engines) -> None:
    """A grandchild forked after the child's changes: it shares the child's pages (most of them the
    parent's); each level is stored once and each process reads its own content after the restore."""
    total = REGION // PG
    t = zdtm.start("cowpages", str(MIB), "3")
    child = _child(t.pid)
    grand = _child(child)
    region = _region(t.pid)
    d, _ = zdtm.cycle(t, dump_args=["--dedup-cow-pages"])
    assert d is not None  # the engines fixture skips these tests under ZDTM_NOCR
    images = Path(d.args[d.args.index("-D") + 1])
    assert _pages(images, t.pid, region)[1:] == (total, 0)
    assert _pages(images, child, region)[1:] == (CHILD_OWN + PARENT_OWN, total - CHILD_OWN - PARENT_OWN - DROPPED)
    # the grandchild shares everything with the child but the page it rewrote (the dropped one it lacks too)
    assert _pages(images, grand, region)[1:] == (1, total - DROPPED - 1)
    ratios = [_pss_ratio(p) for p in (t.pid, child, grand)]
    assert max(ratios) < 0.6, f"Pss/Rss of the region after restore {ratios}: not shared"
    t.check()
