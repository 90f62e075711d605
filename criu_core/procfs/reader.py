"""``ProcFS``: reads files under a proc root and hands them to the pure parsers.

The root is injectable (psutil's PROCFS_PATH idea): tests point it at a recorded tree under
``tests/lowlevel/data``. File errors become criu-core errors: a vanished task is :class:`NoSuchProcess`, a
refused read :class:`AccessDenied`.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager

from criu_core.errors import AccessDenied, NoSuchProcess
from criu_core.procfs.fdinfo import FdInfo, parse_fdinfo
from criu_core.procfs.maps import MapEntry, parse_maps, parse_smaps
from criu_core.procfs.misc import MountInfo, parse_auxv, parse_children, parse_limits, parse_mountinfo
from criu_core.procfs.stat import ProcStat, parse_stat
from criu_core.procfs.status import ProcStatus, parse_status

__all__ = ["ProcFS"]


@contextmanager
def _errors(pid: int) -> Iterator[None]:
    try:
        yield
    except (FileNotFoundError, ProcessLookupError) as e:
        raise NoSuchProcess(pid, f"No such process: {pid} ({e.filename})") from e
    except PermissionError as e:
        raise AccessDenied(pid, f"Access denied to task {pid} ({e.filename})") from e
    except OSError as e:
        if e.errno == errno.ESRCH:
            raise NoSuchProcess(pid) from e
        raise


class ProcFS:
    """Reader of ``/proc`` (or a recorded copy of it at ``root``)."""

    def __init__(self, root: str = "/proc") -> None:
        self.root = root

    def path(self, pid: int, *parts: str | int) -> str:
        return os.path.join(self.root, str(pid), *(str(p) for p in parts))

    def read_text(self, pid: int, *parts: str | int) -> str:
        with _errors(pid), open(self.path(pid, *parts), encoding="utf-8", errors="surrogateescape") as f:
            return f.read()

    def read_bytes(self, pid: int, *parts: str | int) -> bytes:
        with _errors(pid), open(self.path(pid, *parts), "rb") as f:
            return f.read()

    def readlink(self, pid: int, *parts: str | int) -> str:
        with _errors(pid):
            return os.readlink(self.path(pid, *parts))

    def listdir(self, pid: int, *parts: str | int) -> list[str]:
        with _errors(pid):
            return os.listdir(self.path(pid, *parts))

    # -- parsed files -----------------------------------------------------------------------------------------

    def stat(self, pid: int, tid: int | None = None) -> ProcStat:
        return parse_stat(self.read_text(pid, "task", tid, "stat") if tid else self.read_text(pid, "stat"))

    def status(self, pid: int, tid: int | None = None) -> ProcStatus:
        return parse_status(self.read_text(pid, "task", tid, "status") if tid else self.read_text(pid, "status"))

    def maps(self, pid: int) -> list[MapEntry]:
        return parse_maps(self.read_text(pid, "maps"))

    def smaps(self, pid: int) -> list[MapEntry]:
        return parse_smaps(self.read_text(pid, "smaps"))

    def fdinfo(self, pid: int, fd: int) -> FdInfo:
        return parse_fdinfo(self.read_text(pid, "fdinfo", fd))

    def fds(self, pid: int) -> list[int]:
        """Open descriptor numbers, sorted."""
        return sorted(int(x) for x in self.listdir(pid, "fd"))

    def fd_target(self, pid: int, fd: int) -> str:
        return self.readlink(pid, "fd", fd)

    def limits(self, pid: int) -> list[tuple[int, int]]:
        return parse_limits(self.read_text(pid, "limits"))

    def auxv(self, pid: int) -> list[tuple[int, int]]:
        return parse_auxv(self.read_bytes(pid, "auxv"))

    def tids(self, pid: int) -> list[int]:
        """Thread ids of process ``pid``, the leader first."""
        tids = sorted(int(x) for x in self.listdir(pid, "task"))
        if pid in tids:
            tids.remove(pid)
            tids.insert(0, pid)
        return tids

    def children(self, pid: int, tid: int | None = None) -> list[int]:
        """Children of one thread (``tid``) or of every thread of ``pid`` (threads that vanish are skipped)."""
        if tid is not None:
            return parse_children(self.read_text(pid, "task", tid, "children"))
        out: list[int] = []
        for t in self.tids(pid):
            try:
                out.extend(parse_children(self.read_text(pid, "task", t, "children")))
            except NoSuchProcess:
                continue
        return out

    def mountinfo(self, pid: int) -> list[MountInfo]:
        return parse_mountinfo(self.read_text(pid, "mountinfo"))

    def comm(self, pid: int) -> str:
        return self.read_text(pid, "comm").rstrip("\n")

    def cmdline(self, pid: int) -> list[str]:
        raw = self.read_bytes(pid, "cmdline")
        return [a.decode(errors="surrogateescape") for a in raw.split(b"\0")[:-1]] if raw else []

    def exe(self, pid: int) -> str:
        return self.readlink(pid, "exe")

    def cwd(self, pid: int) -> str:
        return self.readlink(pid, "cwd")

    def root_link(self, pid: int) -> str:
        return self.readlink(pid, "root")
