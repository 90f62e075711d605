"""Typed descriptors handed to hooks, and the claims plugins return.

Hooks take the context first and then exactly one of these frozen dataclasses, never loose ints, so a
spec can grow a field without breaking plugins. A claim says "this resource is mine" and what the core
should do with it.
"""

from __future__ import annotations

from typing import Any

from criu_core.records import dataclass, field

__all__ = [
    "FdInfo",
    "FileClaim",
    "FileImage",
    "MappedVma",
    "NamespaceInfo",
    "RestoredFd",
    "SocketInfo",
    "Task",
    "Vma",
    "VmaClaim",
    "VmaImage",
]


@dataclass(frozen=True)
class Task:
    """One process of the tree: ``pid`` is its thread-group id, ``tids`` its threads (leader first)."""

    pid: int
    ppid: int = 0
    pgid: int = 0
    sid: int = 0
    tids: tuple[int, ...] = ()
    comm: str = ""


@dataclass(frozen=True)
class Vma:
    """A mapping of a frozen task, as ``/proc/PID/smaps`` shows it.

    ``prot``/``flags`` use the mmap(2) constants; ``vmflags`` are smaps' two-letter VmFlags; ``path`` is the
    mapped file's path when there is one (``name`` is the raw last column: a path, ``[heap]``, ``[anon:x]``...).
    """

    pid: int
    start: int
    end: int
    prot: int
    flags: int
    pgoff: int = 0
    name: str = ""
    dev: str = "00:00"
    inode: int = 0
    vmflags: frozenset[str] = frozenset()
    path: str | None = None

    @property
    def size(self) -> int:
        return self.end - self.start

    def __str__(self) -> str:
        return f"{self.start:x}-{self.end:x} {self.name or '(anonymous)'} of task {self.pid}"


@dataclass(frozen=True)
class FdInfo:
    """One open descriptor of a frozen task.

    ``local_fd`` is a copy of the descriptor in the dumper (taken with pidfd_getfd); it stays open until the
    dump ends. ``kind`` is a coarse type from fstat and the /proc link (``reg``, ``dir``, ``chr``, ``pipe``,
    ``fifo``, ``socket``, ``anon:[eventfd]``...). ``fdinfo`` holds /proc/PID/fdinfo/FD's lines. ``file_id`` is
    the files.img id the core gives the file_entry of whoever claims it; set before the file hooks run (0
    outside them).
    """

    pid: int
    fd: int
    local_fd: int
    kind: str
    link: str
    flags: int = 0
    pos: int = 0
    cloexec: bool = False
    mnt_id: int = -1
    ino: int = 0
    dev: int = 0
    mode: int = 0
    fdinfo: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    file_id: int = 0

    def __str__(self) -> str:
        return f"fd {self.fd} ({self.kind} {self.link}) of task {self.pid}"


@dataclass(frozen=True)
class SocketInfo:
    """A socket descriptor, with its family/type/protocol as getsockopt reports them."""

    fd: FdInfo
    family: int
    type: int
    protocol: int
    ino: int = 0


@dataclass(frozen=True)
class NamespaceInfo:
    """A namespace a task lives in: ``kind`` is ``net``, ``mnt``, ``uts``... ``ino`` is its /proc/PID/ns inode."""

    pid: int
    kind: str
    ino: int
    is_root: bool = True


@dataclass
class VmaClaim:
    """A plugin's claim on a VMA at dump.

    ``skip`` drops the VMA from the image altogether (the uprobes XOL page); ``skip_content`` keeps the VMA but
    dumps no pages for it; ``status`` bits are ORed into the VMA entry's status (VMA_* from image.h);
    ``entry_updates`` are field values to set on the vma_entry (e.g. ``shmid`` for a device file id).
    ``anon_name`` is the VMA's ``[anon:NAME]`` name, which CRIU's vma_entry has no field for: the dump keeps it
    in criu-core's own image (criu-core-PID.img) and the restore names the VMA again.
    """

    plugin: str
    skip: bool = False
    skip_content: bool = False
    status: int = 0
    entry_updates: dict[str, Any] = field(default_factory=dict)
    anon_name: str | None = None


@dataclass
class FileClaim:
    """A plugin's claim on a descriptor at dump: ``entry`` is the filled ``file_entry`` protobuf message.

    ``fd_type`` is the fdinfo type (``fd_types`` enum value). ``data`` is free for the plugin's own images.
    """

    plugin: str
    entry: Any
    fd_type: int
    data: Any = None


@dataclass(frozen=True)
class VmaImage:
    """A VMA read from the images at restore (``entry`` is the ``vma_entry`` message)."""

    pid: int
    index: int
    entry: Any


@dataclass(frozen=True)
class FileImage:
    """A file read from ``files.img`` at restore: ``entry`` is the ``file_entry``, ``fds`` the fd numbers it fills."""

    pid: int
    entry: Any
    fds: tuple[int, ...] = ()


@dataclass
class RestoredFd:
    """A descriptor opened in the restorer by a restore hook; the task pulls it in with pidfd_getfd."""

    plugin: str
    local_fd: int
    close_after: bool = True


@dataclass
class MappedVma:
    """Returned by a plugin that mapped a VMA itself at restore (``criu_vma_restore``)."""

    plugin: str
    skip_content: bool = False
