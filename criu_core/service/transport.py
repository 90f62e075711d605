"""CRIU's RPC transport: one serialized protobuf per SOCK_SEQPACKET datagram, no length prefix.

The reader peeks the size first (``recv(MSG_PEEK|MSG_TRUNC)`` returns the datagram's full length, as
``cr-service.c:recv_criu_msg`` does), then reads exactly that. A zero-length read means the peer went away.
The only message that carries a descriptor is the ``orphan-pts-master`` notification (SCM_RIGHTS).
"""

from __future__ import annotations

import array
import socket
import struct

from criu_core.errors import CriuError

__all__ = ["MAX_REQUEST", "ClientGone", "peer_pid", "recv_datagram", "send_datagram"]

# Far above anything a client sends (runc's biggest requests are a few KiB); a bigger datagram is refused
# rather than allocated.
MAX_REQUEST = 1 << 20
_UCRED = struct.Struct("3i")  # struct ucred {pid, uid, gid}


class ClientGone(CriuError):
    """The peer closed its end, or the read failed: nothing more can be answered."""


def recv_datagram(sock: socket.socket) -> bytes:
    """Read one whole datagram; raise :class:`ClientGone` on EOF or a failed read."""
    try:
        size = sock.recv_into(bytearray(1), 1, socket.MSG_PEEK | socket.MSG_TRUNC)
        if size == 0:
            # Consume the empty datagram (or see EOF) so a caller that goes on does not spin.
            sock.recv(1)
            raise ClientGone("Client exited unexpectedly")
        if size > MAX_REQUEST:
            raise ClientGone(f"request of {size} bytes is too large")
        data = sock.recv(size, socket.MSG_TRUNC)
    except OSError as exc:
        raise ClientGone(f"Can't read request: {exc.strerror or exc}") from None
    if not data:
        raise ClientGone("Client exited unexpectedly")
    return data


def send_datagram(sock: socket.socket, data: bytes, fd: int | None = None) -> None:
    """Send one datagram, with ``fd`` attached as SCM_RIGHTS when given; OSError propagates."""
    if fd is None:
        sock.send(data)
    else:
        sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])


def peer_pid(sock: socket.socket) -> int:
    """The client's PID (``SO_PEERCRED``; for a socketpair, the process that created the pair)."""
    pid, _, _ = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return pid
