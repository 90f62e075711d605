"""Built-in file restore: regular files, directories and character devices reopened by path, then pulled into
the task with pidfd_getfd (step 10 of the validated restore order); cwd, root and umask from fs-PID.img.

The restorer opens each file description once (fds sharing a files.img id share the description, as
``>log 2>&1`` does) and the task pulls it in through an injected ``pidfd_getfd`` on a pidfd of the restorer.
"""

from __future__ import annotations

import os
import re
import stat
from typing import Any

from criu_core.builtin.fds_restore import add_epoll_targets
from criu_core.builtin.ghost_restore import opened_path
from criu_core.errors import CriuError, ImageFormatError, UnsupportedResource, UsageError
from criu_core.resources import FileImage, RestoredFd
from criu_core.restore_plan import FD_TYPE_REG, TaskState

__all__ = ["PLUGIN", "inherit_fds", "inherit_key", "install_fds", "open_file", "open_reg", "restore_fs"]

PLUGIN = "builtin.files_restore"
FD_TYPE_INETSK, FD_TYPE_UNIXSK = 4, 5  # fdinfo.proto fd_types: offered to the socket hooks first
F_SETFD = 2
FD_CLOEXEC = 1
O_CLOEXEC = 0o2000000
# Flags that only matter at open time and would damage the file if replayed (P14).
_OPEN_ONLY = os.O_CREAT | os.O_TRUNC | os.O_EXCL | os.O_NOCTTY


def open_reg(reg: Any, *, what: str = "file", path: str | None = None) -> int:
    """Open a reg_file_entry in the restorer with its status flags and seek to its position.

    ``path`` overrides the name (a deleted file reopened through its ghost, see ghost_restore). Checks what
    the dump recorded: a regular file must still have the dumped size (CRIU's "File %s has bad size";
    skipped for files opened for writing or appending, which legitimately grew) and the same type.
    """
    name = reg.name
    if not name.startswith("/") or "\0" in name:
        raise ImageFormatError("files.img", 0, f"file id {reg.id}: path {name!r} is not absolute")
    flags = (reg.flags & ~_OPEN_ONLY) | os.O_CLOEXEC
    try:
        fd = os.open(path or name, flags)
    except OSError as err:
        raise CriuError(f"Can't open {what} {name} (id {reg.id}) on restore: {err.strerror}", path=name) from None
    try:
        st = os.fstat(fd)
        if reg.HasField("mode") and stat.S_IFMT(reg.mode) != stat.S_IFMT(st.st_mode):
            raise CriuError(f"File {name} changed type since the dump (mode {reg.mode:o}, now {st.st_mode:o})",
                            path=name)
        writing = reg.flags & (os.O_WRONLY | os.O_RDWR | os.O_APPEND)
        if stat.S_ISREG(st.st_mode) and reg.HasField("size") and not writing and st.st_size != reg.size:
            raise CriuError(f"File {name} has bad size {st.st_size} (expect {reg.size})", path=name)
        if reg.pos and not stat.S_ISCHR(st.st_mode):
            os.lseek(fd, reg.pos, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_file(ctx: Any, file: FileImage) -> RestoredFd | None:
    """Regular files, directories and devices opened by path (files.img REG entries)."""
    entry = file.entry
    if entry.type != FD_TYPE_REG or not entry.HasField("reg"):
        return None
    if entry.reg.HasField("ext") and entry.reg.ext:
        return None  # an external file: someone's criu_ext_file_restore
    with opened_path(ctx, entry.id, entry.reg.name) as path:
        return RestoredFd(PLUGIN, open_reg(entry.reg, path=path))


def inherit_fds(specs: list[str]) -> dict[str, int]:
    """``--inherit-fd fd[N]:KEY`` values as {KEY: N}; N is a descriptor of this process (runc passes its stdio
    pipes this way), used instead of recreating the object the key names."""
    out = {}
    for spec in specs:
        m = re.fullmatch(r"fd\[(\d+)\]:(.+)", spec)
        if m is None:
            raise UsageError(f"--inherit-fd {spec!r}: expected fd[NUM]:KEY")
        fd = int(m.group(1))
        try:
            os.fstat(fd)
        except OSError:
            raise UsageError(f"--inherit-fd {spec!r}: descriptor {fd} is not open") from None
        out[m.group(2)] = fd
    return out


def inherit_key(entry: Any) -> str | None:
    """The key an inherited fd replaces this file with, as CRIU spells it: the path without its leading
    slash for files, ``pipe:[INODE]`` for pipes, ``socket:[INODE]`` for sockets."""
    if entry.HasField("reg"):
        return entry.reg.name[1:]
    if entry.HasField("pipe"):
        return f"pipe:[{entry.pipe.pipe_id}]"
    if entry.HasField("usk"):
        return f"socket:[{entry.usk.ino}]"
    if entry.HasField("isk"):
        return f"socket:[{entry.isk.ino}]"
    return None


def _pull(st: TaskState, pidfd: int, local_fd: int, fd: int, cloexec: bool) -> None:
    remote = st.remote
    tmp = remote.syscall("pidfd_getfd", pidfd, local_fd, 0)
    if tmp == fd:
        # dup3 refuses equal fds (P11); pidfd_getfd always sets O_CLOEXEC, so only the flag needs fixing
        remote.syscall("fcntl", fd, F_SETFD, FD_CLOEXEC if cloexec else 0)
        return
    remote.syscall("dup3", tmp, fd, O_CLOEXEC if cloexec else 0)
    remote.syscall("close", tmp)


def install_fds(ctx: Any, st: TaskState, host: Any) -> None:
    """Open every file of the task in the restorer (claimants first) and install them at their numbers."""
    plan = st.plan
    by_file: dict[int, list[Any]] = {}
    for fdp in plan.fds:
        by_file.setdefault(fdp.file_id, []).append(fdp)
    opened: dict[int, RestoredFd] = {}
    inherited = inherit_fds(ctx.options.inherit_fd or [])
    try:
        for file_id, fdps in by_file.items():
            image = FileImage(plan.pid, st.files[file_id], tuple(p.fd for p in fdps))
            key = inherit_key(image.entry)
            res = None
            if key is not None and key in inherited:
                res = RestoredFd("inherit-fd", os.dup(inherited[key]))
            elif image.entry.type == FD_TYPE_UNIXSK:
                res = host.unix_sk_restore(ctx, image)
            elif image.entry.type == FD_TYPE_INETSK:
                res = host.inet_sk_restore(ctx, image)
            opened[file_id] = res if res is not None else host.file_restore(ctx, image, st.remote)
        if not opened:
            return
        remote = st.remote
        # The task's own pidfd of the restorer sits above every fd it will get, so no dup3 closes it (P11).
        high = st.alloc_fd()
        pidfd = remote.syscall("pidfd_open", os.getpid(), 0)
        if pidfd != high:
            remote.syscall("dup3", pidfd, high, O_CLOEXEC)
            remote.syscall("close", pidfd)
        try:
            for fdp in plan.fds:  # ascending: pidfd_getfd returns the lowest free fd, never above fdp.fd
                _pull(st, high, opened[fdp.file_id].local_fd, fdp.fd, fdp.cloexec)
        finally:
            remote.syscall("close", high, check=False)
        add_epoll_targets(st)
    finally:
        for res in opened.values():
            if res.close_after:
                os.close(res.local_fd)


def restore_fs(ctx: Any, st: TaskState) -> None:
    """cwd and root from fs-PID.img (opened here, pulled in, fchdir/chroot), then the umask."""
    fs = st.plan.fs
    remote = st.remote
    root = st.files[fs.root_id].reg
    cwd = st.files[fs.cwd_id].reg
    pidfd = remote.syscall("pidfd_open", os.getpid(), 0)
    try:
        if root.name != "/":
            _enter_dir(ctx, st, pidfd, fs.root_id, root, "root")
            st.scratch.reset()
            remote.syscall("chroot", st.scratch.cstr("."))
        _enter_dir(ctx, st, pidfd, fs.cwd_id, cwd, "cwd")
    finally:
        remote.syscall("close", pidfd, check=False)
    if fs.HasField("umask"):
        remote.syscall("umask", fs.umask & 0o777)


def _enter_dir(ctx: Any, st: TaskState, pidfd: int, file_id: int, reg: Any, what: str) -> None:
    with opened_path(ctx, file_id, reg.name) as path:  # a deleted directory comes back from its ghost
        local = open_reg(reg, what=f"{what} directory", path=path)
    try:
        if not stat.S_ISDIR(os.fstat(local).st_mode):
            raise UnsupportedResource(reg.name, msg=f"{what} {reg.name} of task {st.plan.pid} is not a directory")
        tmp = st.remote.syscall("pidfd_getfd", pidfd, local, 0)
        try:
            st.remote.syscall("fchdir", tmp)
        finally:
            st.remote.syscall("close", tmp)
    finally:
        os.close(local)
