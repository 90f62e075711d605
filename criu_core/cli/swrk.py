"""``criu-py swrk FD``: a stand-in RPC worker until ``criu_core.service`` lands.

It speaks CRIU's transport (one serialized ``criu_req`` per SOCK_SEQPACKET datagram, one ``criu_resp`` back)
and answers what needs no engine: VERSION (4.2, no gitid: a release build) and FEATURE_CHECK (nothing
optional supported yet). Every other request type gets ``success=false, cr_errno=EOPNOTSUPP (95),
cr_errmsg="not supported yet"``; an unknown type gets ``{type: EMPTY, success: false}`` as in CRIU. With
``keep_open`` it serves the next request, otherwise it exits: 0 when the last answer was a success, 1
when not, 255 (no answer) when a request does not parse, as CRIU does.
"""

from __future__ import annotations

import errno
import logging
import socket
from typing import TYPE_CHECKING, Any

from criu_core.errors import CriuError

if TYPE_CHECKING:
    from criu_core.cli.app import Invocation

__all__ = ["answer", "serve_one"]

_MAX_REQUEST = 1 << 20
# Request types CRIU keeps the connection open for when keep_open is set (cr-service.c).
_KEEP_OPEN_TYPES = {"PAGE_SERVER", "PAGE_SERVER_CHLD", "CPUINFO_DUMP", "CPUINFO_CHECK", "FEATURE_CHECK", "VERSION"}


def _rpc() -> Any:
    try:
        from criu_core.images.pb import rpc_pb2
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("criu_core"):
            raise CriuError("swrk: RPC is not available in this build (no criu_core.images.pb.rpc_pb2)") from None
        raise
    return rpc_pb2


def answer(req: Any, rpc: Any) -> Any:
    """The ``criu_resp`` for one parsed ``criu_req``."""
    resp = rpc.criu_resp()
    name = rpc.criu_req_type.Name(req.type) if req.type in rpc.criu_req_type.values() else None
    if name is None:
        resp.type, resp.success = rpc.EMPTY, False
        return resp
    resp.type = req.type
    if name == "VERSION":
        resp.success = True
        resp.version.major_number = 4
        resp.version.minor_number = 2
    elif name == "FEATURE_CHECK":
        resp.success = True
        resp.features.mem_track = False
        resp.features.lazy_pages = False
        resp.features.pidfd_store = False
    else:
        resp.success = False
        resp.cr_errno = errno.EOPNOTSUPP
        resp.cr_errmsg = "not supported yet"
    return resp


def serve_one(fd: int, inv: Invocation, log: logging.Logger) -> int:
    """Serve requests on the inherited socket ``fd`` until one without ``keep_open``; return the exit code."""
    rpc = _rpc()
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise CriuError(f"swrk: bad socket fd {fd}: {exc.strerror}") from None
    try:
        while True:
            data, _, flags, _ = sock.recvmsg(_MAX_REQUEST)
            if not data:
                log.info("swrk: the client went away")
                return 0
            req = rpc.criu_req()
            try:
                if flags & socket.MSG_TRUNC:
                    raise ValueError("request too large")
                req.ParseFromString(data)
            except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends
                log.error("swrk: can't parse request: %s", exc)
                return 255
            resp = answer(req, rpc)
            log.info("swrk: request %s answered success=%s", req.type, resp.success)
            sock.send(resp.SerializeToString())
            name = rpc.criu_req_type.Name(resp.type)
            if not (req.keep_open and resp.success and name in _KEEP_OPEN_TYPES):
                return 0 if resp.success else 1
    finally:
        sock.close()
