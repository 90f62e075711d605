"""One RPC connection: CRIU's ``cr_service_work`` request loop, shared by ``swrk`` and ``service`` workers.

Receive a request → if ``keep_open`` is set on a type CRIU does not keep connections for, exit without an
answer → answer it → with ``keep_open`` and success, wait for the next one. Exit codes are CRIU's: 0 when
the last request succeeded, 1 when it failed, 255 when no answer could be given (a request that does not
parse, an unknown type, ``keep_open`` where it is not allowed, the client gone). CHECK, VERSION and
FEATURE_CHECK exit 0 once answered, whatever they answered, as CRIU does.

Request types: VERSION, FEATURE_CHECK, CHECK, DUMP, RESTORE and WAIT_PID are served;
PRE_DUMP/SINGLE_PRE_DUMP, PAGE_SERVER/PAGE_SERVER_CHLD and CPUINFO_DUMP/CPUINFO_CHECK are answered
``success: false`` with a ``cr_errmsg`` that says why; anything else gets ``{type: EMPTY, success: false}``.
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from criu_core.errors import CriuError
from criu_core.images.messages import pb_module
from criu_core.log import close_logging, setup_logging
from criu_core.service.errinfo import MAX_ERRMSG, FirstError, cr_errno_of
from criu_core.service.notify import RpcNotifier
from criu_core.service.rpcopts import BadRequest
from criu_core.service.setup import Prepared, prepare
from criu_core.service.transport import ClientGone, peer_pid, recv_datagram, send_datagram

if TYPE_CHECKING:
    from criu_core.options import OptionRegistry, Options
    from criu_core.plugins import PluginHost

__all__ = ["EXIT_NO_ANSWER", "KEEP_OPEN_TYPES", "Worker", "parse_request"]

EXIT_NO_ANSWER = 255  # CRIU's cr_service_work() returns -1
# cr-service.c:chk_keepopen_req: the only types after which a connection may stay open.
KEEP_OPEN_TYPES = frozenset(
    {"PAGE_SERVER", "PAGE_SERVER_CHLD", "CPUINFO_DUMP", "CPUINFO_CHECK", "FEATURE_CHECK", "VERSION"}
)
_PRE_DUMP_MSG = (
    "pre-dump is not supported by criu-py: it needs memory change tracking, and soft-dirty "
    "tracking is off on this kernel (FEATURE_CHECK says mem_track false)"
)
_REFUSED: dict[str, str] = {
    "PRE_DUMP": _PRE_DUMP_MSG,
    "SINGLE_PRE_DUMP": _PRE_DUMP_MSG,
    "PAGE_SERVER": "the page server is not supported by criu-py",
    "PAGE_SERVER_CHLD": "the page server is not supported by criu-py",
    "CPUINFO_DUMP": "cpuinfo dump is not supported by criu-py",
    "CPUINFO_CHECK": "cpuinfo check is not supported by criu-py",
}


def _raw_type(data: bytes) -> int | None:
    """Field 1 (``type``, a varint) of a serialized ``criu_req``, read off the wire; None if absent/garbled."""
    pos, n = 0, len(data)

    def varint() -> int:
        nonlocal pos
        shift = value = 0
        while True:
            if pos >= n or shift > 63:
                raise ValueError
            b = data[pos]
            pos += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return value

    try:
        while pos < n:
            key = varint()
            num, wire = key >> 3, key & 7
            if wire == 0:
                value = varint()
                if num == 1:
                    return value
            elif wire == 1:
                pos += 8
            elif wire == 2:
                pos += varint()
            elif wire == 5:
                pos += 4
            else:
                return None
    except ValueError:
        return None
    return None


def parse_request(data: bytes) -> tuple[Any | None, int | None]:
    """``(criu_req, None)``, or ``(None, type)`` for a request whose type this protocol does not know, or
    ``(None, None)`` when it does not parse.

    Lenient in one point only: ``opts.images_dir_fd`` (required, default -1) may be missing, as pycriu 3.17
    leaves it out for CHECK.
    """
    req = pb_module("rpc").criu_req()
    try:
        req.MergeFromString(data)  # partial: required fields checked below
    except Exception:  # noqa: BLE001 - protobuf's DecodeError and friends
        return None, None
    if not req.HasField("type"):
        return None, _raw_type(data)
    missing = [m for m in req.FindInitializationErrors() if m != "opts.images_dir_fd"]
    if missing:
        return None, None
    return req, None


class Worker:
    """Serve CRIU's RPC protocol on one connected SOCK_SEQPACKET socket.

    ``options`` are the worker's own (from its config files and command line; a service worker gets the
    defaults, as CRIU's ``init_opts()``), ``given`` maps option names to the file that set them. ``swrk``
    False refuses ``rst_sibling``, ``inherit_fd`` and ``ps.fd``.
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        options: Options,
        given: dict[str, str],
        host: PluginHost,
        registry: OptionRegistry,
        swrk: bool,
        log: logging.Logger | None = None,
    ) -> None:
        self.sock = sock
        self.options = options
        self.given = given
        self.host = host
        self.registry = registry
        self.swrk = swrk
        self.log = log or logging.getLogger("criu")
        self.rpc = pb_module("rpc")
        self.peer = peer_pid(sock)

    # ---------------------------------------------------------------------------------------------- the loop

    def serve(self) -> int:
        """Answer requests until one without ``keep_open``; return the exit code."""
        rpc = self.rpc
        while True:
            try:
                data = recv_datagram(self.sock)
            except ClientGone as exc:
                self.log.info("RPC: %s", exc)
                return EXIT_NO_ANSWER
            req, unknown = parse_request(data)
            if req is None and unknown is None:
                self.log.error("RPC: Failed unpacking request (%d bytes)", len(data))
                return EXIT_NO_ANSWER
            keep_open = bool(req.keep_open) if req is not None else False
            name = rpc.criu_req_type.Name(req.type) if req is not None else f"type {unknown}"
            if keep_open and name not in KEEP_OPEN_TYPES:
                self.log.error("RPC: keep_open is not allowed for %s: closing without an answer", name)
                return EXIT_NO_ANSWER
            self.log.info("RPC: request %s from pid %d", name, self.peer)
            handler = getattr(self, "_h_" + name.lower(), None) if req is not None else None
            if handler is None:
                self.log.error("RPC error: Invalid req (%s)", name)
                self._send(rpc.criu_resp(type=rpc.EMPTY, success=False))
                return EXIT_NO_ANSWER
            code = handler(req)
            if code == 0 and keep_open:
                continue
            return code

    def _send(self, resp: Any, fd: int | None = None) -> bool:
        try:
            send_datagram(self.sock, resp.SerializeToString(), fd)
        except OSError as exc:
            self.log.error("RPC: Can't send response: %s", exc.strerror or exc)
            return False
        return True

    def _fail(self, resp: Any, first: FirstError, err: BaseException | None, cr_errno: int = 0) -> None:
        code = cr_errno or (cr_errno_of(err) if err is not None else 0)
        if code:
            resp.cr_errno = code
        if first.text:
            resp.cr_errmsg = first.text
        elif err is not None:
            resp.cr_errmsg = str(err)[:MAX_ERRMSG]

    # ---------------------------------------------------------------------------------------- simple ones

    def _h_version(self, req: Any) -> int:
        resp = self.rpc.criu_resp(type=req.type, success=True)
        # A release build: no gitid (go-criu and libcriu would read a gitid as "4.3 in development").
        resp.version.major_number = 4
        resp.version.minor_number = 2
        return 0 if self._send(resp) else 1

    def _h_feature_check(self, req: Any) -> int:
        resp = self.rpc.criu_resp(type=req.type, success=True)
        # All three are always present, false unless asked for and supported. None is supported: memory
        # tracking (pre-dump) needs soft-dirty, which this kernel lacks and criu-py does not implement; lazy
        # pages are not implemented; the pidfd store only serves pre-dump chains.
        resp.features.mem_track = False
        resp.features.lazy_pages = False
        resp.features.pidfd_store = False
        return 0 if self._send(resp) else 1

    def _refuse(self, req: Any) -> int:
        name = self.rpc.criu_req_type.Name(req.type)
        resp = self.rpc.criu_resp(type=req.type, success=False)
        with FirstError() as first:
            self.log.error("%s", _REFUSED[name])
        self._fail(resp, first, None, errno.EOPNOTSUPP)
        self._send(resp)
        return 1

    _h_pre_dump = _h_single_pre_dump = _h_page_server = _h_page_server_chld = _refuse
    _h_cpuinfo_dump = _h_cpuinfo_check = _refuse

    def _h_wait_pid(self, req: Any) -> int:
        resp = self.rpc.criu_resp(type=req.type, success=False)
        try:
            _, status = os.waitpid(int(req.pid), 0)
        except OSError as exc:
            self.log.error("Unable to wait %d: %s", req.pid, exc.strerror)
            resp.cr_errno = exc.errno or errno.ECHILD
            resp.cr_errmsg = f"Unable to wait {req.pid}: {exc.strerror}"
        else:
            resp.success = True
            resp.status = status
        return 0 if self._send(resp) else 1

    # ------------------------------------------------------------------------------------ runs with options

    def _prepare(self, req: Any, stage: str) -> Prepared:
        return prepare(
            req.opts,
            stage=stage,
            base=self.options,
            base_given=self.given,
            registry=self.registry,
            peer=self.peer,
            swrk=self.swrk,
        )

    def _start_log(self, prepared: Prepared) -> logging.Logger:
        try:
            return setup_logging(prepared.verbosity, prepared.log_path, log_pid=bool(prepared.options.log_pid))
        except OSError as exc:
            raise BadRequest(f"Can't create log file {prepared.log_path}: {exc.strerror}") from None

    def _end_log(self) -> None:
        close_logging()
        self.log = setup_logging(int(self.options.verbosity or 0))

    def _run(self, req: Any, stage: str, resp: Any) -> tuple[bool, Any]:
        """Prepare, build the context, run the engine; fills ``resp``'s error fields; returns (ok, ctx)."""
        from criu_core.context import CheckContext, DumpContext, RestoreContext

        prepared: Prepared | None = None
        ctx: Any = None
        ok = False
        with FirstError() as first:
            try:
                try:
                    prepared = self._prepare(req, stage)
                    opts = prepared.options
                    log = self._start_log(prepared)
                    first.attach()  # setup_logging replaced the handlers
                    self.host.configure(opts)
                except CriuError as err:
                    self.log.error("%s", err)
                    self._fail(resp, first, err, errno.EBADRQC)
                    return False, None
                log.info("RPC: %s for pid %d (criu-py, CRIU 4.2 protocol)", stage, self.peer)
                common: dict[str, Any] = {"options": opts, "host": self.host, "log": log, "stage": stage}
                images = prepared.images_dir or prepared.work_dir or Path.cwd()
                if stage == "check":
                    ctx = CheckContext(images_dir=images, work_dir=prepared.work_dir, **common)
                elif stage == "dump":
                    opts.tree = int(req.opts.pid)  # the request's pid (or the peer), never a config file's
                    ctx = DumpContext(images_dir=images, work_dir=prepared.work_dir, root_pid=opts.tree, **common)
                else:
                    ctx = RestoreContext(images_dir=images, work_dir=prepared.work_dir, **common)
                if req.opts.notify_scripts:
                    ctx.notifier = RpcNotifier(self.sock, log)
                try:
                    rc = self._engine(stage, ctx)
                finally:
                    ctx.close()
                ok = rc == 0
                if not ok:
                    log.error("%s failed with exit code %d", stage, rc)
                    self._fail(resp, first, None)
            except CriuError as err:
                logging.getLogger("criu").error("%s", err)
                self._fail(resp, first, err)
            except Exception as exc:  # a bug: its traceback goes to the log, the client gets one line
                logging.getLogger("criu").exception("internal error: %s: %s", type(exc).__name__, exc)  # noqa: TRY401 - first line = cr_errmsg
                self._fail(resp, first, exc)
            finally:
                if prepared is not None:
                    prepared.close()
                self._end_log()
        return ok, ctx

    def _engine(self, stage: str, ctx: Any) -> int:
        if stage == "check":
            from criu_core.kerndat import run_check

            return run_check(ctx)
        modname = "criu_core.dump" if stage == "dump" else "criu_core.restore"
        try:
            engine = importlib.import_module(modname)
        except ModuleNotFoundError as exc:
            if exc.name and (modname == exc.name or modname.startswith(exc.name + ".")):
                raise CriuError(f"{stage} is not available in this build") from None
            raise
        return int(engine.run(ctx) or 0)

    def _h_check(self, req: Any) -> int:
        resp = self.rpc.criu_resp(type=req.type, success=False)
        ok, _ = self._run(req, "check", resp)
        resp.success = ok
        self._send(resp)
        return 0  # CRIU answers CHECK from a fork and exits 0 once the answer is sent

    def _h_dump(self, req: Any) -> int:
        msg = req.opts
        self_dump = not msg.pid
        if self_dump:
            msg.pid = self.peer  # no pid: the client dumps itself (libcriu and pycriu daemonize swrk for it)
        resp = self.rpc.criu_resp(type=req.type, success=False)
        ok, _ = self._run(req, "dump", resp)
        resp.success = ok
        resp.dump.restored = False
        # A successful self-dump without leave_running killed the client: nobody to answer.
        if (msg.leave_running or not self_dump or not ok) and not self._send(resp):
            ok = False
        return 0 if ok else 1

    def _h_restore(self, req: Any) -> int:
        resp = self.rpc.criu_resp(type=req.type, success=False)
        base_detached = self.options.restore_detached
        self.options.restore_detached = True  # CRIU forces a detached restore under RPC
        try:
            ok, ctx = self._run(req, "restore", resp)
        finally:
            self.options.restore_detached = base_detached
        resp.success = ok
        resp.restore.pid = int(ctx.root_pid) if ok and ctx is not None and ctx.root_pid else -1
        if not self._send(resp):
            ok = False
        return 0 if ok else 1
