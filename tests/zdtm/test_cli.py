"""The command line's behaviour: --leave-running, --shell-job, failed dumps and restores, -d or not, --pidfile,
stats and crit-readable images."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import zdtmlib

pytestmark = pytest.mark.usefixtures("engines")


def _one_line_error(res: zdtmlib.CliResult) -> str:
    assert res.rc != 0, "expected a failure:\n" + res.explain()
    assert "Traceback" not in res.stderr, res.explain()
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, "expected exactly one line on stderr:\n" + res.explain()
    return lines[0]


def test_leave_running_twice(zdtm) -> None:
    """Two --leave-running dumps in a row: the task runs on, untouched, and the second dump restores."""
    t = zdtm.start("counter", "--mem", "8")
    before = zdtmlib.snapshot(t.pid)
    images = []
    for _ in range(2):
        images.append(zdtm.images())
        d = zdtm.dump(t, images[-1], "--leave-running")
        assert d.rc == 0, d.explain()
        zdtmlib.assert_runs_freely(t.pid)
        diffs = zdtmlib.compare(before, zdtmlib.snapshot(t.pid))
        assert not diffs, "--leave-running changed the task:\n" + "\n".join(diffs)
    t.assert_no_verdict()
    t.kill()
    zdtmlib.wait_gone(t.pid)
    r = zdtm.restore(images[1])
    assert r.rc == 0, r.explain()
    t.restored = True
    diffs = zdtmlib.compare(before, zdtmlib.snapshot(t.pid))
    assert not diffs, "restored from a --leave-running dump:\n" + "\n".join(diffs)
    t.check()


def test_leave_stopped(zdtm) -> None:
    """--leave-stopped: the task is left stopped (not traced) after the dump, and carries on after SIGCONT."""
    t = zdtm.start("counter")
    before = zdtmlib.snapshot(t.pid)
    d = zdtm.dump(t, zdtm.images(), "--leave-stopped")
    assert d.rc == 0, d.explain()
    assert t.popen.poll() is None, "--leave-stopped killed the task"
    stopped = zdtmlib.snapshot(t.pid)["status"]
    assert isinstance(stopped, dict)
    assert stopped["State"].startswith("T"), stopped["State"]
    assert stopped["TracerPid"] == "0", "still traced after --leave-stopped"
    os.kill(t.pid, signal.SIGCONT)
    zdtmlib.assert_runs_freely(t.pid)
    diffs = zdtmlib.compare(before, zdtmlib.snapshot(t.pid))
    assert not diffs, "--leave-stopped changed the task:\n" + "\n".join(diffs)
    t.check()


def test_restore_pid_in_use(zdtm) -> None:
    """Restoring while the PID is taken fails with CRIU's message, exit 1, leaving no task and the images as they were."""
    t = zdtm.start("counter")
    images = zdtm.images()
    d = zdtm.dump(t, images, "--leave-running")
    assert d.rc == 0, d.explain()
    digest = zdtmlib.images_digest(images)
    kids = _children()
    r = zdtm.restore(images)
    assert _one_line_error(r).endswith(f"PID {t.pid} is in use"), r.explain()
    assert r.rc == 1, r.explain()
    assert _children() == kids, "a failed restore left processes behind"
    assert zdtmlib.images_digest(images) == digest, "a failed restore changed the images"
    zdtmlib.assert_runs_freely(t.pid)
    t.check()


def _children() -> set[int]:
    me = os.getpid()
    out = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                out.add(int(d.name))
    return out


def test_failed_dump_no_space(zdtm, tmp_path: Path) -> None:
    """A dump that fails after the task was seized (images fs full) leaves it running exactly as it was."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "zdtm-small", str(mnt)], check=True)
    try:
        t = zdtm.start("counter", "--mem", "16")
        before = zdtmlib.snapshot(t.pid)
        d = zdtm.dump(t, mnt)
        assert d.rc != 0, d.explain()
        # The task first, the message after.
        assert t.popen.poll() is None, "the task died in a failed dump\n" + t.describe()
        zdtmlib.assert_runs_freely(t.pid)
        diffs = zdtmlib.compare(before, zdtmlib.snapshot(t.pid))
        assert not diffs, "a failed dump changed the task:\n" + "\n".join(diffs)
        t.check()
        msg = _one_line_error(d)
        assert "space" in msg.lower(), msg
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_failed_dump_no_images_dir(zdtm, tmp_path: Path) -> None:
    t = zdtm.start("counter")
    missing = tmp_path / "does-not-exist"
    d = zdtmlib.run_cli(["dump", "-t", str(t.pid), "-D", str(missing)])
    msg = _one_line_error(d)
    assert str(missing) in msg, msg
    zdtmlib.assert_runs_freely(t.pid)
    t.check()


def test_failed_restore_missing_file(zdtm) -> None:
    """A restore that fails half-way (a file of the dump is gone): one line naming the file, no task left
    (seeds killed), the images untouched."""
    t = zdtm.start("fds")
    images = zdtm.images()
    d = zdtm.dump(t, images)
    assert d.rc == 0, d.explain()
    zdtm.forget(t)
    (t.ctl / "ro.dat").unlink()
    digest = zdtmlib.images_digest(images)
    kids = _children()
    r = zdtm.restore(images)
    msg = _one_line_error(r)
    assert "ro.dat" in msg, msg
    assert not os.path.exists(f"/proc/{t.pid}"), f"PID {t.pid} exists after a failed restore"
    assert _children() == kids, "a failed restore left processes behind"
    assert zdtmlib.images_digest(images) == digest, "a failed restore changed the images"


def test_dump_missing_pid(zdtm) -> None:
    """Dumping a PID that does not exist: one line, non-zero exit."""
    pid = _free_pid()
    d = zdtm.dump(zdtmlib.Target(pid=pid, name="nothing", ctl=zdtm.tmp), zdtm.images())
    msg = _one_line_error(d)
    assert str(pid) in msg, msg


def _free_pid() -> int:
    for pid in range(32000, 30000, -1):
        if not os.path.exists(f"/proc/{pid}"):
            return pid
    raise AssertionError("no free PID")


def test_shell_job(zdtm) -> None:
    """A task that is not a session leader needs --shell-job, on dump and on restore, as with CRIU."""
    t = zdtm.start("counter", setsid=False)
    d = zdtm.dump(t, zdtm.images())
    msg = _one_line_error(d)
    assert "session leader" in msg and "--shell-job" in msg, msg
    zdtmlib.assert_runs_freely(t.pid)
    zdtm.cycle(t, dump_args=["--shell-job"], restore_args=["--shell-job"])
    t.check()


def test_restore_without_detach_returns_exit_status(zdtm) -> None:
    t = zdtm.start("counter", "--exit", "42")
    images = zdtm.images()
    d = zdtm.dump(t, images)
    assert d.rc == 0, d.explain()
    zdtm.forget(t)
    proc = zdtmlib.start_cli(["restore", "-D", str(images), "-o", "restore.log", "-v4"])
    try:
        zdtmlib.wait_for(lambda: _untraced(t.pid) or proc.poll() is not None, 30, "the restored task to run")
        assert proc.poll() is None, f"criu-py restore exited ({proc.returncode}): {proc.stderr.read()}"
        zdtmlib.assert_runs_freely(t.pid)
        os.kill(t.pid, signal.SIGUSR2)
        zdtmlib.wait_for(t.verdict, 30, "the verdict")
        assert t.verdict() == "PASS", t.describe()
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 42, f"criu-py exited {proc.returncode}, the task 42\n{err}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        t.restored = True


def _untraced(pid: int) -> bool:
    """Alive and no longer traced by the restorer (it is resumed)."""
    if not zdtmlib.pid_alive(pid):
        return False
    status = zdtmlib.snapshot(pid)["status"]
    return isinstance(status, dict) and status.get("TracerPid") == "0"


def test_pidfile(zdtm) -> None:
    t = zdtm.start("counter")
    pidfile = zdtm.tmp / "restored.pid"
    zdtm.cycle(t, restore_args=["--pidfile", str(pidfile)])
    assert pidfile.read_text().strip() == str(t.pid)
    t.check()


CRIT = ["/usr/bin/python3", "/usr/bin/crit"]


@pytest.mark.parametrize(
    ("target", "args"),
    [("fds", ()), ("sig_pending", ()), ("timers", ("posix",)), ("threads", ("4",)), ("tree", ("3",))],
    ids=["fds", "pending-signals", "posix-timers", "threads", "tree"],
)
def test_images_decode_with_crit(zdtm, target: str, args: tuple[str, ...]) -> None:
    """Every one of CRIU's image files we write decodes with Debian's crit (dump images; the fds case also the
    restore's stats). crit runs over CRIU's files only: criu-core's own criu-core-PID.img (none for these
    targets) has a magic crit does not know, and is decoded by ``criu-py show`` instead."""
    t = zdtm.start(target, *args)
    if target == "fds":
        d, _ = zdtm.cycle(t)
        images = Path(d.args[d.args.index("-D") + 1])
    else:
        images = zdtm.images()
        d = zdtm.dump(t, images, "--leave-running")
        assert d.rc == 0, d.explain()
    names = sorted(p.name for p in images.iterdir())
    assert "stats-dump" in names and "inventory.img" in names and "pstree.img" in names, names
    bad = []
    own = sorted(images.glob("criu-core-*.img"))  # criu-core's own image: not CRIU's, crit refuses its magic
    for p in sorted(images.iterdir()):
        if p.name.startswith("pages-") or p.name.endswith(".log") or p in own:
            continue  # raw page contents, no magic; logs
        res = subprocess.run([*CRIT, "decode", "-i", str(p)], capture_output=True, text=True, check=False)
        if res.returncode:
            bad.append(f"{p.name}: {res.stderr.strip()[-300:]}")
    assert not bad, "crit cannot decode:\n" + "\n".join(bad)
    for p in own:
        res = zdtmlib.run_cli(["show", str(p)])
        assert res.rc == 0 and '"CRIU_CORE_TASK"' in res.stdout, res.explain()
    t.check()
