"""Descriptors of a frozen process and regular-file entries of files.img.

Each descriptor is copied into the dumper with ``pidfd_getfd`` (reference §3 step 4) and described by an
:class:`criu_core.resources.FdInfo` (fstat of the copy, the /proc link, fdinfo). Regular-file entries for the
exe, mapped files, cwd and root are built here too, with CRIU's field choices (``flags`` = file status flags
without O_CLOEXEC, ``size`` only for regular files, ``mode`` = st_mode, no ``mnt_id``).
"""

from __future__ import annotations

import dataclasses
import os
import stat as st
from typing import Any

from criu_core.errors import CriuError, UnsupportedResource
from criu_core.images.messages import message_class, pb_module
from criu_core.procfs import ProcFS
from criu_core.resources import FdInfo
from criu_core.sys.proc import pidfd_getfd, pidfd_open

__all__ = ["FD_CLOEXEC", "O_CLOEXEC", "close_fds", "collect_fds", "fd_kind", "fown", "reg_entry"]

O_CLOEXEC = 0o2000000
FD_CLOEXEC = 1


def fown() -> Any:
    """An all-zero ``fown_entry`` (no F_SETOWN)."""
    return message_class("fown.fown_entry")(uid=0, euid=0, signum=0, pid_type=0, pid=0)


def fd_kind(mode: int, link: str) -> str:
    """Coarse descriptor type from st_mode and the /proc/PID/fd link."""
    if st.S_ISREG(mode):
        return "reg"
    if st.S_ISDIR(mode):
        return "dir"
    if st.S_ISCHR(mode):
        return "chr"
    if st.S_ISBLK(mode):
        return "blk"
    if st.S_ISFIFO(mode):
        return "pipe" if link.startswith("pipe:") else "fifo"
    if st.S_ISSOCK(mode):
        return "socket"
    if link.startswith("anon_inode:"):
        return "anon:" + link[len("anon_inode:") :]
    return "unknown"


def collect_fds(pid: int, procfs: ProcFS) -> list[FdInfo]:
    """Every open descriptor of ``pid`` with a local copy (close them with :func:`close_fds`)."""
    pidfd = pidfd_open(pid)
    out: list[FdInfo] = []
    try:
        for fd in procfs.fds(pid):
            try:
                local = pidfd_getfd(pidfd, fd, pid=pid)
            except CriuError as e:
                raise UnsupportedResource(f"fd {fd} of task {pid}", msg=f"Can't take fd {fd} of task {pid}: {e}")
            s = os.fstat(local)
            link = procfs.fd_target(pid, fd)
            info = procfs.fdinfo(pid, fd)
            out.append(
                FdInfo(
                    pid=pid,
                    fd=fd,
                    local_fd=local,
                    kind=fd_kind(s.st_mode, link),
                    link=link,
                    flags=info.flags,
                    pos=info.pos,
                    cloexec=bool(info.flags & O_CLOEXEC),
                    mnt_id=info.mnt_id,
                    ino=s.st_ino,
                    dev=s.st_dev,
                    mode=s.st_mode,
                    fdinfo=dataclasses.asdict(info),
                )
            )
    finally:
        os.close(pidfd)
    return out


def close_fds(fds: list[FdInfo]) -> None:
    for f in fds:
        try:
            os.close(f.local_fd)
        except OSError:
            pass


def reg_entry(fid: int, name: str, s: os.stat_result, *, flags: int = 0, pos: int = 0) -> Any:
    """A REG ``file_entry`` (with its ``reg_file_entry``) for path ``name`` whose stat is ``s``."""
    reg = message_class("regfile.reg_file_entry")(
        id=fid, flags=flags & ~O_CLOEXEC, pos=pos, fown=fown(), name=name, mode=s.st_mode
    )
    if st.S_ISREG(s.st_mode):
        reg.size = s.st_size
    return message_class("fdinfo.file_entry")(type=pb_module("fdinfo").REG, id=fid, reg=reg)
