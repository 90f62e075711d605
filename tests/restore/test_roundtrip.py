"""Round trip through our own dump and restore: a C counter keeps counting with the same PID and memory."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from criu_core.context import DumpContext, RestoreContext
from criu_core.options import Options
from criu_core.plugins import PluginHost

pytestmark = [pytest.mark.root, pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")]

TARGETS = Path(__file__).parent / "targets"


def _lines(log: Path) -> list[dict[str, str]]:
    out = []
    for line in log.read_text().splitlines():
        out.append(dict(kv.split("=", 1) for kv in line.split()))
    return out


def _wait_lines(log: Path, n: int, timeout: float = 10) -> list[dict[str, str]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = _lines(log) if log.exists() else []
        if len(lines) >= n:
            return lines
        time.sleep(0.05)
    raise AssertionError(f"{log} has fewer than {n} lines")


def _build(tmp_path: Path, name: str) -> Path:
    """Compile ``targets/<name>.c`` into ``tmp_path``."""
    exe = tmp_path / name
    subprocess.run(["gcc", "-O1", "-o", str(exe), str(TARGETS / f"{name}.c")], check=True)
    return exe


@contextmanager
def _running(argv: list[str], cwd: Path, stdout: Any = subprocess.DEVNULL) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``argv`` in a session of its own; kill and reap it on the way out if it is still running."""
    proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _dump(proc: subprocess.Popen[bytes], tmp_path: Path) -> Path:
    """Dump ``proc``'s tree with our dump into ``tmp_path/images`` (which kills it) and reap it; the images."""
    from criu_core import dump

    images = tmp_path / "images"
    images.mkdir()
    dctx = DumpContext(options=Options(), host=PluginHost(load_entry_points=False), images_dir=images,
                       root_pid=proc.pid, log=logging.getLogger("criu"))
    assert dump.run(dctx) == 0
    proc.wait(5)  # killed by the dump; reaping frees the PID
    return images


def _restore(images: Path) -> None:
    """Restore ``images`` detached with our restore."""
    from criu_core import restore

    rctx = RestoreContext(options=Options(restore_detached=True), host=PluginHost(load_entry_points=False),
                          images_dir=images, log=logging.getLogger("criu"))
    assert restore.run(rctx) == 0


def _c_round_trip(
    tmp_path: Path, restored: list[int], name: str, ready: int
) -> tuple[int, Path, Path, list[dict[str, str]]]:
    """Run C target ``name`` (its log as argv[1]) until it logged ``ready`` lines, dump it, restore it detached.

    Returns (pid, executable, log, the log lines written before the dump)."""
    exe = _build(tmp_path, name)
    log = tmp_path / f"{name}.log"
    with _running([str(exe), str(log)], tmp_path) as proc:
        pid = proc.pid
        _wait_lines(log, ready)
        images = _dump(proc, tmp_path)
    dumped = _lines(log)
    _restore(images)
    restored.append(pid)
    return pid, exe, log, dumped


def test_c_counter_round_trip(tmp_path: Path, restored: list[int]) -> None:
    pytest.importorskip("criu_core.dump")

    pid, exe, log, dumped = _c_round_trip(tmp_path, restored, "counter", 3)
    last = int(dumped[-1]["n"])
    lines = _wait_lines(log, len(dumped) + 5)
    after = lines[len(dumped):]
    assert [int(x["n"]) for x in after] == list(range(last + 1, last + 1 + len(after)))
    assert {x["pid"] for x in lines} == {str(pid)}
    assert {x["mem"] for x in lines} == {"ok"}
    assert os.readlink(f"/proc/{pid}/exe") == str(exe)


def test_signals_timers_seccomp_round_trip(tmp_path: Path, restored: list[int]) -> None:
    """itimer, SA_ONSTACK handler on a sigaltstack, blocked mask, no_new_privs and a seccomp filter survive;
    pause() interrupted by the dump is re-entered."""
    pytest.importorskip("criu_core.dump")

    pid, _exe, log, dumped = _c_round_trip(tmp_path, restored, "signals", 3)
    lines = _wait_lines(log, len(dumped) + 5)
    after = lines[len(dumped):]
    assert [int(x["n"]) for x in after] == list(range(int(dumped[-1]["n"]) + 1, int(dumped[-1]["n"]) + 1 + len(after)))
    assert int(after[-1]["ticks"]) > int(dumped[-1]["ticks"])
    assert all(x["onalt"] == "1" and x["usr1"] == "1" and x["sc"] == "1" and x["pid"] == str(pid) for x in after)
    status = Path(f"/proc/{pid}/status").read_text()
    assert "NoNewPrivs:\t1" in status and "Seccomp:\t2" in status


def _fdinfo(pid: int, fd: int) -> str:
    """/proc/PID/fdinfo/FD with runs of blanks squeezed to one space."""
    return " ".join(Path(f"/proc/{pid}/fdinfo/{fd}").read_text().split())


def test_pipe_eventfd_signalfd_timerfd_epoll_round_trip(tmp_path: Path, restored: list[int]) -> None:
    """Queued pipe bytes, the eventfd count, the signalfd mask, the timerfd interval and the epoll targets
    (with their data) are all back; the target's epoll keeps seeing both targets ready."""
    pytest.importorskip("criu_core.dump")

    pid, _exe, log, dumped = _c_round_trip(tmp_path, restored, "fds", 2)
    after = _wait_lines(log, len(dumped) + 3)[len(dumped):]
    assert all(x["ready"] == "2" and x["sum"] == "85" for x in after), after
    assert "eventfd-count: 5" in _fdinfo(pid, 5)
    assert "sigmask: 0000000000000200" in _fdinfo(pid, 6)
    assert "clockid: 1" in _fdinfo(pid, 7) and "it_interval: (10, 0)" in _fdinfo(pid, 7)
    assert "tfd: 3 events: 19 data: 2a" in _fdinfo(pid, 8) and "tfd: 5 events: 19 data: 2b" in _fdinfo(pid, 8)
    fd = os.open(f"/proc/{pid}/fd/3", os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert os.read(fd, 100) == b"hello-pipe"
    finally:
        os.close(fd)


def _descendants(pid: int) -> list[int]:
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        for child in Path(f"/proc/{pid}/task/{tid}/children").read_text().split():
            out += [int(child), *_descendants(int(child))]
    return out


@pytest.mark.parametrize("argv", [
    ["/bin/sh", "-c", "sleep 100000 & sleep 100001 & wait"],
    ["/usr/bin/python3", "-S", "-c",
     ("import threading, time\n"
     "def spin():\n    while True: time.sleep(0.05)\n"
     "for _ in range(3): threading.Thread(target=spin, daemon=True).start()\n"
     "while True: time.sleep(0.1)\n")],
], ids=["tree", "threads"])
def test_tree_and_threads_round_trip(tmp_path: Path, restored: list[int], argv: list[str]) -> None:
    """Our dump of a shell with two children, and of a python with three threads, restores with every PID/TID
    and the same parents."""
    pytest.importorskip("criu_core.dump")

    with _running(argv, tmp_path) as proc:
        pid = proc.pid
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(_descendants(pid)) + len(os.listdir(f"/proc/{pid}/task")) < 3:
            time.sleep(0.05)
        time.sleep(0.2)
        kids = sorted(_descendants(pid))
        tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
        images = _dump(proc, tmp_path)
    _restore(images)
    restored.extend([*kids, pid])
    assert sorted(_descendants(pid)) == kids
    assert sorted(int(t) for t in os.listdir(f"/proc/{pid}/task")) == tids
    for kid in kids:
        stat = Path(f"/proc/{kid}/stat").read_text()
        assert int(stat[stat.rindex(")") + 2:].split()[1]) == pid


def test_unix_sockets_and_pipe_round_trip(tmp_path: Path, restored: list[int]) -> None:
    """A pipe with data, a stream pair with queued bytes, a datagram pair with two datagrams and an abstract
    listening socket, dumped by our dump: all back, the listener accepting connections again."""
    import socket
    import sys

    from criu_core.sys.proc import pidfd_getfd

    pytest.importorskip("criu_core.dump")

    target = Path(__file__).parents[1] / "dump" / "sockets_target.py"
    if not target.exists():
        pytest.skip("the dump tests' socket target is not here")
    out = tmp_path / "out"
    with open(out, "w") as f, _running([sys.executable, "-S", str(target)], tmp_path, stdout=f) as proc:
        pid = proc.pid
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "ready" not in out.read_text():
            time.sleep(0.05)
        fds = [int(x) for x in out.read_text().split()[1:8]]
        r, _w, s1, s2, _d1, d2, _ls = fds
        images = _dump(proc, tmp_path)
    restored.append(pid)
    _restore(images)
    pidfd = os.pidfd_open(pid)
    try:
        rd = pidfd_getfd(pidfd, r)
        try:
            os.set_blocking(rd, False)
            assert os.read(rd, 100) == b"pipe-bytes-in-flight\n"
        finally:
            os.close(rd)
        with socket.socket(fileno=pidfd_getfd(pidfd, s2)) as sk:
            assert sk.recv(100, socket.MSG_DONTWAIT) == b"unix-stream-queued"
        with socket.socket(fileno=pidfd_getfd(pidfd, s1)) as sk:
            sk.send(b"ping")  # the pair is still connected both ways
        with socket.socket(fileno=pidfd_getfd(pidfd, d2)) as sk:
            assert [sk.recv(100, socket.MSG_DONTWAIT) for _ in range(2)] == [b"dgram-1", b"dgram-2"]
    finally:
        os.close(pidfd)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(b"\0criu-py-test-" + str(pid).encode())  # the restored listener takes connections
