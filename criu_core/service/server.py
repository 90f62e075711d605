"""``criu-py swrk FD`` and ``criu-py service``: where a :class:`~criu_core.service.worker.Worker` gets its socket.

* swrk: the socket is inherited at ``FD`` (one end of a SOCK_SEQPACKET pair the client made); the worker
  keeps the process's own options (config files and command line) as its base.
* service: bind SOCK_SEQPACKET at ``--address`` (default ``./criu_service.socket``, with CRIU's warning),
  unlink a stale file first, chmod 0666, listen(16); ``-d`` daemonizes (``daemon(1, 0)``: fork, setsid,
  stdio on /dev/null, cwd kept), then the pidfile and ``--status-fd`` are written; then accept forever,
  forking one worker per connection. Workers start from the default options (CRIU's ``init_opts()``) and
  refuse ``rst_sibling`` and ``inherit_fd`` ("not allowed in standalone service", EBADRQC). Finished
  workers are reaped from a SIGCHLD handler.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from typing import TYPE_CHECKING

from criu_core.errors import CriuError, UsageError
from criu_core.service.worker import Worker

if TYPE_CHECKING:
    from criu_core.cli.app import Invocation

__all__ = ["DEFAULT_ADDRESS", "ensure_stdio", "run_service", "serve_swrk"]

DEFAULT_ADDRESS = "criu_service.socket"  # CRIU's CR_DEFAULT_SERVICE_ADDRESS, relative to the cwd


def ensure_stdio() -> None:
    """Put /dev/null on any of fds 0-2 that is closed (pycriu closes them before exec'ing swrk).

    Without this the first file we open would become "stdout", and Python's ``sys.stdout`` is None.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if sys.stdout is None:
        sys.stdout = open(1, "w", closefd=False, buffering=1)  # noqa: SIM115 - lives as long as the process
    if sys.stderr is None:
        sys.stderr = open(2, "w", closefd=False, buffering=1)  # noqa: SIM115
    # A handler made while sys.stderr was None has no stream: point it at the one we just made.
    for handler in logging.getLogger("criu").handlers:
        if type(handler) is logging.StreamHandler and handler.stream is None:
            handler.setStream(sys.stderr)


def _given(inv: Invocation) -> dict[str, str]:
    return {name: f"set in {g.source}" for name, g in inv.given.items() if g.source != "argv"}


def serve_swrk(fd: int, inv: Invocation, log: logging.Logger) -> int:
    """Serve the inherited socket ``fd`` until a request without ``keep_open``; return the exit code."""
    ensure_stdio()
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise UsageError(f"swrk: bad socket fd {fd}: {exc.strerror}") from None
    if sock.type != socket.SOCK_SEQPACKET or sock.family != socket.AF_UNIX:
        sock.detach()
        raise UsageError(f"swrk: fd {fd} is not an AF_UNIX SOCK_SEQPACKET socket")
    try:
        worker = Worker(
            sock, options=inv.options, given=_given(inv), host=inv.host, registry=inv.registry, swrk=True, log=log
        )
        return worker.serve()
    finally:
        sock.close()


def _daemonize() -> None:
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)


def _write_pidfile(path: str) -> None:
    # Whole or not at all: a reader polling for the file never sees it empty.
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as f:
            f.write(f"{os.getpid()}")
        os.replace(tmp, path)
    except OSError as exc:
        raise CriuError(f"service: can't write pidfile {path}: {exc.strerror}") from None


def _reap(signum: int, frame: object) -> None:
    log = logging.getLogger("criu")
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if os.WIFEXITED(status):
            log.info("Worker(pid %d) exited with %d", pid, os.WEXITSTATUS(status))
        elif os.WIFSIGNALED(status):
            log.info("Worker(pid %d) was killed by %d", pid, os.WTERMSIG(status))


def _bind(address: str) -> socket.socket:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        try:
            os.unlink(address)
        except FileNotFoundError:
            pass
        server.bind(address)
        os.chmod(address, 0o666)  # anyone may connect, as CRIU's service allows
        server.listen(16)
    except OSError as exc:
        server.close()
        raise CriuError(f"service: can't listen on {address}: {exc.strerror or exc}") from None
    return server


def run_service(inv: Invocation, log: logging.Logger) -> int:
    """``criu-py service``: accept connections forever (until killed); returns 1 only when it cannot."""
    opts = inv.options
    address = opts.address
    if not address:
        log.warning("Binding to local dir address!")
        address = DEFAULT_ADDRESS
    server = _bind(address)
    log.info("The service socket is bound to %s", address)
    if opts.restore_detached:
        _daemonize()
    if opts.pidfile:
        _write_pidfile(opts.pidfile)
    if opts.status_fd is not None:
        try:
            os.write(int(opts.status_fd), b"\0")
            os.close(int(opts.status_fd))
        except OSError as exc:
            raise CriuError(f"service: can't write to status fd {opts.status_fd}: {exc.strerror}") from None
    ensure_stdio()
    signal.signal(signal.SIGCHLD, _reap)
    defaults = inv.registry.defaults()
    while True:
        log.info("Waiting for connection...")
        try:
            conn, _ = server.accept()
        except OSError as exc:
            raise CriuError(f"service: can't accept a connection: {exc.strerror or exc}") from None
        log.info("Connected.")
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the worker; measured by the tests through the socket
            code = 1
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                server.close()
                worker = Worker(
                    conn, options=defaults, given={}, host=inv.host, registry=inv.registry, swrk=False, log=log
                )
                code = worker.serve()
            except CriuError as err:
                log.error("%s", err)
            finally:
                conn.close()
                logging.shutdown()
                os._exit(code)
        conn.close()
