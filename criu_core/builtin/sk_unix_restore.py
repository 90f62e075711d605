"""Built-in restore of connected unix socket pairs whose both ends are in the images, with their queued data.

``socketpair`` in the restorer gives both ends at once (matched by inode: each end's ``peer`` is the other's
``ino``); the bytes of sk-queues.img are sent from the peer so they sit in the receiver's queue, one send per
entry (a datagram per entry for SOCK_DGRAM, message boundaries kept). Named, listening or half-external
sockets are not this handler's (it returns None and the restore names the descriptor).
"""

from __future__ import annotations

import fcntl
import os
import socket
from typing import Any

from criu_core.errors import CriuError, ImageFormatError
from criu_core.hookspecs import hookimpl
from criu_core.images.framing import read_image
from criu_core.resources import FileImage, RestoredFd
from criu_core.restore_plan import PLAN_KEY
from criu_core.stash import StashKey

__all__ = ["FD_UNIXSK", "PLUGIN", "criu_fini", "criu_unix_sk_restore"]

PLUGIN = "builtin.sk_unix_restore"
FD_UNIXSK = 5
TCP_ESTABLISHED = 1
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
    kind = {1: socket.SOCK_STREAM, 2: socket.SOCK_DGRAM, 5: socket.SOCK_SEQPACKET}.get(usk.type)
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


@hookimpl(trylast=True)
def criu_unix_sk_restore(ctx: Any, file: FileImage) -> RestoredFd | None:
    e = file.entry
    if e.type != FD_UNIXSK or not e.HasField("usk"):
        return None
    usk = e.usk
    if usk.name or usk.state != TCP_ESTABLISHED or not usk.peer or usk.uflags:
        return None
    socks = ctx.stash.setdefault(_SOCKS, {})
    if usk.ino not in socks:
        peers = [(fid, f.usk) for fid, f in _all_files(ctx).items() if f.HasField("usk") and f.usk.ino == usk.peer]
        if len(peers) != 1:
            return None  # the peer is outside the images (an external socket)
        peer_id, peer = peers[0]
        if peer.peer != usk.ino:
            raise ImageFormatError("files.img", 0, f"unix sockets {usk.ino} and {peer.ino} disagree about peers")
        _make_pair(ctx, file, usk, peer, peer_id)
    fd = os.dup(socks[usk.ino])
    fcntl.fcntl(fd, fcntl.F_SETFL, usk.flags & os.O_NONBLOCK)
    return RestoredFd(PLUGIN, fd)


def _all_files(ctx: Any) -> dict[int, Any]:
    """files.img by id."""
    plan = ctx.stash.get(PLAN_KEY, None)
    return plan.files if plan is not None else {}


@hookimpl(trylast=True)
def criu_fini(ctx: Any, stage: str, success: bool) -> None:
    """Close the restorer's copies of every socket it built."""
    if stage != "restore":
        return
    for fd in ctx.stash.get(_SOCKS, {}).values():
        os.close(fd)
    ctx.stash[_SOCKS] = {}
