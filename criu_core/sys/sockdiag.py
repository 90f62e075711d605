"""NETLINK_SOCK_DIAG queries for unix sockets (linux/sock_diag.h, linux/unix_diag.h).

No ctypes: plain ``socket(AF_NETLINK, SOCK_DGRAM, NETLINK_SOCK_DIAG)`` and struct packing. One exact lookup per
socket inode (``udiag_ino`` with the "no cookie" value) gives its type, state, name, peer, pending connections,
queue lengths and shutdown state.
"""

from __future__ import annotations

import errno as _errno
import socket
import struct

from criu_core.errors import SyscallError
from criu_core.records import dataclass, field

__all__ = ["NETLINK_SOCK_DIAG", "SOCK_DIAG_BY_FAMILY", "UnixDiag", "unix_diag"]

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLMSG_ERROR = 2
NLMSG_DONE = 3

UDIAG_SHOW_NAME = 0x01
UDIAG_SHOW_VFS = 0x02
UDIAG_SHOW_PEER = 0x04
UDIAG_SHOW_ICONS = 0x08
UDIAG_SHOW_RQLEN = 0x10
UDIAG_SHOW_MEMINFO = 0x20

UNIX_DIAG_NAME, UNIX_DIAG_VFS, UNIX_DIAG_PEER, UNIX_DIAG_ICONS, UNIX_DIAG_RQLEN, UNIX_DIAG_MEMINFO = range(6)
UNIX_DIAG_SHUTDOWN = 6

_NO_COOKIE = 0xFFFFFFFF


@dataclass(frozen=True)
class UnixDiag:
    """One unix socket as sock_diag reports it (``state`` uses TCP_* numbers: 1 established, 7 close, 10 listen).

    ``rqlen`` is (receive queue, write queue) for ordinary sockets and (pending, backlog) for listening ones;
    ``vfs`` is (inode, dev) of the bound file; ``icons`` the inodes of not yet accepted connections.
    """

    ino: int
    type: int
    state: int
    name: bytes | None = None
    vfs: tuple[int, int] | None = None
    peer: int = 0
    icons: tuple[int, ...] = ()
    rqlen: tuple[int, int] = (0, 0)
    shutdown: int = 0
    extra: dict[int, bytes] = field(default_factory=dict, compare=False)


def _parse(payload: bytes) -> UnixDiag:
    _family, stype, state, _pad, ino = struct.unpack_from("<BBBBI", payload, 0)
    attrs: dict[int, bytes] = {}
    off = 16
    while off + 4 <= len(payload):
        alen, atype = struct.unpack_from("<HH", payload, off)
        if alen < 4:
            break
        attrs[atype & 0x3FFF] = payload[off + 4 : off + alen]
        off += (alen + 3) & ~3
    name = attrs.get(UNIX_DIAG_NAME)
    vfs = struct.unpack("<II", attrs[UNIX_DIAG_VFS][:8]) if UNIX_DIAG_VFS in attrs else None
    peer = struct.unpack("<I", attrs[UNIX_DIAG_PEER][:4])[0] if UNIX_DIAG_PEER in attrs else 0
    icons_raw = attrs.get(UNIX_DIAG_ICONS, b"")
    icons = struct.unpack(f"<{len(icons_raw) // 4}I", icons_raw[: len(icons_raw) // 4 * 4])
    rq = struct.unpack("<II", attrs[UNIX_DIAG_RQLEN][:8]) if UNIX_DIAG_RQLEN in attrs else (0, 0)
    shut = attrs[UNIX_DIAG_SHUTDOWN][0] if UNIX_DIAG_SHUTDOWN in attrs else 0
    return UnixDiag(
        ino, stype, state, name, (vfs[0], vfs[1]) if vfs else None, peer, tuple(icons), (rq[0], rq[1]), shut, attrs
    )


def unix_diag(ino: int) -> UnixDiag:
    """Look up the unix socket with inode ``ino`` (in the caller's network namespace)."""
    show = UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER | UDIAG_SHOW_ICONS | UDIAG_SHOW_RQLEN
    req = struct.pack("<BBHIIIII", socket.AF_UNIX, 0, 0, 0xFFFFFFFF, ino, show, _NO_COOKIE, _NO_COOKIE)
    hdr = struct.pack("<IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, 1, 0)
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as nl:
        nl.send(hdr + req)
        data = nl.recv(65536)
    off = 0
    while off + 16 <= len(data):
        mlen, mtype, _flags, _seq, _pid = struct.unpack_from("<IHHII", data, off)
        body = data[off + 16 : off + mlen]
        if mtype == NLMSG_ERROR:
            (err,) = struct.unpack_from("<i", body, 0)
            if err:
                raise SyscallError(-err, "sock_diag(unix)", detail=f"inode {ino}")
        elif mtype == SOCK_DIAG_BY_FAMILY:
            return _parse(body)
        elif mtype == NLMSG_DONE:
            break
        off += (mlen + 3) & ~3
    raise SyscallError(_errno.ENOENT, "sock_diag(unix)", detail=f"inode {ino}")
