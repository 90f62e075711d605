"""Helpers for the RPC tests: a raw SOCK_SEQPACKET client, ``criu-py swrk 3`` as a process (the way runc starts
it), and an in-process worker with stand-in engines for what the real engines decide.

Every environment points the "global" config directory and ``$HOME`` at temporary directories, so
/etc/criu and the real home directory are never read.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

rpc = pytest.importorskip("criu_core.images.pb.rpc_pb2")

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60


class Client:
    """The client's end of the socket: ``ask(type=..., opts=...)`` sends one criu_req and reads one criu_resp."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        sock.settimeout(TIMEOUT)

    def send(self, req: Any) -> None:
        self.sock.send(req.SerializeToString())

    def send_raw(self, data: bytes) -> None:
        self.sock.send(data)

    def recv_raw(self) -> bytes:
        size = self.sock.recv_into(bytearray(1), 1, socket.MSG_PEEK | socket.MSG_TRUNC)
        return self.sock.recv(max(size, 1))

    def recv(self) -> Any:
        data = self.recv_raw()
        assert data, "the server closed the connection without an answer"
        assert len(data) < 8192, f"response of {len(data)} bytes"
        resp = rpc.criu_resp()
        resp.ParseFromString(data)
        return resp

    def ask(self, **fields: Any) -> Any:
        self.send(rpc.criu_req(**fields))
        return self.recv()

    def ack(self, success: bool = True, **fields: Any) -> None:
        self.send(rpc.criu_req(type=rpc.NOTIFY, notify_success=success, **fields))

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def rpc_env(tmp_path: Path) -> dict[str, str]:
    """Environment for a ``criu-py`` process: this checkout on PYTHONPATH, isolated config locations."""
    (tmp_path / "etc").mkdir(exist_ok=True)
    (tmp_path / "home").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("CRIU_CONFIG_FILE", "CRIU_PY_DISABLE_PLUGINS")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["CRIU_PY_GLOBAL_CONFIG_DIR"] = str(tmp_path / "etc")
    env["HOME"] = str(tmp_path / "home")
    return env


# A trampoline that moves the socket to fd 3 (runc's ExtraFiles[0]), closes the original number and execs.
_AT_FD3 = (
    "import os, sys\n"
    "fd = int(sys.argv[1])\n"
    "if fd != 3:\n"
    "    os.dup2(fd, 3)\n"
    "    os.close(fd)\n"
    "os.set_inheritable(3, True)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


class Swrk:
    """``python -m criu_core.cli swrk 3`` with the socket at fd 3, as runc starts criu."""

    def __init__(self, env: dict[str, str], cwd: Path, args: tuple[str, ...] = ()) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fd = theirs.fileno()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _AT_FD3, str(fd), sys.executable, "-m", "criu_core.cli", *args, "swrk", "3"],
            pass_fds=[fd],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        theirs.close()
        self.client = Client(ours)

    def wait(self) -> int:
        return self.proc.wait(timeout=TIMEOUT)

    @property
    def stderr(self) -> str:
        self.wait()
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def close(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def swrk(rpc_env: dict[str, str], tmp_path: Path) -> Iterator[Any]:
    """``swrk()`` starts one ``criu-py swrk 3``; every one started is closed at teardown."""
    started: list[Swrk] = []

    def start(*args: str) -> Swrk:
        s = Swrk(rpc_env, tmp_path, args)
        started.append(s)
        return s

    yield start
    for s in started:
        s.close()


# ------------------------------------------------------------------------------------------- in-process


class InProcess:
    """A :class:`~criu_core.service.worker.Worker` serving one end of a socketpair in a thread."""

    def __init__(self, swrk: bool, options: dict[str, Any] | None = None) -> None:
        from criu_core.cli.app import install_table
        from criu_core.plugins import PluginHost
        from criu_core.service.worker import Worker

        host = PluginHost(load_entry_points=False)
        registry = install_table(host.options)
        base = registry.defaults()
        for key, value in (options or {}).items():
            setattr(base, key, value)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.client = Client(ours)
        self._theirs = theirs
        self.worker = Worker(theirs, options=base, given={}, host=host, registry=registry, swrk=swrk)
        self.code: int | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            self.code = self.worker.serve()
        except BaseException as exc:  # noqa: BLE001 - reported by wait()
            self.error = exc
        finally:
            # The worker process would exit here: the client sees EOF.
            self._theirs.close()

    def wait(self) -> int | None:
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive(), "the worker did not finish"
        if self.error is not None:
            raise self.error
        return self.code


@pytest.fixture
def in_process() -> Iterator[Any]:
    """``in_process(swrk=True)`` -> InProcess; closed at teardown."""
    made: list[InProcess] = []

    def make(swrk: bool = True, **options: Any) -> InProcess:
        w = InProcess(swrk, options)
        made.append(w)
        return w

    yield make
    from criu_core.log import close_logging

    for w in made:
        w.client.close()
        w.thread.join(TIMEOUT)
    close_logging()


@pytest.fixture
def engines(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Stand-in ``criu_core.dump`` / ``criu_core.restore``: tests set ``engines["dump"] = fn(ctx) -> int``.

    Each call records its context under ``engines["ctx"]``. The stand-ins make these tests hold before and
    after the real engines land.
    """
    table: dict[str, Any] = {"dump": lambda ctx: 0, "restore": lambda ctx: 0}

    def runner(kind: str):
        def run(ctx: Any) -> int:
            table.setdefault("ctxs", []).append(ctx)
            table["ctx"] = ctx
            return table[kind](ctx)

        return run

    monkeypatch.setitem(sys.modules, "criu_core.dump", types.SimpleNamespace(run=runner("dump")))
    monkeypatch.setitem(sys.modules, "criu_core.restore", types.SimpleNamespace(run=runner("restore")))
    return table


# ---------------------------------------------------------------------------------------------- targets

_COUNTER_C = r"""
#include <fcntl.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    struct timespec tick = {0, 100 * 1000 * 1000};
    long i = 0;

    for (;;) {
        /* no O_TRUNC: a reader never sees an empty file; the number only grows, so no stale tail is left */
        int fd = open(argv[1], O_WRONLY | O_CREAT, 0644);

        if (fd >= 0) {
            char buf[32];
            int n = snprintf(buf, sizeof(buf), "%ld\n", ++i);

            pwrite(fd, buf, n, 0);
            close(fd);
        }
        nanosleep(&tick, NULL);
    }
}
"""


@pytest.fixture(scope="session")
def counter_exe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-process C counter writing ``i`` into the file ``argv[1]`` every 100 ms (built once)."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    d = tmp_path_factory.mktemp("counter")
    src, exe = d / "counter.c", d / "counter"
    src.write_text(_COUNTER_C)
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(src)], check=True, timeout=60)
    return exe


@pytest.fixture
def counter(counter_exe: Path, subreaper: list[int]) -> Any:
    """``counter(path)`` starts the counter as a session leader (no shell_job needed), stdio on /dev/null."""

    def start(path: Path) -> subprocess.Popen:
        proc = subprocess.Popen(
            [str(counter_exe), str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        subreaper.append(proc.pid)
        return proc

    return start


@pytest.fixture
def converse() -> Any:
    """``names, pids, final = converse(client, req, acks={...}, on_notify=fn)`` sends ``req`` and answers every
    notification until the final response: ``acks[name]`` False refuses it, a list answers query-ext-files with
    those externals; ``on_notify(name)`` runs before each ack (while criu-py waits for it)."""

    def run(client: Any, req: Any, acks: dict[str, Any] | None = None, on_notify: Any = None) -> Any:
        acks = acks or {}
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
            answer = acks.get(resp.notify.script, True)
            if isinstance(answer, list):
                client.ack(True, opts=rpc.criu_opts(images_dir_fd=-1, external=answer))
            else:
                client.ack(bool(answer))

    return run
