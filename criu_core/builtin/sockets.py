"""Built-in unix socket handler: socketpairs, connected and listening sockets, abstract and path names, with
the data queued to each socket (sk-queues.img).

Socket state comes from NETLINK_SOCK_DIAG; options from getsockopt on the dumper's copy of the descriptor;
queued data is copied with MSG_PEEK, walking datagrams with SO_PEEK_OFF (put back afterwards), so the queues
stay intact. Not handled (refused with a reason): listening sockets with connections not yet accepted, queued
SCM_RIGHTS/SCM_CREDENTIALS messages, peers outside the dumped tree (CRIU's --ext-unix-sk), sockets in another
network namespace.
"""

from __future__ import annotations

import os
import socket
import struct
from typing import TYPE_CHECKING

from criu_core.dumping.files import O_CLOEXEC, fown
from criu_core.errors import UnsupportedResource
from criu_core.images.messages import message_class, pb_module
from criu_core.resources import FileClaim
from criu_core.sys.sockdiag import unix_diag

if TYPE_CHECKING:
    from criu_core.context import DumpContext
    from criu_core.resources import SocketInfo

__all__ = ["dump_unix_socket", "peek_queue", "socket_options"]

PLUGIN = "builtin.sockets"
SO_NO_CHECK = 11
SO_PASSSEC = 34
SO_PEEK_OFF = 42
SO_BUF_LOCK = 72
TCP_LISTEN = 10
_MAX_PACKET = 1 << 20


def socket_options(sk: socket.socket) -> dict[str, object]:
    """The ``sk_opts_entry`` fields CRIU 4.2 writes for a unix socket."""

    def geti(opt: int) -> int:
        return sk.getsockopt(socket.SOL_SOCKET, opt)

    def gettv(opt: int) -> tuple[int, int]:
        sec, usec = struct.unpack("<qq", sk.getsockopt(socket.SOL_SOCKET, opt, 16))
        return sec, usec

    snd, rcv = gettv(socket.SO_SNDTIMEO), gettv(socket.SO_RCVTIMEO)
    return {
        "so_sndbuf": geti(socket.SO_SNDBUF),
        "so_rcvbuf": geti(socket.SO_RCVBUF),
        "so_snd_tmo_sec": snd[0],
        "so_snd_tmo_usec": snd[1],
        "so_rcv_tmo_sec": rcv[0],
        "so_rcv_tmo_usec": rcv[1],
        "reuseaddr": bool(geti(socket.SO_REUSEADDR)),
        "so_priority": geti(socket.SO_PRIORITY),
        "so_rcvlowat": geti(socket.SO_RCVLOWAT),
        "so_passcred": bool(geti(socket.SO_PASSCRED)),
        "so_passsec": bool(geti(SO_PASSSEC)),
        "so_dontroute": bool(geti(socket.SO_DONTROUTE)),
        "so_no_check": bool(geti(SO_NO_CHECK)),
        "so_reuseport": bool(geti(socket.SO_REUSEPORT)),
        "so_broadcast": bool(geti(socket.SO_BROADCAST)),
        "so_keepalive": bool(geti(socket.SO_KEEPALIVE)),
        "so_oobinline": geti(socket.SO_OOBINLINE),
        "so_buf_lock": geti(SO_BUF_LOCK),
    }


def peek_queue(sk: socket.socket, stype: int, queued: int) -> list[bytes]:
    """Copy the receive queue without consuming it: one element per datagram, or the whole stream."""
    if queued == 0:
        return []
    flags = socket.MSG_PEEK | socket.MSG_DONTWAIT
    if stype == socket.SOCK_STREAM:
        data, anc, msg_flags, _ = sk.recvmsg(queued, socket.CMSG_SPACE(4 * 64), flags)
        _no_ancillary(anc, msg_flags)
        return [data]
    old = sk.getsockopt(socket.SOL_SOCKET, SO_PEEK_OFF)
    sk.setsockopt(socket.SOL_SOCKET, SO_PEEK_OFF, 0)
    out: list[bytes] = []
    try:
        while True:
            try:
                data, anc, msg_flags, _ = sk.recvmsg(_MAX_PACKET, socket.CMSG_SPACE(4 * 64), flags)
            except BlockingIOError:
                break
            _no_ancillary(anc, msg_flags)
            out.append(data)
    finally:
        sk.setsockopt(socket.SOL_SOCKET, SO_PEEK_OFF, old)
    return out


def _no_ancillary(anc: list, msg_flags: int) -> None:
    if anc or msg_flags & socket.MSG_CTRUNC:
        raise UnsupportedResource(
            "unix socket queue", msg="queued SCM_RIGHTS/SCM_CREDENTIALS messages are not supported yet"
        )


def dump_unix_socket(ctx: DumpContext, sk: SocketInfo) -> FileClaim | None:
    """Claim every AF_UNIX socket; ``FileClaim.data`` is ``{"queue": [packets], "peer": ino}``."""
    if sk.family != socket.AF_UNIX:
        return None
    diag = unix_diag(sk.ino)
    if diag.state == TCP_LISTEN and diag.icons:
        raise UnsupportedResource(sk.fd, hint="listening socket with connections not yet accepted")
    dup = socket.socket(fileno=os.dup(sk.fd.local_fd))
    try:
        opts = socket_options(dup)
        queue = [] if diag.state == TCP_LISTEN else peek_queue(dup, diag.type, diag.rqlen[0])
    finally:
        dup.close()
    ns = os.stat(f"/proc/{sk.fd.pid}/ns/net").st_ino
    usk = {
        "id": 0,
        "ino": sk.ino,
        "type": diag.type,
        "state": diag.state,
        "flags": sk.fd.flags & ~O_CLOEXEC,
        "uflags": 0,
        "backlog": diag.rqlen[1],
        "peer": diag.peer,
        "fown": fown(),
        "opts": opts,
        "name": diag.name or b"",
    }
    if diag.shutdown:
        usk["shutdown"] = diag.shutdown
    if diag.name and not diag.name.startswith(b"\0") and diag.vfs is not None:
        path = diag.name.rstrip(b"\0").decode(errors="surrogateescape")
        try:
            st = os.stat(path)
            usk["file_perms"] = {"mode": st.st_mode & 0o7777, "uid": st.st_uid, "gid": st.st_gid}
        except FileNotFoundError:
            usk["deleted"] = True
    entry = message_class("fdinfo.file_entry")(
        type=pb_module("fdinfo").UNIXSK, id=0, usk=message_class("sk_unix.unix_sk_entry")(**usk)
    )
    return FileClaim(
        plugin=PLUGIN,
        entry=entry,
        fd_type=pb_module("fdinfo").UNIXSK,
        data={"queue": queue, "peer": diag.peer, "netns_ino": ns},
    )
