"""``criu-py swrk FD``: CRIU's transport and the requests the stand-in answers (VERSION, FEATURE_CHECK)."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

rpc = pytest.importorskip("criu_core.images.pb.rpc_pb2")


@pytest.fixture
def swrk(cli_env, tmp_path):
    """Start ``criu-py swrk FD`` on one end of a SOCK_SEQPACKET pair; yields (our end, process)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    proc = subprocess.Popen(
        [sys.executable, "-m", "criu_core.cli", "swrk", str(theirs.fileno())],
        pass_fds=[theirs.fileno()],
        env=cli_env,
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    theirs.close()
    yield ours, proc
    ours.close()
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _ask(sock: socket.socket, **fields) -> rpc.criu_resp:
    sock.send(rpc.criu_req(**fields).SerializeToString())
    resp = rpc.criu_resp()
    resp.ParseFromString(sock.recv(1 << 16))
    return resp


def test_version(swrk):
    sock, proc = swrk
    resp = _ask(sock, type=rpc.VERSION)
    assert resp.type == rpc.VERSION and resp.success
    assert (resp.version.major_number, resp.version.minor_number) == (4, 2)
    assert not resp.version.HasField("gitid")  # a release build, like CRIU 4.2's
    assert proc.wait(timeout=30) == 0


def test_feature_check_with_keep_open_serves_again(swrk):
    sock, proc = swrk
    for _ in range(2):
        resp = _ask(sock, type=rpc.FEATURE_CHECK, keep_open=True, features=rpc.criu_features(mem_track=True))
        assert resp.type == rpc.FEATURE_CHECK and resp.success
        # All three are always answered (pycriu and runc read them).
        assert all(resp.features.HasField(f) for f in ("mem_track", "lazy_pages", "pidfd_store"))
        assert resp.features.mem_track is False  # no soft-dirty tracking in criu-core
    resp = _ask(sock, type=rpc.VERSION)
    assert resp.success and proc.wait(timeout=30) == 0


def test_unparsable_request_gets_no_answer_and_exit_255(swrk):
    sock, proc = swrk
    sock.send(b"\xff\xff\xff")
    assert proc.wait(timeout=30) == 255
    assert "Traceback" not in proc.stderr.read()


def test_bad_fd_is_one_line(run_cli):
    res = run_cli("swrk", "x")
    assert res.returncode == 1 and res.stderr == "criu-py: swrk: bad file descriptor 'x'\n"
