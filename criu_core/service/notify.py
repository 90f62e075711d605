"""RPC notifications (``criu_opts.notify_scripts``): the service's side of :meth:`BaseContext.notify`.

For each point the engine reaches, the client gets ``criu_resp{type: NOTIFY, success: true, notify:
{script: NAME, pid?}}`` and the run blocks until it answers ``criu_req{type: NOTIFY, notify_success: true}``.
Anything else (another type, ``notify_success`` false, a closed socket, bytes that do not parse) fails the
run with CRIU's "RPC client reported script error". ``pid`` is sent only where CRIU sends it
(``setup-namespaces`` and ``post-restore``: the root task's real PID). The answer to ``query-ext-files`` may
carry ``opts.external`` entries, which are added to the run's ``--external`` list. A failed ``post-resume``
is logged and does not fail the restore: the tasks already run (CRIU does the same).
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING

from criu_core.errors import CriuError
from criu_core.images.messages import pb_module
from criu_core.service.transport import ClientGone, recv_datagram, send_datagram

if TYPE_CHECKING:
    from criu_core.context import BaseContext

__all__ = ["NOTIFY_NAMES", "RpcNotifier", "ScriptError"]

# action-scripts.c, in CRIU's order.
NOTIFY_NAMES = (
    "pre-stream", "pre-dump", "post-dump", "pre-restore", "post-restore", "network-lock", "network-unlock",
    "setup-namespaces", "post-setup-namespaces", "pre-resume", "post-resume", "orphan-pts-master",
    "status-ready", "query-ext-files",
)  # fmt: skip
_WITH_PID = frozenset({"setup-namespaces", "post-restore"})
_NOT_FATAL = frozenset({"post-resume"})


class ScriptError(CriuError):
    """The RPC client answered a notification with a failure (or did not answer)."""


class RpcNotifier:
    """Callable set as ``ctx.notifier``: sends one notification and waits for the client's ack."""

    def __init__(self, sock: socket.socket, log: logging.Logger | None = None) -> None:
        self.sock = sock
        self.log = log or logging.getLogger("criu")
        self.sent: list[str] = []

    def __call__(self, ctx: BaseContext, name: str, pid: int | None = None, fd: int | None = None) -> None:
        rpc = pb_module("rpc")
        resp = rpc.criu_resp(type=rpc.NOTIFY, success=True)
        resp.notify.script = name
        if pid is not None and name in _WITH_PID:
            resp.notify.pid = int(pid)
        self.log.info("RPC: notify %s%s", name, f" (pid {pid})" if pid is not None else "")
        self.sent.append(name)
        ack = self._exchange(resp.SerializeToString(), fd)
        ok = ack is not None and ack.type == resp.type and ack.notify_success
        if not ok:
            if name in _NOT_FATAL:
                self.log.error("RPC client reported script error (%s); the tasks are running", name)
                return
            self.log.error("RPC client reported script error")
            raise ScriptError("RPC client reported script error", script=name)
        if name == "query-ext-files" and ack is not None and ack.HasField("opts"):
            extra = list(ack.opts.external)
            if extra:
                self.log.info("RPC: adding external objects %s", ", ".join(extra))
                ctx.options.external = list(ctx.options.external or []) + extra

    def _exchange(self, data: bytes, fd: int | None):  # -> criu_req | None
        try:
            send_datagram(self.sock, data, fd)
            raw = recv_datagram(self.sock)
        except (OSError, ClientGone) as exc:
            self.log.warning("RPC: no answer to the notification: %s", exc)
            return None
        ack = pb_module("rpc").criu_req()
        try:
            ack.MergeFromString(raw)
        except Exception:  # noqa: BLE001 - protobuf's DecodeError
            return None
        return ack
