"""The core's seams for device plugins, live: the device hooks around the seized tree, called from the tracer
thread; a thread let run with ``ctx.thread_running`` at dump and at restore; the file id known to the file hooks;
the remote handed to file restore; ``ctx.alloc_task_fd``; a failing resume-late fails the restore."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from criu_core import dump as dump_engine
from criu_core import restore as restore_engine
from criu_core.context import DumpContext, RestoreContext
from criu_core.errors import CriuError
from criu_core.hookspecs import hookimpl
from criu_core.images.imagedir import ImageDir
from criu_core.plugins import PluginHost
from criu_core.ptrace import RemoteTask

pytestmark = pytest.mark.root


def _counter(pid: int, addr: int) -> int:
    with open(f"/proc/{pid}/mem", "rb") as f:
        f.seek(addr)
        return int.from_bytes(f.read(8), "little")


def _tracer(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("TracerPid:"):
                return int(line.split()[1])
    return -1


def _window(ctx: Any, pid: int, tid: int, addr: int) -> tuple[int, ...]:
    """The counter before, inside and after a ``thread_running`` block, with pauses to let it move."""
    c0 = _counter(pid, addr)
    time.sleep(0.05)
    c1 = _counter(pid, addr)
    with ctx.thread_running(pid, tid):
        time.sleep(0.1)
        c2 = _counter(pid, addr)
    c3 = _counter(pid, addr)
    time.sleep(0.05)
    return c0, c1, c2, c3, _counter(pid, addr)


def _open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _moving(pid: int, addr: int) -> bool:
    c = _counter(pid, addr)
    time.sleep(0.1)
    return _counter(pid, addr) > c


class DevicePlugin:
    """Records where and in which state of the task each device hook runs; lets the helper thread run."""

    def __init__(self, pid: int, addr: int, helper: int, *, fail_file_dump: bool = False) -> None:
        self.pid, self.addr, self.helper = pid, addr, helper
        self.fail_file_dump = fail_file_dump
        self.tracer: dict[str, int] = {}
        self.threads: set[int] = set()
        self.windows: dict[str, tuple[int, ...]] = {}
        self.file_ids: dict[int, int] = {}
        self.fini: tuple[str, bool] | None = None
        self.sequence: list[str] = []
        self.local_fds: list[int] = []
        self.fds_open_at_fini: list[bool] = []

    def _at(self, hook: str) -> None:
        if not self.sequence or self.sequence[-1] != hook:
            self.sequence.append(hook)
        self.threads.add(threading.get_native_id())
        self.tracer.setdefault(hook, _tracer(self.pid))

    @hookimpl
    def criu_devices_pause(self, ctx: Any, task: Any) -> None:
        self._at("pause")

    @hookimpl
    def criu_devices_checkpoint(self, ctx: Any, task: Any) -> None:
        self._at("checkpoint")
        self.windows["checkpoint"] = _window(ctx, self.pid, self.helper, self.addr)

    @hookimpl
    def criu_file_dump(self, ctx: Any, fd: Any) -> None:
        self._at("file_dump")
        self.file_ids[fd.fd] = fd.file_id
        self.local_fds.append(fd.local_fd)
        if self.fail_file_dump:
            raise CriuError("the device refuses")

    @hookimpl
    def criu_devices_dump_late(self, ctx: Any, task: Any) -> None:
        self._at("dump_late")

    @hookimpl
    def criu_fini(self, ctx: Any, stage: str, success: bool) -> None:
        self._at("fini")
        self.fini = (stage, success)
        self.fds_open_at_fini = [_open(fd) for fd in self.local_fds]
        self.windows["fini"] = _window(ctx, self.pid, self.helper, self.addr)


@pytest.fixture
def helper(spawn: Any) -> tuple[Any, int, int]:
    t = spawn("helper")
    _, addr, tid = t.wait_output(lambda ls: bool(ls) and ls[0].startswith("ready"))[0].split()
    return t, int(addr, 16), int(tid)


def _dump(tmp_path: Path, plugin: object, pid: int, hook_recorder: Any = None, **options: object) -> Any:
    host = PluginHost(load_entry_points=False)
    host.register(plugin, "device-test")
    rec = hook_recorder(host) if hook_recorder else None
    opts = host.options.defaults()
    for k, v in options.items():
        setattr(opts, k, v)
    ctx = DumpContext(options=opts, host=host, images_dir=tmp_path / "images", root_pid=pid)
    try:
        dump_engine.run(ctx)
    finally:
        ctx.close()
    return rec


def _frozen_outside_moving_inside(w: tuple[int, ...]) -> bool:
    c0, c1, c2, c3, c4 = w
    return c0 == c1 and c2 > c1 and c3 == c4


def test_dump_device_hooks_run_seized_in_order_on_the_tracer_thread(helper, tmp_path, hook_recorder):
    t, addr, tid = helper
    plugin = DevicePlugin(t.pid, addr, tid)
    rec = _dump(tmp_path, plugin, t.pid, hook_recorder, leave_running=True)
    names = rec.names()
    first = {n: names.index(n) for n in dict.fromkeys(names)}
    last_file = max(i for i, n in enumerate(names) if n == "criu_file_dump")
    order = ["criu_init", "criu_devices_pause", "criu_tree_frozen", "criu_devices_checkpoint", "criu_vma_dump",
             "criu_file_dump"]
    assert [first[n] for n in order] == sorted(first[n] for n in order), names
    assert last_file < first["criu_devices_dump_late"], names
    # fini is called quietly (not through the monitored hook caller): the plugin saw it last
    assert plugin.sequence == ["pause", "checkpoint", "file_dump", "dump_late", "fini"]
    # paused while it runs; everything after that while it is ours, fini included (--leave-running)
    me = threading.get_native_id()
    assert plugin.tracer == {"pause": 0, "checkpoint": me, "file_dump": me, "dump_late": me, "fini": me}
    assert plugin.threads == {me}, "hooks are called from the tracer thread only"
    assert plugin.fini == ("dump", True)
    assert plugin.local_fds and all(plugin.fds_open_at_fini), "fini can still use the fd copies (FdInfo.local_fd)"
    # the helper thread ran inside ctx.thread_running and only there, at checkpoint and in fini
    assert _frozen_outside_moving_inside(plugin.windows["checkpoint"]), plugin.windows
    assert _frozen_outside_moving_inside(plugin.windows["fini"]), plugin.windows
    # the ids the file hooks were given are the ids of the task's fdinfo entries (fd 2 shares fd 1's file: kcmp)
    img = ImageDir(tmp_path / "images")
    files_id = img.read_one("ids", t.pid).files_id
    fdinfo = {e.msg.fd: e.msg.id for e in img.read("fdinfo", files_id).entries}
    assert plugin.file_ids and plugin.file_ids.items() <= fdinfo.items()
    assert t.alive() and _tracer(t.pid) == 0 and _moving(t.pid, addr)


def test_failed_dump_runs_fini_before_the_tree_is_released(helper, tmp_path):
    t, addr, tid = helper
    plugin = DevicePlugin(t.pid, addr, tid, fail_file_dump=True)
    with pytest.raises(CriuError, match="the device refuses"):
        _dump(tmp_path, plugin, t.pid)
    assert plugin.fini == ("dump", False)
    assert plugin.local_fds and all(plugin.fds_open_at_fini), "fini can still use the fd copies (FdInfo.local_fd)"
    assert plugin.tracer["fini"] == threading.get_native_id(), "fini can still talk to the traced task"
    assert _frozen_outside_moving_inside(plugin.windows["fini"]), plugin.windows
    assert "dump_late" not in plugin.tracer
    assert t.alive() and _tracer(t.pid) == 0 and _moving(t.pid, addr)


class RestorePlugin:
    """At restore: takes a descriptor number from the allocator and keeps one of its own there; lets the helper
    run in resume-late; optionally fails there."""

    def __init__(self, addr: int, helper: int, *, fail: bool = False) -> None:
        self.addr, self.helper, self.fail = addr, helper, fail
        self.remotes: list[tuple[int, int]] = []
        self.fds: list[int] = []
        self.tracer = -1
        self.window: tuple[int, ...] = ()

    @hookimpl
    def criu_file_restore(self, ctx: Any, file: Any, remote: Any) -> None:
        assert isinstance(remote, RemoteTask)
        self.remotes.append((file.pid, remote.pid))
        if not self.fds:
            self.fds = [ctx.alloc_task_fd(file.pid), ctx.alloc_task_fd(file.pid)]
            own = remote.syscall("pidfd_open", remote.pid, 0)
            remote.syscall("dup3", own, self.fds[0], 0)
            remote.syscall("close", own)

    @hookimpl
    def criu_devices_resume_late(self, ctx: Any, task: Any) -> None:
        self.tracer = _tracer(task.pid)
        if self.fail:
            raise RuntimeError("the device did not come back")
        self.window = _window(ctx, task.pid, self.helper, self.addr)


def _restore(tmp_path: Path, plugin: object) -> int:
    host = PluginHost(load_entry_points=False)
    host.register(plugin, "device-test")
    opts = host.options.defaults()
    opts.restore_detached = True
    ctx = RestoreContext(options=opts, host=host, images_dir=tmp_path / "images")
    try:
        return restore_engine.run(ctx)
    finally:
        ctx.close()


def _dumped(helper: Any, tmp_path: Path) -> tuple[int, int, int, list[int]]:
    t, addr, tid = helper
    pid = t.pid
    plugin = DevicePlugin(pid, addr, tid)
    _dump(tmp_path, plugin, pid)
    t.proc.wait(timeout=5)  # killed by the dump: reap it, its PID is restored next
    return pid, addr, tid, sorted(plugin.file_ids)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def test_restore_hands_the_task_to_file_hooks_and_lets_a_thread_run_before_detach(helper, tmp_path):
    pid, addr, tid, dumped_fds = _dumped(helper, tmp_path)
    plugin = RestorePlugin(addr, tid)
    try:
        _restore(tmp_path, plugin)
        assert plugin.remotes and all(a == b == pid for a, b in plugin.remotes)
        low, high = plugin.fds
        assert max(dumped_fds) < low < high, "above every dumped descriptor, a new one per call"
        assert os.readlink(f"/proc/{pid}/fd/{low}") == "anon_inode:[pidfd]", "kept through the fd installation"
        assert plugin.tracer == threading.get_native_id(), "resume-late runs before the tasks are detached"
        assert _frozen_outside_moving_inside(plugin.window), plugin.window
        assert _tracer(pid) == 0 and _moving(pid, addr)
    finally:
        _kill(pid)


def test_failed_resume_late_fails_the_restore_and_kills_the_tree(helper, tmp_path):
    pid, addr, tid, _ = _dumped(helper, tmp_path)
    try:
        with pytest.raises(CriuError, match="criu_devices_resume_late: the device did not come back"):
            _restore(tmp_path, RestorePlugin(addr, tid, fail=True))
        assert not os.path.exists(f"/proc/{pid}")
    finally:
        _kill(pid)
