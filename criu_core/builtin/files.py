"""Built-in file handler: regular files, directories and character devices opened by path, and pipes."""

from __future__ import annotations

import fcntl
import os
from typing import TYPE_CHECKING

from criu_core.dumping.files import fown, reg_entry
from criu_core.errors import SyscallError, UnsupportedResource
from criu_core.hookspecs import hookimpl
from criu_core.images.messages import message_class, pb_module
from criu_core.resources import FileClaim
from criu_core.sys.proc import F_GETPIPE_SZ, SPLICE_F_NONBLOCK, tee

if TYPE_CHECKING:
    from criu_core.context import DumpContext
    from criu_core.resources import FdInfo

__all__ = ["criu_file_dump"]

PLUGIN = "builtin.files"
F_SETPIPE_SZ = 1031
_TTY_MAJORS = {4, 5, 136, 137, 138, 139, 140, 141, 142, 143}
_DELETED = " (deleted)"


@hookimpl(trylast=True)
def criu_file_dump(ctx: DumpContext, fd: FdInfo) -> FileClaim | None:
    """Regular files, directories, non-tty character devices (REG) and pipes (PIPE, with their queued data).

    The entry's ids are filled in by the core.
    """
    fdinfo = pb_module("fdinfo")
    if fd.kind in ("reg", "dir", "chr", "blk"):
        if fd.kind == "chr" and os.major(os.fstat(fd.local_fd).st_rdev) in _TTY_MAJORS:
            return None  # a terminal: not ours
        if fd.link.endswith(_DELETED) or not fd.link.startswith("/"):
            raise UnsupportedResource(fd, hint="unlinked or unreachable files need ghost-file support")
        entry = reg_entry(0, fd.link, os.fstat(fd.local_fd), flags=fd.flags, pos=fd.pos)
        return FileClaim(plugin=PLUGIN, entry=entry, fd_type=fdinfo.REG)
    if fd.kind == "pipe":
        pipe = message_class("pipe.pipe_entry")(id=0, pipe_id=fd.ino, flags=fd.flags & ~0o2000000, fown=fown())
        entry = message_class("fdinfo.file_entry")(type=fdinfo.PIPE, id=0, pipe=pipe)
        return FileClaim(plugin=PLUGIN, entry=entry, fd_type=fdinfo.PIPE, data=_pipe_data(fd))
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
