"""``criu-py swrk 3`` as a process, driven by a raw SOCK_SEQPACKET client: transport, request types, exit codes."""

from __future__ import annotations

import errno
import os
import socket
import sys
from pathlib import Path

import pytest

rpc = pytest.importorskip("criu_core.images.pb.rpc_pb2")


def opts(**fields):
    """criu_opts as clients build them: images_dir_fd is required (-1: none)."""
    fields.setdefault("images_dir_fd", -1)
    return rpc.criu_opts(**fields)


def test_version(swrk):
    s = swrk()
    resp = s.client.ask(type=rpc.VERSION)
    assert resp.type == rpc.VERSION and resp.success
    assert (resp.version.major_number, resp.version.minor_number) == (4, 2)
    # A release build: a gitid would make go-criu and libcriu read the version as 4.3.
    assert not resp.version.HasField("gitid") and not resp.version.HasField("sublevel")
    assert s.wait() == 0


def test_feature_check_reports_all_three_and_supports_none(swrk):
    s = swrk()
    resp = s.client.ask(
        type=rpc.FEATURE_CHECK, features=rpc.criu_features(mem_track=True, lazy_pages=True, pidfd_store=True)
    )
    assert resp.type == rpc.FEATURE_CHECK and resp.success
    assert all(resp.features.HasField(f) for f in ("mem_track", "lazy_pages", "pidfd_store"))
    # No soft-dirty on this kernel and no pre-dump in criu-py: runc and podman then refuse pre-checkpoints.
    assert (resp.features.mem_track, resp.features.lazy_pages, resp.features.pidfd_store) == (False, False, False)
    assert s.wait() == 0


def test_check_runs_the_kernel_probes(swrk):
    s = swrk()
    resp = s.client.ask(type=rpc.CHECK)
    assert resp.type == rpc.CHECK and resp.success, resp.cr_errmsg
    assert s.wait() == 0
    assert s.proc.stdout.read() == "Looks good.\n"


def test_check_with_a_log_file_writes_it_in_the_images_dir(swrk, tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    fd = os.open(d, os.O_DIRECTORY)
    try:
        s = swrk()
        resp = s.client.ask(type=rpc.CHECK, opts=opts(images_dir_fd=fd, log_file="check.log", log_level=4))
        assert resp.success, resp.cr_errmsg
        assert s.wait() == 0
    finally:
        os.close(fd)
    assert "check" in (d / "check.log").read_text()


def test_unknown_type_gets_empty_and_exit_255(swrk):
    s = swrk()
    s.client.send_raw(b"\x08\x63")  # criu_req{type: 99}: no such request type
    resp = s.client.recv()
    assert resp.type == rpc.EMPTY and not resp.success
    assert s.wait() == 255


def test_garbage_gets_no_answer_and_exit_255(swrk):
    s = swrk()
    s.client.send_raw(b"\xff\xff\xff")
    assert s.client.recv_raw() == b""
    assert s.wait() == 255
    assert "Traceback" not in s.stderr


def test_keep_open_version_then_check_on_one_socket(swrk):
    s = swrk()
    resp = s.client.ask(type=rpc.VERSION, keep_open=True)
    assert resp.success and resp.version.major_number == 4
    resp = s.client.ask(type=rpc.FEATURE_CHECK, keep_open=True, features=rpc.criu_features(mem_track=True))
    assert resp.success
    resp = s.client.ask(type=rpc.CHECK)
    assert resp.type == rpc.CHECK and resp.success
    assert s.wait() == 0


def test_keep_open_with_dump_exits_without_answering(swrk, tmp_path):
    s = swrk()
    s.client.send(rpc.criu_req(type=rpc.DUMP, keep_open=True, opts=opts(images_dir=str(tmp_path), pid=1)))
    assert s.client.recv_raw() == b""
    assert s.wait() == 255
    assert not list(tmp_path.glob("*.log"))  # nothing was set up


def test_client_gone_after_keep_open(swrk):
    s = swrk()
    assert s.client.ask(type=rpc.VERSION, keep_open=True).success
    s.client.close()
    assert s.wait() == 255  # CRIU: "Client exited unexpectedly"


def test_dump_without_images_dir_is_a_bad_request(swrk):
    s = swrk()
    resp = s.client.ask(type=rpc.DUMP, opts=opts(pid=1))
    assert resp.type == rpc.DUMP and not resp.success
    assert resp.cr_errno == errno.EBADRQC
    assert "Neither images_dir_fd nor images_dir was passed by RPC client" in resp.cr_errmsg
    assert s.wait() == 1
    assert "Traceback" not in s.stderr


def test_unimplemented_option_is_refused_like_the_cli(swrk, tmp_path):
    fd = os.open(tmp_path, os.O_DIRECTORY)
    try:
        s = swrk()
        resp = s.client.ask(type=rpc.DUMP, opts=opts(images_dir_fd=fd, pid=1, tcp_established=True))
    finally:
        os.close(fd)
    assert not resp.success and resp.cr_errno == errno.EBADRQC
    assert "--tcp-established (RPC field tcp_established) is recognised but not supported" in resp.cr_errmsg
    assert s.wait() == 1


def test_log_file_with_a_slash_is_refused(swrk, tmp_path):
    s = swrk()
    resp = s.client.ask(type=rpc.DUMP, opts=opts(images_dir=str(tmp_path), pid=1, log_file="../x.log"))
    assert not resp.success and resp.cr_errno == errno.EBADRQC and "No subdirs" in resp.cr_errmsg
    assert not (tmp_path.parent / "x.log").exists()


def test_pre_dump_is_refused_with_a_reason(swrk, tmp_path):
    for kind in (rpc.PRE_DUMP, rpc.SINGLE_PRE_DUMP):
        s = swrk()
        resp = s.client.ask(type=kind, opts=opts(images_dir=str(tmp_path), pid=1))
        assert resp.type == kind and not resp.success
        assert "pre-dump is not supported" in resp.cr_errmsg and "soft-dirty" in resp.cr_errmsg
        assert resp.cr_errno == errno.EOPNOTSUPP
        assert s.wait() == 1


def test_page_server_and_cpuinfo_are_refused(swrk, tmp_path):
    for kind in (rpc.PAGE_SERVER, rpc.PAGE_SERVER_CHLD, rpc.CPUINFO_DUMP, rpc.CPUINFO_CHECK):
        s = swrk()
        resp = s.client.ask(type=kind, opts=opts(images_dir=str(tmp_path)))
        assert resp.type == kind and not resp.success and "not supported by criu-py" in resp.cr_errmsg
        assert s.wait() == 1


def test_wait_pid_on_a_non_child_fails(swrk):
    s = swrk()
    resp = s.client.ask(type=rpc.WAIT_PID, pid=os.getpid())
    assert resp.type == rpc.WAIT_PID and not resp.success and resp.cr_errno == errno.ECHILD
    assert s.wait() == 0


def test_dump_of_a_missing_task_fails_with_one_line(swrk, tmp_path: Path):
    # Whatever engine is installed (or none yet), the client gets success false and one line, never a traceback.
    s = swrk()
    resp = s.client.ask(type=rpc.DUMP, opts=opts(images_dir=str(tmp_path), pid=2**22 + 7))
    assert resp.type == rpc.DUMP and not resp.success and resp.cr_errmsg
    assert "\n" not in resp.cr_errmsg
    assert s.wait() == 1
    assert "Traceback" not in s.stderr
    assert (tmp_path / "criu.log").exists()  # CRIU's default log name in RPC mode, in the work dir


def test_check_with_a_log_file_needs_a_directory(swrk):
    s = swrk()
    resp = s.client.ask(type=rpc.CHECK, opts=opts(log_file="check.log"))
    assert resp.type == rpc.CHECK and not resp.success and resp.cr_errno == errno.EBADRQC
    assert "images-dir or work-dir is required when using log file" in resp.cr_errmsg
    assert s.wait() == 0  # CHECK exits 0 once answered, as CRIU


def test_swrk_with_closed_stdio_answers(rpc_env, tmp_path):
    # pycriu and libcriu close fds 0-2 before exec'ing swrk: nothing may land on them, nothing may crash.
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    os.set_inheritable(theirs.fileno(), True)
    argv = [sys.executable, "-m", "criu_core.cli", "swrk", str(theirs.fileno())]
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.chdir(tmp_path)
            for fd in (0, 1, 2):
                os.close(fd)
            os.execve(argv[0], argv, rpc_env)
        finally:
            os._exit(127)
    theirs.close()
    try:
        ours.settimeout(60)
        ours.send(rpc.criu_req(type=rpc.CHECK).SerializeToString())
        resp = rpc.criu_resp()
        resp.ParseFromString(ours.recv(1 << 16))
        assert resp.type == rpc.CHECK and resp.success
    finally:
        ours.close()
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
