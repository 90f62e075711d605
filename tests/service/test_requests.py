"""DUMP and RESTORE requests against an in-process worker with stand-in engines: what the engines receive
(options, directories from client descriptors, the log), the RPC config file's precedence, self-dump,
errors as cr_errno/cr_errmsg, and notifications with their acks."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

import pytest

from criu_core.errors import CriuError, NoSuchProcess, PidInUse

rpc = pytest.importorskip("criu_core.images.pb.rpc_pb2")


def opts(**fields):
    fields.setdefault("images_dir_fd", -1)
    return rpc.criu_opts(**fields)


@pytest.fixture
def dirs(tmp_path: Path):
    """(images dir, work dir, their descriptors) - the descriptors are the client's, as runc passes them."""
    imgs, work = tmp_path / "imgs", tmp_path / "work"
    imgs.mkdir()
    work.mkdir()
    ifd, wfd = os.open(imgs, os.O_DIRECTORY), os.open(work, os.O_DIRECTORY)
    yield imgs, work, ifd, wfd
    os.close(ifd)
    os.close(wfd)


# ------------------------------------------------------------------------------------------------ dump


def test_dump_gets_client_dirs_log_and_options(in_process, engines, dirs):
    imgs, work, ifd, wfd = dirs

    def dump(ctx):
        ctx.log.info("stand-in dump engine ran")
        return 0

    engines["dump"] = dump
    w = in_process()
    o = opts(
        images_dir_fd=ifd,
        work_dir_fd=wfd,
        pid=4242,
        log_file="dump.log",
        log_level=4,
        leave_running=True,
        shell_job=True,
    )
    resp = w.client.ask(type=rpc.DUMP, opts=o)
    assert resp.type == rpc.DUMP and resp.success and resp.dump.HasField("restored") and not resp.dump.restored
    assert not resp.HasField("cr_errno") and not resp.HasField("cr_errmsg")
    assert w.wait() == 0
    ctx = engines["ctx"]
    assert ctx.stage == "dump" and ctx.root_pid == 4242 and int(ctx.options.tree) == 4242
    # /proc/<peer>/fd/N resolved to the directories the client holds.
    assert ctx.images_dir == imgs and ctx.work_dir == work
    assert ctx.options.leave_running and ctx.options.shell_job and ctx.options.verbosity == 4
    assert "stand-in dump engine ran" in (work / "dump.log").read_text()
    assert not (imgs / "dump.log").exists()


def test_images_dir_path_when_fd_is_minus_one(in_process, engines, tmp_path):
    w = in_process()
    resp = w.client.ask(type=rpc.DUMP, opts=opts(images_dir=str(tmp_path), pid=7))
    assert resp.success
    assert engines["ctx"].images_dir == tmp_path and engines["ctx"].work_dir == tmp_path
    assert (tmp_path / "criu.log").exists()  # no log_file: CRIU's default name, in the work dir


def test_images_dir_fd_that_is_not_a_directory(in_process, engines, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    fd = os.open(f, os.O_RDONLY)
    try:
        w = in_process()
        resp = w.client.ask(type=rpc.DUMP, opts=opts(images_dir_fd=fd, pid=7))
    finally:
        os.close(fd)
    assert not resp.success and resp.cr_errno == errno.EBADRQC and "images directory" in resp.cr_errmsg
    assert "ctx" not in engines


def test_leave_stopped_wins_over_leave_running(in_process, engines, tmp_path):
    w = in_process()
    assert w.client.ask(
        type=rpc.DUMP, opts=opts(images_dir=str(tmp_path), pid=7, leave_running=True, leave_stopped=True)
    ).success
    assert engines["ctx"].options.leave_stopped and not engines["ctx"].options.leave_running


def test_self_dump_dumps_the_peer_and_answers_only_if_it_survives(in_process, engines, tmp_path):
    w = in_process()
    w.client.send(rpc.criu_req(type=rpc.DUMP, opts=opts(images_dir=str(tmp_path))))
    assert w.wait() == 0
    assert engines["ctx"].root_pid == os.getpid()  # SO_PEERCRED of the socketpair: its creator, the client
    assert w.client.recv_raw() == b""  # a successful self-dump killed the client: no answer
    w = in_process()
    resp = w.client.ask(type=rpc.DUMP, opts=opts(images_dir=str(tmp_path), leave_running=True))
    assert resp.success and engines["ctx"].root_pid == os.getpid()


@pytest.mark.parametrize(
    ("error", "code", "text"),
    [
        (NoSuchProcess(4242), errno.ESRCH, "No such process: 4242"),
        (PidInUse(4242), errno.EEXIST, "PID 4242 is in use"),
        (CriuError("Unsupported mapping"), None, "Unsupported mapping"),
        (ValueError("boom"), None, "internal error: ValueError: boom"),
    ],
)
def test_engine_errors_become_cr_errno_and_first_error_line(in_process, engines, tmp_path, error, code, text):
    def dump(ctx):
        raise error

    engines["dump"] = dump
    w = in_process()
    resp = w.client.ask(type=rpc.DUMP, opts=opts(images_dir=str(tmp_path), pid=4242))
    assert not resp.success
    assert (resp.cr_errno if resp.HasField("cr_errno") else None) == code
    assert resp.cr_errmsg.startswith("Error (") and resp.cr_errmsg.endswith(text)
    assert w.wait() == 1
    log = (tmp_path / "criu.log").read_text()
    assert text in log
    if isinstance(error, ValueError):
        assert "Traceback" in log  # a bug: the traceback is in the log, the client got one line


def test_first_error_logged_wins_and_responses_stay_small(in_process, engines, tmp_path):
    def dump(ctx):
        ctx.log.error("the root cause")
        raise CriuError("x" * 100_000)

    engines["dump"] = dump
    w = in_process()
    resp = w.client.ask(type=rpc.DUMP, opts=opts(images_dir=str(tmp_path), pid=1))  # recv asserts < 8 KiB
    assert resp.cr_errmsg.endswith("the root cause")


def test_engine_exit_code_is_a_failure(in_process, engines, tmp_path):
    engines["dump"] = lambda ctx: 3
    w = in_process()
    resp = w.client.ask(type=rpc.DUMP, opts=opts(images_dir=str(tmp_path), pid=1))
    assert not resp.success and "dump failed with exit code 3" in resp.cr_errmsg
    assert w.wait() == 1


# ------------------------------------------------------------------------------------- RPC config file


def test_config_file_overrides_rpc_values(in_process, engines, dirs, tmp_path):
    imgs, _work, ifd, _wfd = dirs
    conf = tmp_path / "runc.conf"
    conf.write_text("log-file cfg-override.log\nleave-running\nverbosity=4\n")
    w = in_process()
    o = opts(images_dir_fd=ifd, pid=7, log_file="rpc.log", leave_running=False, log_level=1, config_file=str(conf))
    assert w.client.ask(type=rpc.DUMP, opts=o).success
    ctx = engines["ctx"]
    assert ctx.options.leave_running is True and ctx.options.verbosity == 4
    assert (imgs / "cfg-override.log").exists() and not (imgs / "rpc.log").exists()


def test_config_file_dirs_win_over_client_descriptors(in_process, engines, dirs, tmp_path):
    _imgs, _work, ifd, wfd = dirs
    other_imgs, other_work = tmp_path / "cfg-imgs", tmp_path / "cfg-work"
    other_imgs.mkdir()
    other_work.mkdir()
    conf = tmp_path / "c.conf"
    conf.write_text(f"images-dir {other_imgs}\nwork-dir {other_work}\n")
    w = in_process()
    assert w.client.ask(
        type=rpc.DUMP, opts=opts(images_dir_fd=ifd, work_dir_fd=wfd, pid=7, config_file=str(conf))
    ).success
    assert engines["ctx"].images_dir == other_imgs and engines["ctx"].work_dir == other_work


def test_missing_config_file_is_ignored(in_process, engines, tmp_path):
    w = in_process()
    resp = w.client.ask(
        type=rpc.DUMP, opts=opts(images_dir=str(tmp_path), pid=7, config_file="/etc/criu/does-not-exist.conf")
    )
    assert resp.success


def test_config_file_option_refused_names_the_file(in_process, engines, tmp_path):
    conf = tmp_path / "runc.conf"
    conf.write_text("tcp-established\n")
    w = in_process()
    resp = w.client.ask(type=rpc.DUMP, opts=opts(images_dir=str(tmp_path), pid=7, config_file=str(conf)))
    assert not resp.success and resp.cr_errno == errno.EBADRQC
    assert f"--tcp-established (set in RPC config file {conf})" in resp.cr_errmsg
    assert "ctx" not in engines


def test_config_file_with_an_unknown_option(in_process, engines, tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("bogus-option\n")
    w = in_process()
    resp = w.client.ask(type=rpc.DUMP, opts=opts(images_dir=str(tmp_path), pid=7, config_file=str(conf)))
    assert (
        not resp.success
        and resp.cr_errno == errno.EBADRQC
        and "unrecognized option '--bogus-option'" in (resp.cr_errmsg)
    )


# ---------------------------------------------------------------------------------------------- restore


def test_restore_is_detached_and_answers_the_root_pid(in_process, engines, dirs):
    imgs, _work, ifd, _wfd = dirs

    def restore(ctx):
        ctx.root_pid = 4321
        return 0

    engines["restore"] = restore
    w = in_process()
    resp = w.client.ask(type=rpc.RESTORE, opts=opts(images_dir_fd=ifd, log_file="restore.log", rst_sibling=True))
    assert resp.type == rpc.RESTORE and resp.success and resp.restore.pid == 4321
    ctx = engines["ctx"]
    assert ctx.stage == "restore" and ctx.options.restore_detached and ctx.options.restore_sibling
    assert (imgs / "restore.log").exists()
    assert w.wait() == 0


def test_failed_restore_answers_pid_minus_one(in_process, engines, tmp_path):
    def restore(ctx):
        raise PidInUse(11226)

    engines["restore"] = restore
    w = in_process()
    resp = w.client.ask(type=rpc.RESTORE, opts=opts(images_dir=str(tmp_path)))
    assert not resp.success and resp.restore.pid == -1 and resp.cr_errno == errno.EEXIST


def test_inherit_fd_in_swrk_is_an_unimplemented_option(in_process, engines, tmp_path):
    w = in_process(swrk=True)
    o = opts(images_dir=str(tmp_path), inherit_fd=[rpc.inherit_fd(key="pipe:[123]", fd=0)])
    resp = w.client.ask(type=rpc.RESTORE, opts=o)
    assert not resp.success and "--inherit-fd (RPC field inherit_fd)" in resp.cr_errmsg


@pytest.mark.parametrize(
    ("fields", "what"),
    [
        ({"rst_sibling": True}, "rst_sibling"),
        ({"inherit_fd": [rpc.inherit_fd(key="pipe:[1]", fd=0)]}, "inherit_fd"),
    ],
)
def test_standalone_service_refuses_swrk_only_fields(in_process, engines, tmp_path, fields, what):
    w = in_process(swrk=False)
    resp = w.client.ask(type=rpc.RESTORE, opts=opts(images_dir=str(tmp_path), **fields))
    assert not resp.success and resp.cr_errno == errno.EBADRQC
    assert f"{what} is not allowed in standalone service" in resp.cr_errmsg
    assert "ctx" not in engines


# ------------------------------------------------------------------------------------------ notifications


def _dump_with_points(ctx):
    ctx.notify("pre-dump")
    ctx.notify("query-ext-files")
    ctx.notify("post-dump")
    return 0


def _restore_with_points(ctx):
    ctx.notify("pre-restore")
    ctx.root_pid = 5555
    ctx.notify("post-restore", pid=5555)
    ctx.notify("pre-resume")
    ctx.notify("post-resume")
    return 0


def test_dump_notifications_in_order_then_the_answer(in_process, engines, tmp_path, converse):
    engines["dump"] = _dump_with_points
    w = in_process()
    req = rpc.criu_req(type=rpc.DUMP, opts=opts(images_dir=str(tmp_path), pid=7, notify_scripts=True))
    names, pids, final = converse(w.client, req, acks={"query-ext-files": ["unix[123]"]})
    assert names == ["pre-dump", "query-ext-files", "post-dump"] and pids == {}
    assert final.type == rpc.DUMP and final.success
    assert engines["ctx"].options.external == ["unix[123]"]  # added by the client's answer to query-ext-files


def test_restore_notifications_carry_the_pid_on_post_restore_only(in_process, engines, tmp_path, converse):
    engines["restore"] = _restore_with_points
    w = in_process()
    req = rpc.criu_req(type=rpc.RESTORE, opts=opts(images_dir=str(tmp_path), notify_scripts=True))
    names, pids, final = converse(w.client, req)
    assert names == ["pre-restore", "post-restore", "pre-resume", "post-resume"]
    assert pids == {"post-restore": 5555}
    assert final.type == rpc.RESTORE and final.success and final.restore.pid == 5555


def test_refused_ack_fails_the_request(in_process, engines, tmp_path, converse):
    seen = []

    def dump(ctx):
        try:
            return _dump_with_points(ctx)
        except CriuError as err:
            seen.append(str(err))
            raise

    engines["dump"] = dump
    w = in_process()
    req = rpc.criu_req(type=rpc.DUMP, opts=opts(images_dir=str(tmp_path), pid=7, notify_scripts=True))
    names, _, final = converse(w.client, req, acks={"post-dump": False})
    assert names == ["pre-dump", "query-ext-files", "post-dump"]
    assert final.type == rpc.DUMP and not final.success
    assert final.cr_errmsg.endswith("RPC client reported script error")
    assert seen == ["RPC client reported script error"]
    assert w.wait() == 1


def test_refused_post_resume_is_logged_not_fatal(in_process, engines, tmp_path, converse):
    engines["restore"] = _restore_with_points
    w = in_process()
    req = rpc.criu_req(type=rpc.RESTORE, opts=opts(images_dir=str(tmp_path), notify_scripts=True))
    _, _, final = converse(w.client, req, acks={"post-resume": False})
    assert final.success and final.restore.pid == 5555  # the tasks already run


def test_an_ack_of_the_wrong_type_is_a_script_error(in_process, engines, tmp_path):
    engines["dump"] = _dump_with_points
    w = in_process()
    w.client.send(rpc.criu_req(type=rpc.DUMP, opts=opts(images_dir=str(tmp_path), pid=7, notify_scripts=True)))
    assert w.client.recv().notify.script == "pre-dump"
    w.client.send(rpc.criu_req(type=rpc.VERSION))
    final = w.client.recv()
    assert final.type == rpc.DUMP and not final.success and "script error" in final.cr_errmsg


def test_no_notifications_without_notify_scripts(in_process, engines, tmp_path, converse):
    engines["dump"] = _dump_with_points
    w = in_process()
    names, _, final = converse(w.client, rpc.criu_req(type=rpc.DUMP, opts=opts(images_dir=str(tmp_path), pid=7)))
    assert names == [] and final.success


def test_errors_of_child_loggers_count_as_first_error(in_process, engines, tmp_path):
    def dump(ctx):
        ctx.log.getChild("myplugin").error("the plugin's reason")
        return 1

    engines["dump"] = dump
    w = in_process()
    resp = w.client.ask(type=rpc.DUMP, opts=opts(images_dir=str(tmp_path), pid=1))
    assert not resp.success and resp.cr_errmsg.endswith("the plugin's reason")


def test_log_to_stderr_writes_no_log_file(in_process, engines, tmp_path, capfd):
    engines["dump"] = lambda ctx: ctx.log.warning("to stderr") or 0
    w = in_process()
    assert w.client.ask(type=rpc.DUMP, opts=opts(images_dir=str(tmp_path), pid=1, log_to_stderr=True)).success
    assert not list(tmp_path.iterdir())
    assert "to stderr" in capfd.readouterr().err


def test_notify_can_carry_a_descriptor(in_process, engines, tmp_path):
    """orphan-pts-master: CRIU sends the pty master with the notification (SCM_RIGHTS); the engine keeps its own."""
    r, w_ = os.pipe()
    os.write(w_, b"from the engine")

    def restore(ctx):
        ctx.notify("orphan-pts-master", fd=r)
        os.fstat(r)  # still ours
        ctx.root_pid = 5555
        return 0

    engines["restore"] = restore
    w = in_process()
    w.client.send(rpc.criu_req(type=rpc.RESTORE, opts=opts(images_dir=str(tmp_path), notify_scripts=True)))
    sock = w.client.sock
    size = sock.recv_into(bytearray(1), 1, socket.MSG_PEEK | socket.MSG_TRUNC)
    data, ancdata, _, _ = sock.recvmsg(max(size, 1), socket.CMSG_SPACE(4))
    resp = rpc.criu_resp()
    resp.ParseFromString(data)
    assert resp.type == rpc.NOTIFY and resp.notify.script == "orphan-pts-master"
    [(level, kind, raw)] = ancdata
    assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_RIGHTS)
    got = int.from_bytes(raw[:4], "little")
    try:
        assert os.read(got, 100) == b"from the engine"
    finally:
        os.close(got)
    w.client.ack(True)
    final = w.client.recv()
    assert final.type == rpc.RESTORE and final.success
    os.close(r)
    os.close(w_)
