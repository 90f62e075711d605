"""Golden CRIU 4.2 dumps (shared/fixtures/criu-4.2) restore with criu-py, as their README says."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
import zdtmlib

FIXTURES = Path("/work/shared/fixtures/criu-4.2")
if not FIXTURES.is_dir():
    FIXTURES = zdtmlib.REPO.parent.parent / "shared" / "fixtures" / "criu-4.2"

pytestmark = pytest.mark.usefixtures("engines")


def _copy(name: str, tmp: Path, pid: int) -> Path:
    if not (FIXTURES / name).is_dir():
        pytest.fail(f"golden dump {name} not found under {FIXTURES}")
    assert not os.path.exists(f"/proc/{pid}"), f"PID {pid} of the golden dump {name} is taken on this machine"
    return Path(shutil.copytree(FIXTURES / name, tmp / name))


def _kill(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        return
    zdtmlib.reap(pid)
    zdtmlib.wait_gone(pid)


def test_golden_sleep(zdtm) -> None:
    pid = 31001
    images = _copy("sleep", zdtm.tmp, pid)
    r = zdtm.restore(images)
    try:
        assert r.rc == 0, r.explain()
        assert zdtmlib.pid_alive(pid), r.explain()
        assert os.readlink(f"/proc/{pid}/exe") == "/usr/bin/sleep"
        assert Path(f"/proc/{pid}/cmdline").read_bytes() == b"/usr/bin/sleep\x00100000\x00"
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        assert state == "S", state
        for fd in (0, 1, 2):
            assert os.readlink(f"/proc/{pid}/fd/{fd}") == "/dev/null"
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        assert int(stat[3]) == pid, "not its own session"
    finally:
        _kill(pid)


def test_golden_pycounter(zdtm) -> None:
    pid = 31002
    images = _copy("pycounter", zdtm.tmp, pid)
    d = Path("/tmp/criu-golden")
    d.mkdir(exist_ok=True)
    log = d / "counter.log"
    created = not log.exists()
    log.touch()
    start = log.stat().st_size
    r = zdtm.restore(images)
    try:
        assert r.rc == 0, r.explain()
        assert zdtmlib.pid_alive(pid), r.explain()

        def numbers() -> list[int]:
            text = log.read_bytes()[start:].decode(errors="replace")
            return [int(x) for x in re.findall(r"^(\d+)$", text, re.MULTILINE)]

        zdtmlib.wait_for(lambda: len(numbers()) >= 5, 10, "new lines in counter.log")
        nums = numbers()
        assert nums == list(range(nums[0], nums[0] + len(nums))), nums
        assert nums[0] > 0, "the count restarted instead of continuing"
    finally:
        _kill(pid)
        if created:
            log.unlink(missing_ok=True)


def test_golden_tree(zdtm) -> None:
    """`sh -c 'sleep 100000 & sleep 100001 & wait'`: the shell with its two children, same PIDs and parent."""
    pids = (31010, 31011, 31012)
    for pid in pids[1:]:
        assert not os.path.exists(f"/proc/{pid}"), f"PID {pid} is taken"
    images = _copy("tree", zdtm.tmp, pids[0])
    r = zdtm.restore(images)
    try:
        assert r.rc == 0, r.explain()
        for pid in pids:
            assert zdtmlib.pid_alive(pid), f"{pid} is not running\n" + r.explain()
        kids = sorted(int(c) for c in Path(f"/proc/{pids[0]}/task/{pids[0]}/children").read_text().split())
        assert kids == [31011, 31012]
    finally:
        for pid in reversed(pids):
            _kill(pid)


def test_golden_threads(zdtm) -> None:
    """python3 with three daemon threads: one process with 4 threads, the same TIDs."""
    pid = 31020
    for tid in (31021, 31022, 31023):
        assert not os.path.exists(f"/proc/{tid}"), f"PID {tid} is taken"
    images = _copy("threads", zdtm.tmp, pid)
    r = zdtm.restore(images)
    try:
        assert r.rc == 0, r.explain()
        assert zdtmlib.pid_alive(pid), r.explain()
        assert sorted(int(t) for t in os.listdir(f"/proc/{pid}/task")) == [31020, 31021, 31022, 31023]
    finally:
        _kill(pid)
