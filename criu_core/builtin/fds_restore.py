"""Built-in restore of pipes (with their queued data), eventfd, signalfd, timerfd and epoll descriptors.

The restorer builds each object (``open_file``) and the task pulls it in like any file. Both ends of a
pipe come from one ``pipe2`` (matched by ``pipe_id``, the dumped pipe inode), filled with the bytes of
pipes-data.img before anyone can read them. An epoll instance is created empty; its targets are added by
injected ``epoll_ctl`` calls once every descriptor of the task is in place, because the kernel keys each
registration by the *task's* fd number (:func:`add_epoll_targets`).
"""

from __future__ import annotations

import fcntl
import os
import struct
from typing import Any

from criu_core.errors import CriuError, ImageFormatError
from criu_core.images.framing import read_image
from criu_core.resources import FileImage, RestoredFd
from criu_core.restore_plan import TaskState
from criu_core.stash import StashKey
from criu_core.sys.restore_fds import epoll_create, signalfd, timerfd_create, timerfd_settime

__all__ = [
    "FD_EVENTFD",
    "FD_EVENTPOLL",
    "FD_PIPE",
    "FD_SIGNALFD",
    "FD_TIMERFD",
    "PLUGIN",
    "add_epoll_targets",
    "fini",
    "open_file",
]

PLUGIN = "builtin.fds_restore"
FD_PIPE, FD_EVENTFD, FD_EVENTPOLL, FD_SIGNALFD, FD_TIMERFD = 2, 6, 7, 9, 17  # fdinfo.proto fd_types
F_SETPIPE_SZ = 1031
TFD_IOC_SET_TICKS = 0x40085400  # _IOW('T', 0, __u64), linux/timerfd.h (CONFIG_CHECKPOINT_RESTORE)
TFD_TIMER_ABSTIME = 1
EPOLL_CTL_ADD = 1
_STATUS_FLAGS = os.O_NONBLOCK | os.O_APPEND | os.O_ASYNC | os.O_DIRECT | os.O_NOATIME

_PIPES: StashKey[dict[int, list[int]]] = StashKey("restore.pipes")  # pipe_id -> [read end, write end]
_PIPE_DATA: StashKey[dict[int, tuple[bytes, int]]] = StashKey("restore.pipe_data")  # pipe_id -> (data, size)


def _pipe_data(ctx: Any) -> dict[int, tuple[bytes, int]]:
    data = ctx.stash.get(_PIPE_DATA, None)
    if data is None:
        data = {}
        path = os.path.join(ctx.images_dir, "pipes-data.img")
        if os.path.exists(path):
            for ent in read_image(path).entries:
                if ent.msg.pipe_id in data:
                    raise ImageFormatError(path, ent.offset, f"duplicate pipe_id {ent.msg.pipe_id}")
                data[ent.msg.pipe_id] = (bytes(ent.extra or b""), ent.msg.size if ent.msg.HasField("size") else 0)
        ctx.stash[_PIPE_DATA] = data
    return data


def _pipe(ctx: Any, pipe_id: int) -> list[int]:
    pipes = ctx.stash.setdefault(_PIPES, {})
    ends = pipes.get(pipe_id)
    if ends is None:
        r, w = os.pipe2(os.O_CLOEXEC)
        ends = pipes[pipe_id] = [r, w]
        data, size = _pipe_data(ctx).get(pipe_id, (b"", 0))
        if size:
            fcntl.fcntl(w, F_SETPIPE_SZ, max(size, len(data)))
        if data:
            os.set_blocking(w, False)  # never hang the restorer on a corrupt image: a short write is an error
            try:
                done = os.write(w, data)
            except BlockingIOError:
                done = 0
            os.set_blocking(w, True)
            if done != len(data):
                raise CriuError(f"pipe {pipe_id}: only {done} of {len(data)} queued bytes fit back in", pipe=pipe_id)
    return ends


def _set_status_flags(fd: int, flags: int) -> None:
    fcntl.fcntl(fd, fcntl.F_SETFL, flags & _STATUS_FLAGS)


def open_file(ctx: Any, file: FileImage) -> RestoredFd | None:
    """Pipes, eventfd, signalfd, timerfd and (empty) epoll instances."""
    e = file.entry
    if e.type == FD_PIPE and e.HasField("pipe"):
        ends = _pipe(ctx, e.pipe.pipe_id)
        end = ends[1] if e.pipe.flags & os.O_ACCMODE == os.O_WRONLY else ends[0]
        _set_status_flags(end, e.pipe.flags)
        return RestoredFd(PLUGIN, os.dup(end))
    if e.type == FD_EVENTFD and e.HasField("efd"):
        fd = os.eventfd(e.efd.counter, os.EFD_CLOEXEC | (e.efd.flags & os.O_NONBLOCK))
        return RestoredFd(PLUGIN, fd)
    if e.type == FD_SIGNALFD and e.HasField("sgfd"):
        return RestoredFd(PLUGIN, signalfd(e.sgfd.sigmask, e.sgfd.flags & os.O_NONBLOCK))
    if e.type == FD_TIMERFD and e.HasField("tfd"):
        t = e.tfd
        fd = timerfd_create(t.clockid, t.flags & os.O_NONBLOCK)
        try:
            # the dump holds the *remaining* time (fdinfo), so the timer is armed relative even if it was absolute
            if t.vsec or t.vnsec:
                timerfd_settime(fd, t.settime_flags & ~TFD_TIMER_ABSTIME & ~2, (t.isec, t.insec), (t.vsec, t.vnsec))
            if t.ticks:
                fcntl.ioctl(fd, TFD_IOC_SET_TICKS, struct.pack("<Q", t.ticks))
        except BaseException:
            os.close(fd)
            raise
        return RestoredFd(PLUGIN, fd)
    if e.type == FD_EVENTPOLL and e.HasField("epfd"):
        fd = epoll_create()
        _set_status_flags(fd, e.epfd.flags)
        return RestoredFd(PLUGIN, fd)
    return None


def add_epoll_targets(st: TaskState) -> None:
    """Register each epoll instance's targets in the task by their fd numbers (injected epoll_ctl)."""
    remote, scratch = st.remote, st.scratch
    fds = {p.fd for p in st.plan.fds}
    for p in st.plan.fds:
        e = st.files[p.file_id]
        if p.type != FD_EVENTPOLL or not e.HasField("epfd"):
            continue
        for t in e.epfd.tfd:
            if t.tfd not in fds:
                raise CriuError(f"epoll fd {p.fd} of task {st.plan.pid} watches fd {t.tfd}, which the task does not "
                                "have", pid=st.plan.pid)
            scratch.reset()
            # struct epoll_event is packed on x86_64 (linux/eventpoll.h): u32 events, u64 data
            ev = scratch.put(struct.pack("<IQ", t.events, t.data), 4)
            remote.syscall("epoll_ctl", p.fd, EPOLL_CTL_ADD, t.tfd, ev)


def fini(ctx: Any, stage: str, success: bool) -> None:
    """Close the restorer's ends of every pipe it built (the tasks hold their own copies by now)."""
    if stage != "restore":
        return
    for ends in ctx.stash.get(_PIPES, {}).values():
        for fd in ends:
            os.close(fd)
    ctx.stash[_PIPES] = {}
