"""Built-in file handler: regular files, directories and character devices opened by path, pipes (with their
queued data), eventfd, signalfd, timerfd and epoll (target list from fdinfo)."""

from __future__ import annotations

import fcntl
import os
from typing import TYPE_CHECKING

from criu_core.dumping.files import fown, reg_entry
from criu_core.errors import SyscallError
from criu_core.images.messages import message_class, pb_module
from criu_core.resources import FileClaim
from criu_core.sys.proc import F_GETPIPE_SZ, SPLICE_F_NONBLOCK, tee

if TYPE_CHECKING:
    from criu_core.context import DumpContext
    from criu_core.resources import FdInfo

__all__ = ["dump_file"]

PLUGIN = "builtin.files"
F_SETPIPE_SZ = 1031
_TTY_MAJORS = {4, 5, 136, 137, 138, 139, 140, 141, 142, 143}
_DELETED = " (deleted)"


def dump_file(ctx: DumpContext, fd: FdInfo) -> FileClaim | None:
    """Regular files, directories, non-tty character devices (REG) and pipes (PIPE, with their queued data).

    The entry's ids are filled in by the core.
    """
    fdinfo = pb_module("fdinfo")
    if fd.kind in ("reg", "dir", "chr", "blk"):
        if fd.kind == "chr" and os.major(os.fstat(fd.local_fd).st_rdev) in _TTY_MAJORS:
            return None  # a terminal: not ours
        if fd.link.startswith("/memfd:") and fd.kind == "reg":
            # a memfd: the core fills inode_id and saves the object (memfd.img, pagemap-shmem)
            memfd = {"id": 0, "flags": fd.flags & ~0o2000000, "pos": fd.pos, "fown": fown(), "inode_id": 0}
            entry = message_class("fdinfo.file_entry")(type=fdinfo.MEMFD, id=0, memfd=memfd)
            return FileClaim(plugin=PLUGIN, entry=entry, fd_type=fdinfo.MEMFD, data={"memfd": True})
        if not fd.link.startswith("/"):
            return None  # unreachable files: not ours
        deleted = fd.link.endswith(_DELETED) and os.fstat(fd.local_fd).st_nlink == 0
        name = fd.link.removesuffix(_DELETED) if deleted else fd.link
        entry = reg_entry(0, name, os.fstat(fd.local_fd), flags=fd.flags, pos=fd.pos)
        # an unlinked file: the core saves its content as a ghost (remap-fpath.img + ghost-file-N.img)
        return FileClaim(plugin=PLUGIN, entry=entry, fd_type=fdinfo.REG, data={"ghost": True} if deleted else None)
    if fd.kind.startswith("anon:"):
        return _anon_entry(fd)
    if fd.kind == "pipe":
        pipe = message_class("pipe.pipe_entry")(id=0, pipe_id=fd.ino, flags=fd.flags & ~0o2000000, fown=fown())
        entry = message_class("fdinfo.file_entry")(type=fdinfo.PIPE, id=0, pipe=pipe)
        return FileClaim(plugin=PLUGIN, entry=entry, fd_type=fdinfo.PIPE, data=_pipe_data(fd))
    return None


def _anon_entry(fd: FdInfo) -> FileClaim | None:
    """eventfd, signalfd, timerfd and epoll descriptors, rebuilt from their fdinfo lines."""
    fdinfo = pb_module("fdinfo")
    info = fd.fdinfo
    flags = fd.flags & ~0o2000000
    kind = fd.kind[len("anon:") :]
    if kind == "[eventfd]":
        efd = message_class("eventfd.eventfd_file_entry")(id=0, flags=flags, fown=fown(), counter=info["eventfd_count"])
        entry = message_class("fdinfo.file_entry")(type=fdinfo.EVENTFD, id=0, efd=efd)
        return FileClaim(plugin=PLUGIN, entry=entry, fd_type=fdinfo.EVENTFD)
    if kind == "[signalfd]":
        sgfd = message_class("signalfd.signalfd_entry")(id=0, flags=flags, fown=fown(), sigmask=info["sigmask"])
        entry = message_class("fdinfo.file_entry")(type=fdinfo.SIGNALFD, id=0, sgfd=sgfd)
        return FileClaim(plugin=PLUGIN, entry=entry, fd_type=fdinfo.SIGNALFD)
    if kind == "[timerfd]":
        value, interval = info["timerfd_it_value"], info["timerfd_it_interval"]
        tfd = message_class("timerfd.timerfd_entry")(
            id=0,
            flags=flags,
            fown=fown(),
            clockid=info["timerfd_clockid"],
            ticks=info["timerfd_ticks"],
            settime_flags=info["timerfd_settime_flags"],
            vsec=value[0],
            vnsec=value[1],
            isec=interval[0],
            insec=interval[1],
        )
        entry = message_class("fdinfo.file_entry")(type=fdinfo.TIMERFD, id=0, tfd=tfd)
        return FileClaim(plugin=PLUGIN, entry=entry, fd_type=fdinfo.TIMERFD)
    if kind == "[eventpoll]":
        tfds = [
            {
                "id": 0,
                "tfd": t["tfd"],
                "events": t["events"],
                "data": t["data"],
                "dev": t.get("sdev", 0),
                "inode": t.get("ino", 0),
                "pos": t.get("pos", 0),
            }
            for t in info["epoll_tfds"]
        ]
        epfd = message_class("eventpoll.eventpoll_file_entry")(id=0, flags=flags, fown=fown(), tfd=tfds)
        entry = message_class("fdinfo.file_entry")(type=fdinfo.EVENTPOLL, id=0, epfd=epfd)
        return FileClaim(plugin=PLUGIN, entry=entry, fd_type=fdinfo.EVENTPOLL)
    return None


def _pipe_data(fd: FdInfo) -> tuple[int, bytes, int]:
    """(pipe inode, queued bytes, buffer size): the data is copied with tee(2) from a fresh read end (opened
    through /proc/PID/fd/N), so the pipe keeps it."""
    rd = os.open(f"/proc/{fd.pid}/fd/{fd.fd}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        size = fcntl.fcntl(rd, F_GETPIPE_SZ)
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            try:
                fcntl.fcntl(w, F_SETPIPE_SZ, size)  # room for everything queued
            except OSError:
                pass
            try:
                n = tee(rd, w, size, SPLICE_F_NONBLOCK)
            except SyscallError:  # EAGAIN: the pipe is empty
                n = 0
            data = b""
            while len(data) < n:
                data += os.read(r, n - len(data))
        finally:
            os.close(r)
            os.close(w)
    finally:
        os.close(rd)
    return fd.ino, data, size
