"""Pages a child left to its parent at dump (``dump --dedup-cow-pages``) as the restore reads them: listed in
criu-core's own image criu-core-PID.img (``parent_pages``), absent from the child's pagemap, which stays CRIU's;
checked as untrusted input, kept apart from the pages to write, refused where no parent can supply them; the
inventory name that makes CRIU 4.2 refuse such images is answered by criu-core's built-in memory restore;
Debian's crit decodes CRIU's files of such a dump and refuses our own, which ``criu-py show`` decodes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from criu_core.errors import ImageFormatError
from criu_core.images import ImageDir
from criu_core.images.criu_core_task import COW_PAGES_INVENTORY_NAME, task_entry
from criu_core.images.framing import read_image, write_image
from criu_core.images.pagemap import PE_LAZY, PE_PRESENT
from criu_core.plugins import PluginHost
from criu_core.restore_plan import load_plan

GOLDEN = Path("/work/shared/fixtures/criu-4.2")
pytestmark = pytest.mark.skipif(not GOLDEN.exists(), reason="golden CRIU 4.2 dumps are not available")
CHILD, ROOT = 31011, 31010  # tree: 31010 forked 31011 and 31012


def _leave(d: Path, pid: int, ranges: list[tuple[int, int]], keep_in_pagemap: bool = False) -> Path:
    """Leave ``ranges`` (vaddr, nr) of the task to its parent as --dedup-cow-pages writes it: the pagemap entries
    at those addresses go (unless ``keep_in_pagemap``), the ranges are listed in criu-core-PID.img."""
    if not keep_in_pagemap:
        path = d / f"pagemap-{pid}.img"
        img = read_image(path)
        starts = {v for v, _ in ranges}
        kept = [img.entries[0], *(x for x in img.entries[1:] if x.msg.vaddr not in starts)]
        assert len(kept) == len(img.entries) - len(starts)
        write_image(path, "PAGEMAP", kept)
    return Path(ImageDir(d).write_one("criu-core", task_entry(parent_pages=ranges), pid))


def _anon_entry(d: Path, pid: int) -> tuple[int, int]:
    """(vaddr, nr) of the first PE_LAZY|PE_PRESENT entry (a private anonymous VMA) of the task's pagemap."""
    img = read_image(d / f"pagemap-{pid}.img")
    e = next(x.msg for x in img.entries[1:] if x.msg.flags == PE_LAZY | PE_PRESENT)
    return e.vaddr, e.nr_pages


def test_child_pages_left_to_parent_are_planned_apart(golden_copy) -> None:
    d = golden_copy("tree")
    before = load_plan(d).tasks[1]
    vaddr, n = _anon_entry(d, CHILD)
    _leave(d, CHILD, [(vaddr, n)])
    t = load_plan(d).tasks[1]
    assert t.pid == CHILD and t.parent_pages == ((vaddr, n),)
    assert all(not r.vaddr <= vaddr < r.end for r in t.pages)  # not written from the child's pages image
    assert t.nr_pages == before.nr_pages - n
    # the range takes no room in pages-N.img: the runs after it start n pages earlier in the file
    after_before = [r.offset for r in before.pages if r.vaddr > vaddr]
    after_now = [r.offset for r in t.pages if r.vaddr > vaddr]
    assert after_now == [o - n * 4096 for o in after_before]
    assert before.parent_pages == () and load_plan(golden_copy("tree", "again")).tasks[1].parent_pages == ()


def test_root_cannot_leave_pages_to_a_parent(golden_copy) -> None:
    d = golden_copy("tree")
    _leave(d, ROOT, [_anon_entry(d, ROOT)])
    with pytest.raises(ImageFormatError, match=rf"criu-core-{ROOT}.img: .*root task has pages left to a parent"):
        load_plan(d)


def test_range_also_in_the_pagemap_refused(golden_copy) -> None:
    d = golden_copy("tree")
    vaddr, n = _anon_entry(d, CHILD)
    _leave(d, CHILD, [(vaddr + 4096 * (n // 2), 1)], keep_in_pagemap=True)
    with pytest.raises(ImageFormatError, match=rf"criu-core-{CHILD}.img: .*also in pagemap-{CHILD}.img"):
        load_plan(d)


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (lambda v, n: [(v + 12, n)], "malformed"),  # not page aligned
        (lambda v, n: [(v, 0)], "malformed"),
        (lambda v, n: [(v, 1 << 60)], "malformed"),
        (lambda v, n: [(v + 4096, 1), (v, 1)], "overlap or are out of order"),
        (lambda v, n: [(v, n), (v, 1)], "overlap or are out of order"),
        (lambda v, n: [(0x1000, 1)], "not inside one private anonymous VMA"),  # nothing mapped there
        (lambda v, n: [(v, n + (1 << 20))], "not inside one private anonymous VMA"),  # past the VMA's end
    ],
    ids=["unaligned", "empty", "huge", "out-of-order", "overlapping", "unmapped", "past-the-vma"],
)
def test_bad_ranges_refused(golden_copy, bad, why: str) -> None:
    d = golden_copy("tree")
    vaddr, n = _anon_entry(d, CHILD)
    _leave(d, CHILD, [(vaddr, n)])  # the pagemap no longer has it, whatever the own image says
    ImageDir(d).write_one("criu-core", task_entry(parent_pages=bad(vaddr, n)), CHILD)
    with pytest.raises(ImageFormatError, match=rf"criu-core-{CHILD}.img: at offset \d+: .*{why}"):
        load_plan(d)


def test_range_outside_private_anonymous_memory_refused(golden_copy) -> None:
    d = golden_copy("tree")
    img = read_image(d / f"pagemap-{CHILD}.img")
    file_page = next(x.msg.vaddr for x in img.entries[1:] if x.msg.flags == PE_PRESENT)  # .data of the binary
    _leave(d, CHILD, [(file_page, 1)])
    with pytest.raises(ImageFormatError, match="not inside one private anonymous VMA"):
        load_plan(d)


def test_inventory_name_is_answered_by_the_builtin_restore() -> None:
    host = PluginHost(load_entry_points=False)
    assert COW_PAGES_INVENTORY_NAME == "criu-core-cow-pages"
    assert host.check_required([COW_PAGES_INVENTORY_NAME]) == ["builtin.mem_restore"]


def test_crit_decodes_criu_files_and_show_decodes_ours(golden_copy) -> None:
    """crit runs over CRIU's files of such a dump (all of them decode, the pagemap has only CRIU's fields); our
    own criu-core-PID.img is refused by crit (unknown magic) and decoded by ``criu-py show`` instead."""
    crit = "/usr/bin/crit"
    if not Path(crit).exists():
        pytest.skip("Debian's crit is not installed")
    d = golden_copy("tree")
    vaddr, n = _anon_entry(d, CHILD)
    own = _leave(d, CHILD, [(vaddr, n)])
    criu_files = [p for p in sorted(d.iterdir()) if not p.name.startswith(("pages-", "criu-core-"))]
    assert len(criu_files) > 10
    for path in criu_files:
        res = subprocess.run([crit, "decode", "-i", str(path)], check=False, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, (path.name, res.stderr)
        if path.name == f"pagemap-{CHILD}.img":
            entries = json.loads(res.stdout)["entries"][1:]
            assert vaddr not in {e["vaddr"] for e in entries}
            assert all(set(e) <= {"vaddr", "compat_nr_pages", "in_parent", "flags", "nr_pages"} for e in entries)
    res = subprocess.run([crit, "decode", "-i", str(own)], check=False, capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "0x4f435243" in (res.stdout + res.stderr).lower()
    show = subprocess.run(
        [sys.executable, "-m", "criu_core.cli", "show", str(own)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert show.returncode == 0, show.stderr
    assert json.loads(show.stdout)["entries"] == [{"parent_pages": [{"vaddr": hex(vaddr), "nr_pages": n}]}]
