"""ImageDir: the small API dump and restore use."""

from __future__ import annotations

import pytest

from criu_core.errors import ImageFormatError
from criu_core.images import ImageDir, pagemap
from criu_core.images.messages import new


def test_write_read_by_short_name(tmp_path):
    img = ImageDir(tmp_path / "d", create=True)
    tree = [new("pstree.pstree_entry", pid=10, ppid=0, pgid=10, sid=10, threads=[10, 11])]
    path = img.write("pstree", tree)
    assert path.endswith("/pstree.img")
    assert img.read_all("pstree")[0].threads == [10, 11]
    assert img.read_one("PSTREE").pid == 10
    img.write_one("fs", new("fs.fs_entry", cwd_id=1, root_id=2, umask=0o22), 10)
    assert img.exists("fs", 10) and img.read_one("fs", 10).umask == 0o22
    assert img.read_one("fs", 99, missing_ok=True) is None
    with pytest.raises(ImageFormatError):
        img.read_one("fs", 99)
    names = [name for name, _t, _id in img.list()]
    assert names == ["fs-10.img", "pstree.img"]


def test_read_one_rejects_several_entries(tmp_path):
    img = ImageDir(tmp_path)
    e = new("pstree.pstree_entry", pid=1, ppid=0, pgid=1, sid=1)
    img.write("pstree", [e, e])
    with pytest.raises(ImageFormatError, match="exactly one"):
        img.read_one("pstree")


def test_pages_counter_and_mapping(tmp_path):
    img = ImageDir(tmp_path)
    assert [img.next_pages_id(), img.next_pages_id()] == [1, 2]
    assert ImageDir(tmp_path).next_pages_id() == 1  # per dump
    with img.open_pages_writer(1) as f:
        f.write(b"A" * 4096 + b"B" * 4096)
    with img.open_pages_writer(2):
        pass
    m = img.map_pages(1)
    try:
        assert m[4096:4100] == b"BBBB"
    finally:
        m.close()
    assert img.map_pages(2) == b""
    assert img.path_for("pages", 1).endswith("/pages-1.img")
    img.write("pagemap", [pagemap.make_head(1), pagemap.make_entry(0x400000, 2)], 10)
    head, ents = img.read_pagemap(10)
    assert head.pages_id == 1 and pagemap.nr_pages(ents[0]) == 2


def test_names_cannot_escape(tmp_path):
    img = ImageDir(tmp_path)
    for bad in ("../x", "a/b", "..", ""):
        with pytest.raises(ValueError):
            img.path_for("core", bad)
    with pytest.raises(KeyError):
        img.path_for("no-such-image")
    assert img.path_for("tcp-stream", 0x6BFD).endswith("tcp-stream-6bfd.img")
    assert img.path_for("stats", "dump").endswith("/stats-dump")


def test_golden_dir_reads(golden_dir):
    img = ImageDir(golden_dir / "tree")
    tasks = img.read_all("pstree")
    assert [t.pid for t in tasks] == [31010, 31011, 31012]
    inv = img.read_one("inventory")
    assert inv.img_version == 2 and inv.fdinfo_per_id and inv.HasField("plugins_entry")
    core = img.read_one("core", 31011)
    assert core.tc.comm == "sleep"
    ids = img.read_one("ids", 31011)
    assert img.read_all("fdinfo", ids.files_id)
    head, ents = img.read_pagemap(31011)
    total = sum(pagemap.nr_pages(e) for e in ents if pagemap.flags(e) & pagemap.PE_PRESENT)
    assert total * 4096 == (golden_dir / "tree" / f"pages-{head.pages_id}.img").stat().st_size
