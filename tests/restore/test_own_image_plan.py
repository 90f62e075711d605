"""criu-core's own image criu-core-PID.img as the restore plan reads it: optional (CRIU 4.2's dumps have none and
plan as before), and untrusted input like any image: an exit signal past 64, a VMA name that is not at the start
of an anonymous VMA or that the kernel would refuse, a second entry or a cut file are each refused before
anything is created, in one error line that names the file. (Pages left to the parent: test_cow_pages_plan.py.)"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from criu_core.errors import ImageFormatError
from criu_core.images import ImageDir
from criu_core.images.criu_core_task import task_entry
from criu_core.images.framing import write_image
from criu_core.images.vma import VMA_ANON_PRIVATE, VMA_FILE_PRIVATE
from criu_core.restore_plan import load_plan

GOLDEN = Path("/work/shared/fixtures/criu-4.2")
pytestmark = pytest.mark.skipif(not GOLDEN.exists(), reason="golden CRIU 4.2 dumps are not available")
CHILD, ROOT = 31011, 31010  # tree: 31010 forked 31011 and 31012


def _vma(d: Path, pid: int, status: int) -> tuple[int, int]:
    """(start, end) of the first VMA of the task with ``status`` bits."""
    v = next(v for v in ImageDir(d).read_one("mm", pid).vmas if v.status & status == status)
    return v.start, v.end


def _write(d: Path, pid: int, **fields) -> Path:
    return Path(ImageDir(d).write_one("criu-core", task_entry(**fields), pid))


def test_criu_dumps_have_none_and_plan_as_before(golden_copy) -> None:
    d = golden_copy("tree")
    assert not list(d.glob("criu-core-*.img"))
    plan = load_plan(d)
    assert all(t.exit_signal == signal.SIGCHLD and t.vma_names == {} and t.parent_pages == () for t in plan.tasks)


def test_exit_signal_and_names_are_planned(golden_copy) -> None:
    d = golden_copy("tree")
    start, _ = _vma(d, CHILD, VMA_ANON_PRIVATE)
    _write(d, CHILD, exit_signal=signal.SIGUSR1, vma_names=[(start, "my arena 2")])
    _write(d, 31012, exit_signal=0)  # clone(..., 0): no signal at all, which the kernel allows
    plan = {t.pid: t for t in load_plan(d).tasks}
    assert (plan[CHILD].exit_signal, plan[CHILD].vma_names) == (signal.SIGUSR1, {start: "my arena 2"})
    assert (plan[31012].exit_signal, plan[31012].vma_names) == (0, {})
    assert plan[ROOT].exit_signal == signal.SIGCHLD


def _bad_cases(d: Path) -> dict[str, tuple[dict, str]]:
    anon, anon_end = _vma(d, CHILD, VMA_ANON_PRIVATE)
    file_vma, _ = _vma(d, CHILD, VMA_FILE_PRIVATE)
    return {
        "signal-65": ({"exit_signal": 65}, "exit signal 65 is not a signal"),
        "signal-huge": ({"exit_signal": 2**32 - 1}, "is not a signal"),
        "name-not-at-a-start": (
            {"vma_names": [(anon + 4096 if anon_end > anon + 4096 else 0x1000, "x")]},
            "no VMA of mm-31011.img starts there",
        ),
        "name-unmapped": ({"vma_names": [(0x1000, "x")]}, "no VMA of mm-31011.img starts there"),
        "name-twice": ({"vma_names": [(anon, "a"), (anon, "b")]}, "named twice"),
        "name-of-a-file-mapping": ({"vma_names": [(file_vma, "x")]}, "is not anonymous memory"),
        "name-too-long": ({"vma_names": [(anon, "x" * 80)]}, "longer than 79 bytes"),
        "name-bracket": ({"vma_names": [(anon, "a]b")]}, "holds the character"),
        "name-control": ({"vma_names": [(anon, "a\nb")]}, "holds the character"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "signal-65",
        "signal-huge",
        "name-not-at-a-start",
        "name-unmapped",
        "name-twice",
        "name-of-a-file-mapping",
        "name-too-long",
        "name-bracket",
        "name-control",
    ],
)
def test_bad_own_image_refused(golden_copy, case: str) -> None:
    d = golden_copy("tree")
    fields, why = _bad_cases(d)[case]
    path = _write(d, CHILD, **fields)
    with pytest.raises(ImageFormatError, match=rf"^{path}: at offset \d+: .*{why}"):
        load_plan(d)


def test_two_entries_refused(golden_copy) -> None:
    d = golden_copy("tree")
    path = d / f"criu-core-{CHILD}.img"
    e = task_entry(exit_signal=10)
    write_image(path, "CRIU_CORE_TASK", [e, e])
    with pytest.raises(ImageFormatError, match=rf"^{path}: at offset 0: expected exactly one entry, found 2"):
        load_plan(d)


def test_cut_file_refused(golden_copy) -> None:
    d = golden_copy("tree")
    start, _ = _vma(d, CHILD, VMA_ANON_PRIVATE)
    path = _write(d, CHILD, vma_names=[(start, "a long enough name")])
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ImageFormatError, match=rf"^{path}: at offset \d+"):
        load_plan(d)


def test_restore_command_says_one_line(golden_copy) -> None:
    """Through ``criu-py restore``: one line naming the file, no traceback, images untouched."""
    d = golden_copy("tree")
    path = _write(d, CHILD, exit_signal=99)
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    res = subprocess.run(
        [sys.executable, "-m", "criu_core.cli", "restore", "-D", str(d), "-d"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode != 0
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "exit signal 99" in lines[0], res.stderr
    assert "Traceback" not in res.stderr
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before


def test_name_not_utf8_refused(golden_copy) -> None:
    """A name whose bytes are not UTF-8 (protobuf hands such a string back as bytes) is refused in one line."""
    d = golden_copy("tree")
    anon, _ = _vma(d, CHILD, VMA_ANON_PRIVATE)
    path = _write(d, CHILD, vma_names=[(anon, "QQQQ")])
    raw = path.read_bytes()
    assert raw.count(b"QQQQ") == 1
    path.write_bytes(raw.replace(b"QQQQ", b"\xff\xfeQQ"))
    with pytest.raises(ImageFormatError, match=rf"^{path}: at offset \d+: .*is not UTF-8 text"):
        load_plan(d)
