"""``criu-py service``: the socket it binds, one worker per connection, standalone refusals, ``-d``."""

from __future__ import annotations

import errno
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

rpc = pytest.importorskip("criu_core.images.pb.rpc_pb2")


def _wait_for(path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text()):
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


@pytest.fixture
def service(rpc_env, tmp_path):
    """Start ``criu-py service --address SOCK`` in the background; yields the socket path."""
    sock = tmp_path / "criu.sock"
    sock.write_text("stale")  # a leftover file is unlinked, as CRIU does
    proc = subprocess.Popen(
        [sys.executable, "-m", "criu_core.cli", "service", "--address", str(sock)],
        env=rpc_env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not (sock.exists() and stat.S_ISSOCK(sock.stat().st_mode)):
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the service did not bind"
        time.sleep(0.02)
    yield sock
    proc.terminate()
    proc.wait(timeout=30)
    proc.stderr.close()


def _connect(path: Path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(str(path))
    s.settimeout(60)
    return s


def _ask(s: socket.socket, req) -> object:
    s.send(req.SerializeToString())
    resp = rpc.criu_resp()
    resp.ParseFromString(s.recv(1 << 16))
    return resp


def test_socket_is_world_connectable(service):
    assert stat.S_IMODE(service.stat().st_mode) == 0o666


def test_one_worker_per_connection(service):
    a, b = _connect(service), _connect(service)
    try:
        assert _ask(a, rpc.criu_req(type=rpc.VERSION, keep_open=True)).version.minor_number == 2
        assert _ask(b, rpc.criu_req(type=rpc.CHECK)).success
        assert _ask(a, rpc.criu_req(type=rpc.FEATURE_CHECK)).success
        assert a.recv(16) == b""  # the worker exits after a request without keep_open
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("field", ["inherit_fd", "rst_sibling"])
def test_swrk_only_fields_are_refused(service, tmp_path, field):
    o = rpc.criu_opts(images_dir_fd=-1, images_dir=str(tmp_path))
    if field == "inherit_fd":
        o.inherit_fd.add(key="pipe:[1]", fd=0)
    else:
        o.rst_sibling = True
    s = _connect(service)
    try:
        resp = _ask(s, rpc.criu_req(type=rpc.RESTORE, opts=o))
    finally:
        s.close()
    assert resp.type == rpc.RESTORE and not resp.success and resp.cr_errno == errno.EBADRQC
    assert f"{field} is not allowed in standalone service" in resp.cr_errmsg


def test_daemon_mode_writes_the_pidfile(rpc_env, tmp_path, subreaper):
    sock, pidfile = tmp_path / "d.sock", tmp_path / "service.pid"
    res = subprocess.run(
        [sys.executable, "-m", "criu_core.cli", "service", "-d", "--address", str(sock), "--pidfile", str(pidfile)],
        env=rpc_env,
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    _wait_for(pidfile)
    pid = int(pidfile.read_text())
    subreaper.append(pid)  # killed and reaped at teardown: it was re-parented to us
    assert pid != os.getpid()
    s = _connect(sock)
    try:
        assert _ask(s, rpc.criu_req(type=rpc.VERSION)).success
    finally:
        s.close()
