"""decode / encode / show entry points."""

from __future__ import annotations

import io
import json

from criu_core.images import tool


def test_decode_encode_files(golden_dir, tmp_path):
    src = golden_dir / "sleep" / "core-31001.img"
    for flag in ([], ["--pretty"]):
        out = tmp_path / "core.json"
        assert tool.main_decode(["-i", str(src), "-o", str(out), *flag]) == 0
        obj = json.loads(out.read_text())
        assert obj["magic"] == "CORE"
        back = tmp_path / "core.img"
        assert tool.main_encode(["-i", str(out), "-o", str(back)]) == 0
        assert back.read_bytes() == src.read_bytes()


def test_decode_to_stdout(golden_dir):
    buf = io.StringIO()
    assert tool.main_decode(["-i", str(golden_dir / "sleep" / "pstree.img")], stdout=buf) == 0
    assert json.loads(buf.getvalue())["entries"][0]["pid"] == 31001


def test_show_dir_and_file(golden_dir):
    buf = io.StringIO()
    assert tool.main_show([str(golden_dir / "tree")], stdout=buf) == 0
    text = buf.getvalue()
    assert "31011 ppid=31010" in text and "comm=sleep" in text and "img_version=2" in text
    assert "plugins:" in text and "allow_uprobes=False" in text
    buf = io.StringIO()
    assert tool.main_show([str(golden_dir / "ipc")], stdout=buf) == 0
    assert "EVENTFD" in buf.getvalue() and "UNIXSK" in buf.getvalue() and "PIPE" in buf.getvalue()
    buf = io.StringIO()
    assert tool.main_show([str(golden_dir / "sleep" / "mm-31001.img")], stdout=buf) == 0
    assert json.loads(buf.getvalue())["magic"] == "MM"


def test_missing_file_is_one_line(tmp_path, capsys):
    assert tool.main_decode(["-i", str(tmp_path / "nope.img")]) == 1
    assert tool.main_show([str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "Traceback" not in "".join(err)


def test_own_image_decode_encode_show(golden_dir, tmp_path):
    """criu-core-PID.img (criu-core's own image) through decode, encode and show like any image; show on a dump
    directory that holds one lists it beside CRIU's files."""
    import shutil

    from criu_core.images import ImageDir
    from criu_core.images.criu_core_task import task_entry

    d = tmp_path / "tree"
    shutil.copytree(golden_dir / "tree", d)
    src = ImageDir(d).write_one("criu-core", task_entry(exit_signal=0, vma_names=[(0x7F0000000000, "a b")]), 31011)
    for flag in ([], ["--pretty"]):
        out = tmp_path / "own.json"
        assert tool.main_decode(["-i", src, "-o", str(out), *flag]) == 0
        obj = json.loads(out.read_text())
        assert obj["magic"] == "CRIU_CORE_TASK"
        assert obj["entries"][0]["exit_signal"] == 0  # present: 0 is "no signal", not "SIGCHLD"
        start = obj["entries"][0]["vma_names"][0]["start"]
        assert start == ("0x7f0000000000" if flag else 0x7F0000000000)
        back = tmp_path / "own.img"
        assert tool.main_encode(["-i", str(out), "-o", str(back)]) == 0
        assert back.read_bytes() == (d / "criu-core-31011.img").read_bytes()
    buf = io.StringIO()
    assert tool.main_show([str(d)], stdout=buf) == 0
    mine = [x.strip() for x in buf.getvalue().splitlines() if "criu-core-" in x]
    assert mine == ["criu-core-31011.img: exit_signal=0 [anon:a b] at 0x7f0000000000"], buf.getvalue()
