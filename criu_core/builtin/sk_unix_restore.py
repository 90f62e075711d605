"""Built-in restore of unix sockets: connected pairs whose both ends are in the images, listening sockets and
bound datagram sockets, with their queued data.

``socketpair`` in the restorer gives both ends of a pair at once (matched by inode: each end's ``peer`` is the
other's ``ino``); the bytes of sk-queues.img are sent from the peer so they sit in the receiver's queue, one
send per entry (a datagram per entry for SOCK_DGRAM, message boundaries kept). A pair's names, if it had any
(an accepted connection carries its listener's), are not given back. A listening socket is bound to its name
(abstract, or a path whose stale socket file is replaced) and listens again; a bound datagram socket gets its
queued datagrams from a throw-away sender. Sockets connected to a peer outside the images are not this
handler's (it returns None and the restore names the descriptor).
"""

from __future__ import annotations

import fcntl
import os
import socket
import stat
from typing import Any

from criu_core.errors import CriuError, ImageFormatError
from criu_core.images.framing import read_image
from criu_core.resources import FileImage, RestoredFd
from criu_core.restore_plan import PLAN_KEY
from criu_core.stash import StashKey

__all__ = ["FD_UNIXSK", "PLUGIN", "fini", "open_socket"]

PLUGIN = "builtin.sk_unix_restore"
FD_UNIXSK = 5
TCP_ESTABLISHED, TCP_CLOSE, TCP_LISTEN = 1, 7, 10
_TYPES = {1: socket.SOCK_STREAM, 2: socket.SOCK_DGRAM, 5: socket.SOCK_SEQPACKET}
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33
_SOCKS: StashKey[dict[int, int]] = StashKey("restore.unix_pairs")  # ino -> restorer fd
_QUEUES: StashKey[dict[int, list[bytes]]] = StashKey("restore.sk_queues")  # receiver file id -> packets


def _queues(ctx: Any) -> dict[int, list[bytes]]:
    q = ctx.stash.get(_QUEUES, None)
    if q is None:
        q = {}
        path = os.path.join(ctx.images_dir, "sk-queues.img")
        if os.path.exists(path):
            for ent in read_image(path).entries:
                if ent.msg.scm:
                    raise CriuError(f"{path}: queued SCM_RIGHTS/credentials are not supported", path=path)
                q.setdefault(ent.msg.id_for, []).append(bytes(ent.extra or b""))
        ctx.stash[_QUEUES] = q
    return q


def _setup(fd: int, usk: Any) -> None:
    s = socket.socket(fileno=fd)
    try:
        # the image holds the kernel's doubled values (it doubles whatever is set)
        s.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, usk.opts.so_sndbuf // 2)
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, usk.opts.so_rcvbuf // 2)
    finally:
        s.detach()


def _make_pair(ctx: Any, file: FileImage, usk: Any, peer: Any, peer_id: int) -> None:
    kind = _TYPES.get(usk.type)
    if kind is None:
        raise CriuError(f"unix socket {usk.ino}: unknown type {usk.type}", ino=usk.ino)
    a, b = socket.socketpair(socket.AF_UNIX, kind)
    socks = ctx.stash.setdefault(_SOCKS, {})
    socks[usk.ino], socks[peer.ino] = a.detach(), b.detach()
    queues = _queues(ctx)
    for receiver, sender in ((file.entry.id, socks[peer.ino]), (peer_id, socks[usk.ino])):
        for packet in queues.get(receiver, []):
            os.set_blocking(sender, False)  # a queue larger than the buffer is an error, never a hang
            try:
                sent = os.write(sender, packet)
            except BlockingIOError:
                sent = 0
            os.set_blocking(sender, True)
            if sent != len(packet):
                raise CriuError(f"unix socket {usk.ino}: only {sent} of {len(packet)} queued bytes fit back in")
    for sk, fd in ((usk, socks[usk.ino]), (peer, socks[peer.ino])):
        _setup(fd, sk)
        how = {1: socket.SHUT_RD, 2: socket.SHUT_WR, 3: socket.SHUT_RDWR}.get(sk.shutdown if sk.HasField("shutdown")
                                                                              else 0)
        if how is not None:
            socket.socket(fileno=os.dup(fd)).shutdown(how)


def _address(name: bytes) -> bytes | str:
    """The bind address of an image name: abstract names start with NUL; paths carry a trailing NUL."""
    if name.startswith(b"\0"):
        return name
    return os.fsdecode(name.rstrip(b"\0"))


def _bind(ctx: Any, file: FileImage, usk: Any) -> int:
    """A listening or bound-unconnected socket, bound to its name again (and listening, for LISTEN)."""
    sk = socket.socket(socket.AF_UNIX, _TYPES[usk.type])
    try:
        addr = _address(bytes(usk.name))
        if isinstance(addr, str):
            if not addr.startswith("/"):
                raise CriuError(f"unix socket {usk.ino}: relative path {addr!r} is not supported", ino=usk.ino)
            try:
                if stat.S_ISSOCK(os.lstat(addr).st_mode):
                    os.unlink(addr)  # the dumped task's socket file: the old socket is gone with it
            except FileNotFoundError:
                pass
        sk.bind(addr)
        if isinstance(addr, str) and usk.HasField("file_perms"):
            os.chmod(addr, usk.file_perms.mode & 0o7777)
            os.chown(addr, usk.file_perms.uid, usk.file_perms.gid)
        if usk.state == TCP_LISTEN:
            sk.listen(usk.backlog)
        _setup(sk.fileno(), usk)
        for packet in _queues(ctx).get(file.entry.id, []):
            if usk.type == 1:
                raise CriuError(f"unix socket {usk.ino}: queued data on an unconnected stream socket")
            with socket.socket(socket.AF_UNIX, _TYPES[usk.type]) as sender:
                if sender.sendto(packet, addr) != len(packet):
                    raise CriuError(f"unix socket {usk.ino}: a queued datagram did not fit back in")
        return sk.detach()
    finally:
        sk.close()


def open_socket(ctx: Any, file: FileImage) -> RestoredFd | None:
    e = file.entry
    if e.type != FD_UNIXSK or not e.HasField("usk"):
        return None
    usk = e.usk
    if usk.uflags or usk.type not in _TYPES:
        return None
    socks = ctx.stash.setdefault(_SOCKS, {})
    if usk.ino not in socks and usk.state in (TCP_LISTEN, TCP_CLOSE) and not usk.peer and usk.name:
        socks[usk.ino] = _bind(ctx, file, usk)
    elif usk.ino not in socks:
        if usk.state != TCP_ESTABLISHED or not usk.peer:
            return None
        peers = [(fid, f.usk) for fid, f in _all_files(ctx).items() if f.HasField("usk") and f.usk.ino == usk.peer]
        if len(peers) != 1:
            return None  # the peer is outside the images (an external socket)
        peer_id, peer = peers[0]
        if peer.peer != usk.ino:
            raise ImageFormatError("files.img", 0, f"unix sockets {usk.ino} and {peer.ino} disagree about peers")
        if usk.name or peer.name:
            ctx.log.warning("unix sockets %d/%d are restored as an unnamed pair (names %r/%r are lost)",
                            usk.ino, peer.ino, bytes(usk.name), bytes(peer.name))
        _make_pair(ctx, file, usk, peer, peer_id)
    fd = os.dup(socks[usk.ino])
    fcntl.fcntl(fd, fcntl.F_SETFL, usk.flags & os.O_NONBLOCK)
    return RestoredFd(PLUGIN, fd)


def _all_files(ctx: Any) -> dict[int, Any]:
    """files.img by id."""
    plan = ctx.stash.get(PLAN_KEY, None)
    return plan.files if plan is not None else {}


def fini(ctx: Any, stage: str, success: bool) -> None:
    """Close the restorer's copies of every socket it built."""
    if stage != "restore":
        return
    for fd in ctx.stash.get(_SOCKS, {}).values():
        os.close(fd)
    ctx.stash[_SOCKS] = {}
