"""End to end through ``criu-py`` with real uprobes, as CRIU 4.2's recipe (criu-4.2-features.md §1.5):
dump without the option is refused and the task runs on; dump with it; restore without it is refused;
restore with it and the task carries on and keeps hitting the probe.

Needs the core's dump and restore engines (``criu_core.dump``, ``criu_core.restore``): skipped until they exist.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from criu_core.images.imagedir import ImageDir

pytestmark = [pytest.mark.root, pytest.mark.slow]

_MISSING = [m for m in ("criu_core.dump", "criu_core.restore") if importlib.util.find_spec(m) is None]
if _MISSING:
    pytestmark.append(
        pytest.mark.skip(reason=f"needs the core dump/restore engines: {', '.join(_MISSING)} not on this branch yet")
    )


def criu_py() -> list[str]:
    script = Path(sys.executable).with_name("criu-py")
    if script.exists():
        return [str(script)]
    found = shutil.which("criu-py")
    return [found] if found else [sys.executable, "-m", "criu_core.cli"]


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``criu-py ARGS`` in ``cwd``; the ``-D`` directory is created first (as with CRIU, it must exist)."""
    if "-D" in args:
        (cwd / args[args.index("-D") + 1]).mkdir(exist_ok=True)
    return subprocess.run(
        [*criu_py(), *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def probed_target(uprobe, spawn_target, wait_for, maps_line, symbol: str, mode: str, mapping: str):
    """Enable a uprobe on ``symbol``, start the target in ``mode`` and wait for ``mapping`` in its maps."""
    ev = uprobe(symbol)
    ev.enable()
    t = spawn_target(mode)
    wait_for(lambda: maps_line(t.pid, mapping), what=f"{mapping} in the target's maps")
    return ev, t


def dump_ok(t, tmp_path: Path, *args: str) -> None:
    """``criu-py dump -t PID -D d ARGS`` succeeds; the dumped task is reaped so its PID is free for the restore."""
    res = run("dump", "-t", str(t.pid), "-D", "d", *args, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    t.proc.wait()


def restore_ok(subreaper, pid: int, tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> None:
    """``criu-py restore -D d -d ARGS`` succeeds; ``pid`` is left to the subreaper fixture to kill and reap."""
    res = run("restore", "-D", "d", "-d", *args, cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    subreaper.append(pid)


def iterations(log: Path) -> int:
    lines = [ln for ln in log.read_text().splitlines() if ln.startswith("iter ")]
    return int(lines[-1].split()[1]) if lines else -1


def test_dump_and_restore_with_a_real_uprobe(subreaper, uprobe, spawn_target, wait_for, maps_line, tmp_path):
    ev, t = probed_target(uprobe, spawn_target, wait_for, maps_line, "uprobe_target", "xol", "[uprobes]")
    pid = t.pid

    res = run("dump", "-t", str(pid), "-D", "d0", "-v4", "-o", "dump.log", cwd=tmp_path)
    assert res.returncode != 0
    assert f"PID {pid} has uprobes vma. Consider using --allow-uprobes" in res.stderr + _log(tmp_path / "d0/dump.log")
    before = t.iterations()
    wait_for(lambda: t.iterations() > before + 2, what="the task to run on after the refused dump")

    res = run("dump", "-t", str(pid), "-D", "d1", "-v4", "-o", "dump.log", "--allow-uprobes", cwd=tmp_path)
    assert res.returncode == 0, res.stderr + _log(tmp_path / "d1/dump.log")
    t.proc.wait()  # reap: the PID must be free for the restore
    at_dump = t.iterations()
    inv = ImageDir(tmp_path / "d1").read_one("inventory")
    assert inv.HasField("allow_uprobes") and inv.allow_uprobes  # what CRIU 4.2 also checks at restore
    assert "uprobes" not in inv.plugins_entry.plugins  # CRIU 4.2 has no such plugin: it must not be named

    res = run("restore", "-D", "d1", "-d", "-v4", "-o", "restore.log", cwd=tmp_path)
    assert res.returncode != 0
    assert "Dumped with --allow-uprobes. Need to set it on restore as well." in res.stderr  # CRIU 4.2's words
    assert not alive(pid)

    hits = ev.hits()
    res = run("restore", "-D", "d1", "-d", "-v4", "-o", "restore.log", "--allow-uprobes", cwd=tmp_path)
    assert res.returncode == 0, res.stderr + _log(tmp_path / "d1/restore.log")
    subreaper.append(pid)
    wait_for(lambda: alive(pid) and t.iterations() > at_dump + 2, what="the restored task to carry on")
    wait_for(lambda: ev.hits() > hits + 2, what="the probe's hit count to keep rising")
    wait_for(lambda: maps_line(pid, "[uprobes]"), what="the kernel to map [uprobes] again")
    assert "SIGTRAP" not in t.output()


def _log(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def test_probe_removed_before_restore_gives_sigtrap(subreaper, uprobe, spawn_target, wait_for, maps_line, tmp_path):
    """What --allow-uprobes promises away: the dumped code holds the breakpoint; without the probe, SIGTRAP."""
    ev, t = probed_target(uprobe, spawn_target, wait_for, maps_line, "uprobe_target", "xol", "[uprobes]")
    pid = t.pid
    dump_ok(t, tmp_path, "--allow-uprobes")
    ev.remove()
    restore_ok(subreaper, pid, tmp_path, "--allow-uprobes")
    status = wait_for(lambda: reaped(pid), what="the restored task to die")
    # Killed by SIGTRAP, or its SIGTRAP handler ran ("SIGTRAP si_code=0x80", exit 42) where the dump kept it.
    assert (os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTRAP) or (
        os.WEXITSTATUS(status) == 42 and "SIGTRAP si_code=0x80" in t.output()
    )


def reaped(pid: int) -> int | None:
    """The wait status of our (subreaper's) child ``pid`` once it has ended, else None."""
    try:
        got, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    return status if got == pid else None


def test_sigtrap_handler_survives_dump_and_restore(subreaper, spawn_target, wait_for, tmp_path):
    t = spawn_target("xol")
    pid = t.pid
    wait_for(lambda: t.iterations() >= 1, what="the target to loop")
    dump_ok(t, tmp_path)
    restore_ok(subreaper, pid, tmp_path)
    with open(f"/proc/{pid}/status") as f:
        sigcgt = int(next(ln for ln in f if ln.startswith("SigCgt:")).split()[1], 16)
    assert sigcgt & (1 << (signal.SIGTRAP - 1))


def test_optimised_uprobe_survives_dump_and_restore(subreaper, uprobe, spawn_target, wait_for, maps_line, tmp_path):
    """The trampoline case: sites unoptimised at dump, the restored task keeps hitting the probe."""
    ev, t = probed_target(uprobe, spawn_target, wait_for, maps_line, "nop5_target", "nop5", "[uprobes-trampoline]")
    pid = t.pid
    dump_ok(t, tmp_path, "--allow-uprobes")
    at_dump, hits = t.iterations(), ev.hits()
    restore_ok(subreaper, pid, tmp_path, "--allow-uprobes")
    wait_for(lambda: alive(pid) and t.iterations() > at_dump + 2, what="the restored task to carry on")
    wait_for(lambda: ev.hits() > hits, what="the probe to fire in the restored task")
    wait_for(lambda: maps_line(pid, "[uprobes-trampoline]"), what="the kernel to optimise the site again")


def test_probe_removed_before_restore_with_resync_carries_on(
    subreaper, uprobe, spawn_target, wait_for, maps_line, tmp_path
):
    """criu-core's --uprobes-resync: the stale breakpoint is replaced by the file's byte, no SIGTRAP."""
    ev, t = probed_target(uprobe, spawn_target, wait_for, maps_line, "uprobe_target", "xol", "[uprobes]")
    pid = t.pid
    dump_ok(t, tmp_path, "--allow-uprobes")
    at_dump = t.iterations()
    ev.remove()
    restore_ok(subreaper, pid, tmp_path, "--allow-uprobes", "--uprobes-resync")
    wait_for(lambda: alive(pid) and t.iterations() > at_dump + 2, what="the restored task to carry on")
    assert "SIGTRAP" not in t.output()


def test_option_from_configuration_files(subreaper, uprobe, spawn_target, wait_for, maps_line, tmp_path):
    """As verified with CRIU 4.2: ``--config FILE`` at dump, ``$CRIU_CONFIG_FILE`` at restore (the RPC route)."""
    conf = tmp_path / "up.conf"
    conf.write_text("# uprobes\nallow-uprobes\n")
    ev, t = probed_target(uprobe, spawn_target, wait_for, maps_line, "uprobe_target", "xol", "[uprobes]")
    pid = t.pid
    dump_ok(t, tmp_path, "--config", str(conf))
    at_dump, hits = t.iterations(), ev.hits()
    restore_ok(subreaper, pid, tmp_path, env={"CRIU_CONFIG_FILE": str(conf)})
    wait_for(lambda: alive(pid) and t.iterations() > at_dump + 2, what="the restored task to carry on")
    wait_for(lambda: ev.hits() > hits + 2, what="the probe's hit count to keep rising")
