"""The dump side of criu-core's own image criu-core-PID.img on a real process: an ordinary task gets none, and an
``[anon:NAME]`` VMA goes into it (by VMA start) while its vma_entry in mm-PID.img stays CRIU's, byte for byte.

This kernel has no CONFIG_ANON_VMA_NAME, so no process here can have a named VMA; the name is put into what
/proc/PID/smaps says about one real anonymous VMA of the live target (ProcFS.smaps, the dump's only source of
names), and everything after that (claim, images, the restore plan's check) is the real code path."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from criu_core.images.imagedir import ImageDir
from criu_core.procfs import ProcFS
from criu_core.restore_plan import load_plan


def _ready(t) -> tuple[int, int, int]:
    (line,) = t.wait_output(lambda ls: bool(ls) and ls[0].startswith("ready"))
    buf, big, none = (int(x, 16) for x in line.split()[1:])
    return buf, big, none


def _mm_bytes(d: Path, pid: int) -> list[bytes]:
    return [v.SerializeToString() for v in ImageDir(d).read_one("mm", pid).vmas]


def test_named_vma_goes_to_own_image(spawn, dump, monkeypatch) -> None:
    t = spawn("memtest")
    _, big, _ = _ready(t)
    _, plain = dump(t.pid, leave_running=True)
    assert not list(plain.glob("criu-core-*.img"))  # an ordinary task: only CRIU's files

    real = ProcFS.smaps

    def named(self, pid):
        out = real(self, pid)
        return [dataclasses.replace(m, name="[anon:big arena]") if m.start == big and pid == t.pid else m for m in out]

    monkeypatch.setattr(ProcFS, "smaps", named)
    _, d = dump(t.pid, leave_running=True)
    assert [p.name for p in d.glob("criu-core-*.img")] == [f"criu-core-{t.pid}.img"]
    own = ImageDir(d).read_one("criu-core", t.pid)
    assert [(n.start, n.name) for n in own.vma_names] == [(big, "big arena")]
    assert not own.HasField("exit_signal") and not own.parent_pages
    # CRIU's mm image is exactly what it is without the name
    assert _mm_bytes(d, t.pid) == _mm_bytes(plain, t.pid)
    plan = load_plan(d).tasks[0]
    assert plan.vma_names == {big: "big arena"}
