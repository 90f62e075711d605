"""``in_parent_task`` pagemap entries (dump --dedup-cow-pages) as the restore reads them: checked, kept apart
from the pages to write, refused where no parent can supply them; the inventory name that makes CRIU 4.2
refuse such images is answered by criu-core's built-in memory restore; Debian's crit still decodes them."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from criu_core.errors import ImageFormatError
from criu_core.images import jsonconv
from criu_core.images.framing import read_image, write_image
from criu_core.images.pagemap import IN_PARENT_TASK_INVENTORY_NAME, PE_LAZY, PE_PRESENT
from criu_core.plugins import PluginHost
from criu_core.restore_plan import load_plan

GOLDEN = Path("/work/shared/fixtures/criu-4.2")
pytestmark = pytest.mark.skipif(not GOLDEN.exists(), reason="golden CRIU 4.2 dumps are not available")
CHILD, ROOT = 31011, 31010  # tree: 31010 forked 31011 and 31012


def _tree(tmp_path: Path) -> Path:
    dst = tmp_path / "tree"
    shutil.copytree(GOLDEN / "tree", dst)
    for p in dst.iterdir():
        p.chmod(0o644)
    return dst


def _mark(d: Path, pid: int, vaddr: int, flags: int = 0) -> None:
    """Turn the pagemap entry at ``vaddr`` into an in_parent_task entry, as --dedup-cow-pages writes it."""
    path = d / f"pagemap-{pid}.img"
    img = read_image(path)
    (e,) = [x.msg for x in img.entries[1:] if x.msg.vaddr == vaddr]
    e.flags = flags
    e.in_parent_task = True
    write_image(path, "PAGEMAP", img.entries)


def _anon_entry(d: Path, pid: int) -> tuple[int, int]:
    """(vaddr, nr) of the first PE_LAZY|PE_PRESENT entry (a private anonymous VMA) of the task's pagemap."""
    img = read_image(d / f"pagemap-{pid}.img")
    e = next(x.msg for x in img.entries[1:] if x.msg.flags == PE_LAZY | PE_PRESENT)
    return e.vaddr, e.nr_pages


def test_child_pages_left_to_parent_are_planned_apart(tmp_path: Path) -> None:
    d = _tree(tmp_path)
    before = load_plan(d).tasks[1]
    vaddr, n = _anon_entry(d, CHILD)
    _mark(d, CHILD, vaddr)
    t = load_plan(d).tasks[1]
    assert t.pid == CHILD and t.parent_pages == ((vaddr, n),)
    assert all(not r.vaddr <= vaddr < r.end for r in t.pages)  # not written from the child's pages image
    assert t.nr_pages == before.nr_pages - n
    # the entry takes no room in pages-N.img: the runs after it start n pages earlier in the file
    after_before = [r.offset for r in before.pages if r.vaddr > vaddr]
    after_now = [r.offset for r in t.pages if r.vaddr > vaddr]
    assert after_now == [o - n * 4096 for o in after_before]


def test_root_cannot_leave_pages_to_a_parent(tmp_path: Path) -> None:
    d = _tree(tmp_path)
    _mark(d, ROOT, _anon_entry(d, ROOT)[0])
    with pytest.raises(ImageFormatError, match="root task has pages left to a parent task"):
        load_plan(d)


def test_in_parent_task_with_present_flag_refused(tmp_path: Path) -> None:
    d = _tree(tmp_path)
    _mark(d, CHILD, _anon_entry(d, CHILD)[0], flags=PE_PRESENT)
    with pytest.raises(ImageFormatError, match="in_parent_task with flags 0x4"):
        load_plan(d)


def test_in_parent_task_outside_private_anonymous_memory_refused(tmp_path: Path) -> None:
    d = _tree(tmp_path)
    img = read_image(d / f"pagemap-{CHILD}.img")
    file_page = next(x.msg.vaddr for x in img.entries[1:] if x.msg.flags == PE_PRESENT)  # .data of the binary
    _mark(d, CHILD, file_page)
    with pytest.raises(ImageFormatError, match="not inside one private anonymous VMA"):
        load_plan(d)


def test_inventory_name_is_answered_by_the_builtin_restore() -> None:
    host = PluginHost(load_entry_points=False)
    assert host.check_required([IN_PARENT_TASK_INVENTORY_NAME]) == ["builtin.mem_restore"]


def test_crit_decodes_in_parent_task_entries(tmp_path: Path) -> None:
    crit = "/usr/bin/crit"
    if not Path(crit).exists():
        pytest.skip("Debian's crit is not installed")
    d = _tree(tmp_path)
    vaddr, n = _anon_entry(d, CHILD)
    _mark(d, CHILD, vaddr)
    path = d / f"pagemap-{CHILD}.img"
    res = subprocess.run([crit, "decode", "-i", str(path)], check=False, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    theirs = [e for e in json.loads(res.stdout)["entries"][1:] if e["vaddr"] == vaddr]
    assert theirs and theirs[0]["flags"] == 0 and "in_parent_task" not in theirs[0]  # unknown field skipped
    ours = [e for e in jsonconv.decode_file(path)["entries"][1:] if e["vaddr"] == vaddr]
    assert ours[0]["in_parent_task"] is True and ours[0]["nr_pages"] == n
