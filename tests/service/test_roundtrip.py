"""DUMP and RESTORE of a real task through ``criu-py swrk 3`` with the real engines (skipped until they are in
this build): notifications while the tree is frozen, a refused ``post-dump`` that leaves the task running,
and a restore with ``rst_sibling`` that answers the task's PID."""

from __future__ import annotations

import importlib.util
import os
import signal
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


def _converse(client, req, *, refuse=(), on_notify=None):
    """Send ``req``; ack every notification (refusing those in ``refuse``); return (names, pids, final)."""
    client.send(req)
    names, pids = [], {}
    while True:
        resp = client.recv()
        if resp.type != rpc.NOTIFY:
            return names, pids, resp
        names.append(resp.notify.script)
        if resp.notify.HasField("pid"):
            pids[resp.notify.script] = resp.notify.pid
        if on_notify is not None:
            on_notify(resp.notify.script)
        client.ack(resp.notify.script not in refuse)


def _state(pid: int) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("State:"):
            return line.split()[1]
    return "?"


def test_dump_and_restore_with_notifications(swrk, tmp_path, counter, subreaper):
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    count = tmp_path / "count"
    proc = counter(count)
    time.sleep(0.3)
    dfd = os.open(imgs, os.O_DIRECTORY)
    try:
        # A refused post-dump fails the dump and leaves the task running, as CRIU does.
        s = swrk()
        o = rpc.criu_opts(images_dir_fd=dfd, pid=proc.pid, notify_scripts=True, log_file="dump1.log", log_level=4)
        names, _, final = _converse(s.client, rpc.criu_req(type=rpc.DUMP, opts=o), refuse=("post-dump",))
        if not names:
            pytest.skip("the engines do not call ctx.notify yet")
        assert names == ["pre-dump", "query-ext-files", "post-dump"]
        assert final.type == rpc.DUMP and not final.success
        assert final.cr_errmsg.endswith("RPC client reported script error")
        assert s.wait() == 1
        before = _count(count)
        time.sleep(0.3)
        assert proc.poll() is None and _count(count) > before

        # The real dump: frozen (ptrace-stopped) while the client holds post-dump, killed after.
        states: list[str] = []
        s = swrk()
        o = rpc.criu_opts(images_dir_fd=dfd, pid=proc.pid, notify_scripts=True, log_file="dump.log", log_level=4)
        names, _, final = _converse(
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
        names, pids, final = _converse(s.client, rpc.criu_req(type=rpc.RESTORE, opts=o))
        assert final.type == rpc.RESTORE and final.success, final.cr_errmsg
        assert names == ["pre-restore", "post-restore", "pre-resume", "post-resume"]
        assert pids == {"post-restore": proc.pid} and final.restore.pid == proc.pid
        assert s.wait() == 0
    finally:
        os.close(dfd)
    time.sleep(0.5)
    assert Path(f"/proc/{proc.pid}/comm").read_text() == "counter\n"
    assert _count(count) > dumped_at  # it carries on from where it stopped
    assert (imgs / "dump.log").exists() and (imgs / "restore.log").exists()
