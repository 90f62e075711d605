"""DUMP and RESTORE of a real task through ``criu-py swrk 3`` with the real engines (skipped until they are in
this build): notifications while the tree is frozen, a refused ``post-dump`` that leaves the task running,
and a restore with ``rst_sibling`` that answers the task's PID."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

rpc = pytest.importorskip("criu_core.images.pb.rpc_pb2")


def _engines_missing() -> str | None:
    for name in ("criu_core.dump", "criu_core.restore"):
        if importlib.util.find_spec(name) is None:
            return f"{name} is not in this build yet"
    return None


pytestmark = [pytest.mark.root, pytest.mark.skipif(_engines_missing() is not None, reason=_engines_missing() or "")]


def _count(path: Path) -> int:
    text = path.read_text().strip() if path.exists() else ""
    return int(text) if text else 0


def _wait_count_above(path: Path, n: int, timeout: float = 10.0) -> int:
    """Poll the counter file until it passes ``n`` (the counter writes every 100 ms)."""
    deadline = time.monotonic() + timeout
    while (got := _count(path)) <= n:
        assert time.monotonic() < deadline, f"the counter stayed at {got} (needed more than {n})"
        time.sleep(0.02)
    return got


def _state(pid: int) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("State:"):
            return line.split()[1]
    return "?"


def test_dump_and_restore_with_notifications(swrk, tmp_path, counter, subreaper, converse):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    count = tmp_path / "count"
    proc = counter(count)
    _wait_count_above(count, 0)  # running
    dfd = os.open(imgs, os.O_DIRECTORY)
    try:
        # A refused post-dump fails the dump and leaves the task running, as CRIU does.
        s = swrk()
        o = rpc.criu_opts(images_dir_fd=dfd, pid=proc.pid, notify_scripts=True, log_file="dump1.log", log_level=4)
        names, _, final = converse(s.client, rpc.criu_req(type=rpc.DUMP, opts=o), acks={"post-dump": False})
        if not names:
            pytest.skip("the engines do not call ctx.notify yet")
        assert names == ["pre-dump", "query-ext-files", "post-dump"]
        assert final.type == rpc.DUMP and not final.success
        assert final.cr_errmsg.endswith("RPC client reported script error")
        assert s.wait() == 1
        _wait_count_above(count, _count(count))
        assert proc.poll() is None

        # The real dump: frozen (ptrace-stopped) while the client holds post-dump, killed after.
        states: list[str] = []
        s = swrk()
        o = rpc.criu_opts(images_dir_fd=dfd, pid=proc.pid, notify_scripts=True, log_file="dump.log", log_level=4)
        names, _, final = converse(
            s.client,
            rpc.criu_req(type=rpc.DUMP, opts=o),
            on_notify=lambda name: states.append(_state(proc.pid)) if name == "post-dump" else None,
        )
        assert final.success, final.cr_errmsg
        assert names == ["pre-dump", "query-ext-files", "post-dump"] and states == ["t"]
        assert s.wait() == 0
        assert proc.wait(timeout=30) == -signal.SIGKILL
        dumped_at = _count(count)

        s = swrk()
        o = rpc.criu_opts(images_dir_fd=dfd, notify_scripts=True, rst_sibling=True, log_file="restore.log", log_level=4)
        names, pids, final = converse(s.client, rpc.criu_req(type=rpc.RESTORE, opts=o))
        assert final.type == rpc.RESTORE and final.success, final.cr_errmsg
        assert names == ["pre-restore", "post-restore", "pre-resume", "post-resume"]
        assert pids == {"post-restore": proc.pid} and final.restore.pid == proc.pid
        assert s.wait() == 0
    finally:
        os.close(dfd)
    _wait_count_above(count, dumped_at)  # it carries on from where it stopped
    assert Path(f"/proc/{proc.pid}/comm").read_text() == "counter\n"
    assert (imgs / "dump.log").exists() and (imgs / "restore.log").exists()


def test_service_dump_with_work_dir_fd_leave_running(rpc_env, tmp_path, counter):
    imgs, work = tmp_path / "imgs", tmp_path / "work"
    imgs.mkdir()
    work.mkdir()
    count = tmp_path / "count"
    proc = counter(count)
    sock = tmp_path / "svc.sock"
    service = subprocess.Popen(
        [sys.executable, "-m", "criu_core.cli", "service", "--address", str(sock)],
        env=rpc_env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    dfd, wfd = os.open(imgs, os.O_DIRECTORY), os.open(work, os.O_DIRECTORY)
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            assert service.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.connect(str(sock))
        s.settimeout(60)
        o = rpc.criu_opts(
            images_dir_fd=dfd, work_dir_fd=wfd, pid=proc.pid, leave_running=True, log_file="dump.log", log_level=4
        )
        s.send(rpc.criu_req(type=rpc.DUMP, opts=o).SerializeToString())
        resp = rpc.criu_resp()
        resp.ParseFromString(s.recv(1 << 16))
        s.close()
    finally:
        os.close(dfd)
        os.close(wfd)
        service.terminate()
        service.wait(timeout=30)
    assert resp.type == rpc.DUMP and resp.success, resp.cr_errmsg
    assert (work / "dump.log").exists() and not (imgs / "dump.log").exists()
    assert (imgs / "inventory.img").exists()
    _wait_count_above(count, _count(count))  # leave_running: it goes on
    assert proc.poll() is None
