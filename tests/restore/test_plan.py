"""The restore plan built from the golden CRIU 4.2 dumps, and its refusal of corrupt images (no ptrace)."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from criu_core.errors import CriuError, ImageFormatError
from criu_core.images.framing import read_image, write_image
from criu_core.images.pagemap import PAGE_SIZE
from criu_core.restore_plan import is_special_vma, load_plan

GOLDEN = Path("/work/shared/fixtures/criu-4.2")
if not GOLDEN.exists():  # the repository's copy, when the shared tree is not mounted
    GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "criu-4.2"

pytestmark = pytest.mark.skipif(not GOLDEN.exists(), reason="golden CRIU 4.2 dumps are not available")


def copy(name: str, tmp_path: Path) -> Path:
    dst = tmp_path / name
    shutil.copytree(GOLDEN / name, dst)
    for p in dst.iterdir():
        p.chmod(0o644)
    return dst


@pytest.mark.parametrize("name", ["sleep", "pycounter", "tree", "threads", "ipc"])
def test_every_golden_dump_plans(name: str) -> None:
    plan = load_plan(GOLDEN / name)
    assert plan.root.ppid == 0
    for task in plan.tasks:
        assert task.tids[0] == task.pid
        starts = [v.entry.start for v in task.vmas]
        assert starts == sorted(starts)
        # every page run lies inside one non-special VMA
        for run in task.pages:
            owner = [v.entry for v in task.vmas if v.entry.start <= run.vaddr < v.entry.end]
            assert len(owner) == 1 and run.end <= owner[0].end and not is_special_vma(owner[0])
        assert task.pages_path is not None
        assert task.nr_pages * PAGE_SIZE <= task.pages_path.stat().st_size


def test_sleep_plan_facts() -> None:
    plan = load_plan(GOLDEN / "sleep")
    t = plan.root
    assert (t.pid, t.tids, t.pgid, t.sid) == (31001, (31001,), 31001, 31001)
    assert plan.file(t.mm.exe_file_id).reg.name == "/usr/bin/sleep"
    assert [f.fd for f in t.fds] == [0, 1, 2]
    assert {plan.file(f.file_id).reg.name for f in t.fds} == {"/dev/null"}
    # 29 pages were dumped, 2 of them the vdso's, which the restore never writes
    assert t.pages_path.stat().st_size == 29 * PAGE_SIZE and t.nr_pages == 27
    mm = t.mm_map()
    assert mm["start_brk"] <= mm["brk"] and mm["arg_start"] < mm["arg_end"] <= mm["env_start"] < mm["env_end"]
    assert len(t.core.tc.sigactions) == 62


def test_pycounter_files() -> None:
    plan = load_plan(GOLDEN / "pycounter")
    t = plan.root
    log = next(plan.file(f.file_id).reg for f in t.fds if f.fd == 3)
    assert log.name == "/tmp/criu-golden/counter.log" and log.pos == 23
    assert [f.cloexec for f in t.fds] == [False, False, False, True]


def test_pagemap_outside_vmas_is_refused(tmp_path: Path) -> None:
    d = copy("sleep", tmp_path)
    img = read_image(d / "pagemap-31001.img")
    img.entries[1].msg.vaddr = 0x1000  # nothing is mapped at the first pages
    write_image(d / "pagemap-31001.img", "PAGEMAP", img.entries)
    with pytest.raises(ImageFormatError, match="outside every VMA"):
        load_plan(d)


def test_truncated_pages_refused(tmp_path: Path) -> None:
    d = copy("sleep", tmp_path)
    with open(d / "pages-1.img", "r+b") as f:
        f.truncate(10 * PAGE_SIZE)
    with pytest.raises(ImageFormatError, match="pages image has"):
        load_plan(d)


def test_corrupt_core_refused(tmp_path: Path) -> None:
    d = copy("sleep", tmp_path)
    raw = bytearray((d / "core-31001.img").read_bytes())
    struct.pack_into("<I", raw, 8, 1 << 30)  # entry size far beyond the file
    (d / "core-31001.img").write_bytes(raw)
    with pytest.raises(ImageFormatError, match="core-31001.img"):
        load_plan(d)


def test_missing_fdinfo_refused(tmp_path: Path) -> None:
    d = copy("sleep", tmp_path)
    (d / "fdinfo-2.img").unlink()
    with pytest.raises(ImageFormatError, match="fdinfo-2.img: at offset 0: missing image"):
        load_plan(d)


def test_overlapping_vmas_refused(tmp_path: Path) -> None:
    d = copy("sleep", tmp_path)
    img = read_image(d / "mm-31001.img")
    mm = img.entries[0].msg
    mm.vmas[1].start = mm.vmas[0].start
    write_image(d / "mm-31001.img", "MM", img.entries)
    with pytest.raises(CriuError, match="overlaps"):
        load_plan(d)
