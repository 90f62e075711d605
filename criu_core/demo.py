"""``criu-py demo``: checkpoint and restore an embedded workload, and show that it carried on.

Starts the demo counter (:mod:`criu_core.demo_workload`) in its own session, dumps it with ``criu-py dump``
(which kills it), restores it with ``criu-py restore -d`` and checks what a user would check: the same PID,
the count continuing from where it stopped, the memory pattern intact. Prints PIDs and timings.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main"]


def _cli(*args: str) -> tuple[int, float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "criu_core.cli", *args], check=False, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True)
    return proc.returncode, time.perf_counter() - t0, (proc.stderr or proc.stdout).strip()


def _lines(log: Path) -> list[str]:
    return [ln for ln in log.read_text().splitlines() if ln.strip()] if log.exists() else []


def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise SystemExit(f"criu-py demo: timed out waiting for {what}")
        time.sleep(0.02)


def _reap_until_gone(pid: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}"):
        try:
            os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"criu-py demo: task {pid} did not go away")
        time.sleep(0.01)


def main(argv: list[str] | None = None) -> int:
    from criu_core.sys.subreaper import set_child_subreaper

    set_child_subreaper(True)  # the restored task reparents to us; PID 1 here does not reap
    work = Path(tempfile.mkdtemp(prefix="criu-py-demo-"))
    images = work / "images"
    images.mkdir()
    log = work / "counter.log"
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    workload = Path(__file__).with_name("demo_workload.py")
    print(f"criu-py demo: work dir {work}")
    proc = subprocess.Popen([python, "-S", str(workload), str(log)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    pid = proc.pid
    restored = None
    try:
        _wait(lambda: len(_lines(log)) >= 5, 10, "the workload to start counting")
        print(f"  started workload      pid {pid}, counting: {_lines(log)[-1]}")
        rc, secs, err = _cli("dump", "-t", str(pid), "-D", str(images), "-o", "dump.log", "-v4")
        if rc != 0:
            print(f"  dump FAILED ({err})")
            return 1
        proc.wait()  # dump kills the task; reap it so its PID is free again
        at_dump = _lines(log)
        last = at_dump[-1]
        size = sum(f.stat().st_size for f in images.iterdir())
        print(f"  dumped and killed     in {secs * 1000:.0f} ms, {size / 1e6:.1f} MB of images, last line: {last}")
        _reap_until_gone(pid)
        rc, secs, err = _cli("restore", "-D", str(images), "-d", "-o", "restore.log", "-v4",
                             "--pidfile", str(work / "restored.pid"))
        if rc != 0:
            print(f"  restore FAILED ({err})")
            return 1
        restored = int((work / "restored.pid").read_text())
        before = len(at_dump)
        _wait(lambda: len(_lines(log)) >= before + 5, 10, "the restored workload to go on counting")
        lines = _lines(log)
        print(f"  restored              in {secs * 1000:.0f} ms, pid {restored}, counting on: {lines[-1]}")
        n_before = int(last.split("n=")[1].split()[0])
        n_after = [int(ln.split("n=")[1].split()[0]) for ln in lines[before:]]
        ok = (restored == pid and n_after[0] == n_before + 1 and all("mem=ok" in ln for ln in lines[before:])
              and all(f"pid={pid} " in ln for ln in lines[before:]))
        print(f"  same pid: {restored == pid}; count continued {n_before} -> {n_after[0]}; memory pattern intact: "
              f"{all('mem=ok' in ln for ln in lines[before:])}")
        print("criu-py demo: " + ("OK" if ok else "FAILED"))
        return 0 if ok else 1
    finally:
        for victim in {pid, restored} - {None}:
            try:
                os.kill(victim, signal.SIGKILL)
            except (ProcessLookupError, TypeError):
                pass
        try:
            proc.wait(timeout=1)
        except subprocess.TimeoutExpired:
            print(f"criu-py demo: workload {pid} did not exit after SIGKILL", file=sys.stderr)
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        if os.environ.get("CRIU_PY_DEMO_KEEP") is None:
            shutil.rmtree(work, ignore_errors=True)
