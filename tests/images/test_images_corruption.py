"""Corrupt images fail with one ImageFormatError naming the file and an offset, for every image type present
in the golden dumps: truncated, bad magic, oversized length word, garbage payload, missing required fields.
The decode tool prints one line and returns non-zero, never a traceback. criu-core's own image
(criu-core-PID.img, no golden file: CRIU does not write it) is checked the same way on a file our writer makes."""

from __future__ import annotations

import io
import struct

import pytest

from criu_core.errors import ImageFormatError
from criu_core.images import ImageDir, framing, jsonconv, magic, tool
from criu_core.images.criu_core_task import task_entry


def _first_entry(raw: bytes, path) -> tuple[int, int]:
    """(offset of the first entry's size word, its size)."""
    _itype, pos = framing.detect(raw, str(path))
    (size,) = struct.unpack_from("<I", raw, pos)
    return pos, size


def _corruptions(raw: bytes, path) -> dict[str, bytes]:
    pos, size = _first_entry(raw, path)
    head = raw[:pos]
    out = {}
    # cut inside the first entry: in its payload if it has one, else inside its size word
    out["truncated"] = raw[: pos + 4 + size // 2] if size >= 2 else raw[: pos + 2]
    out["partial-size-word"] = raw[: pos + 2]
    bad = bytearray(raw)
    bad[pos - 4 : pos] = struct.pack("<I", 0x12345678)  # the image magic (inventory: its only word)
    out["bad-magic"] = bytes(bad)
    big = bytearray(raw)
    big[pos : pos + 4] = struct.pack("<I", 0xFFFFFFF0)
    out["oversized-length"] = bytes(big)
    out["garbage-payload"] = head + struct.pack("<I", 8) + b"\xff" * 8
    return out


KINDS = ["truncated", "partial-size-word", "bad-magic", "oversized-length", "garbage-payload"]


@pytest.mark.parametrize("kind", KINDS)
def test_corruption_is_reported(typed_image, kind, tmp_path, capsys):
    _check_corruption(typed_image, kind, tmp_path, capsys)


@pytest.mark.parametrize("kind", KINDS)
def test_own_image_corruption_is_reported(kind, tmp_path, capsys):
    made = ImageDir(tmp_path / "made", create=True)
    msg = task_entry(exit_signal=10, vma_names=[(0x7F0000000000, "arena")], parent_pages=[(0x7F0000001000, 3)])
    src = made.write_one("criu-core", msg, 42)
    assert framing.read_image(src).messages == [msg]  # intact, it reads back
    _check_corruption(tmp_path / "made" / "criu-core-42.img", kind, tmp_path, capsys)


def _check_corruption(typed_image, kind, tmp_path, capsys):
    raw = typed_image.read_bytes()
    data = _corruptions(raw, typed_image)[kind]
    bad = tmp_path / typed_image.name
    bad.write_bytes(data)
    with pytest.raises(ImageFormatError) as ei:
        framing.read_image(bad)
    err = ei.value
    assert err.path == str(bad)
    assert 0 <= err.offset <= len(data)
    assert str(bad) in str(err) and f"offset {err.offset}" in str(err)
    # crit-style decoding (type from the magic alone) fails the same way
    with pytest.raises(ImageFormatError):
        jsonconv.decode_file(bad)
    rc = tool.main_decode(["-i", str(bad)], stdout=io.StringIO())
    captured = capsys.readouterr()
    assert rc != 0
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0]
    assert "Traceback" not in captured.err


def test_missing_required_field(tmp_path):
    # a pstree entry with only pid set: ppid/pgid/sid are required
    data = magic.BY_NAME["PSTREE"].head + struct.pack("<I", 2) + b"\x08\x07"
    p = tmp_path / "pstree.img"
    p.write_bytes(data)
    with pytest.raises(ImageFormatError) as ei:
        framing.read_image(p)
    assert "ppid" in str(ei.value) and ei.value.offset == 12


def test_wrong_head_kind(tmp_path, golden_dir):
    stats = (golden_dir / "sleep" / "stats-dump").read_bytes()
    p = tmp_path / "stats-dump"
    p.write_bytes(struct.pack("<I", magic.IMG_COMMON_MAGIC) + stats[4:])
    with pytest.raises(ImageFormatError, match="head"):
        framing.read_image(p)
    with pytest.raises(ImageFormatError):
        jsonconv.decode_file(p)


def test_name_and_magic_disagree(tmp_path, golden_dir):
    p = tmp_path / "mm-1.img"
    p.write_bytes((golden_dir / "sleep" / "core-31001.img").read_bytes())
    with pytest.raises(ImageFormatError, match="does not match MM"):
        framing.read_image(p)


def test_empty_and_tiny_files(tmp_path):
    for content in (b"", b"\x19\x43"):
        p = tmp_path / "core-1.img"
        p.write_bytes(content)
        with pytest.raises(ImageFormatError):
            framing.read_image(p)


def test_extra_longer_than_file(tmp_path, golden_dir):
    src = golden_dir / "ipc" / "pipes-data.img"
    if not src.exists():
        pytest.skip("no pipes-data.img in the golden dumps")
    raw = src.read_bytes()
    p = tmp_path / "pipes-data.img"
    p.write_bytes(raw[:-3])  # the last pipe's data is cut short
    with pytest.raises(ImageFormatError, match="raw payload"):
        framing.read_image(p)


def test_zero_size_entry_is_valid():
    data = magic.BY_NAME["SECCOMP"].head + b"\0\0\0\0"
    img = framing.decode(data, "seccomp.img")
    assert len(img.entries) == 1 and img.entries[0].msg.ByteSize() == 0


def test_raw_pages_are_refused(golden_dir, capsys):
    pages = golden_dir / "sleep" / "pages-1.img"
    with pytest.raises(ImageFormatError, match="raw"):
        jsonconv.decode_file(pages)
    assert tool.main_decode(["-i", str(pages)], stdout=io.StringIO()) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_encode_rejects_bad_json(tmp_path, capsys):
    cases = [
        {"magic": "NOPE", "entries": []},
        {"magic": "PSTREE", "entries": [{"pid": 1}]},  # required fields missing
        {"magic": "PSTREE", "entries": [{"pid": "x", "ppid": 0, "pgid": 1, "sid": 1}]},
        {"magic": "PSTREE", "entries": [{"pid": 1, "ppid": 0, "pgid": 1, "sid": 1, "bogus": 1}]},
        {"magic": "PIPES_DATA", "entries": [{"pipe_id": 1, "bytes": 5, "extra": "YWJj\n"}]},  # 3 bytes, not 5
        [],
    ]
    import json

    for obj in cases:
        with pytest.raises(ImageFormatError):
            jsonconv.encode_json(obj)
        src = tmp_path / "in.json"
        src.write_text(json.dumps(obj))
        assert tool.main_encode(["-i", str(src), "-o", str(tmp_path / "out.img")]) == 1
        assert len(capsys.readouterr().err.strip().splitlines()) == 1
    src.write_text("{not json")
    assert tool.main_encode(["-i", str(src), "-o", str(tmp_path / "out.img")]) == 1
