"""Built-in restore of memfd files: one memfd per dumped inode (memfd.img), with its content, mode, owner and
seals, shared by every descriptor and mapping that named it.

The restorer creates the memfd, fills it from pagemap-shmem-SHMID.img (offsets inside the file) and keeps it
until the end. Each memfd descriptor of a task gets its own open file description (reopened through
/proc/self/fd, as a second open of the same inode would be) with its flags and position; mappings are made
from it by mem_restore. Seals are added last (:func:`apply_seals`), since F_SEAL_WRITE and
F_SEAL_FUTURE_WRITE would forbid the writable mappings and the content writes that come first.
"""

from __future__ import annotations

import fcntl
import os
from typing import Any

from criu_core.errors import CriuError, UnsupportedResource
from criu_core.images.pagemap import PAGE_SIZE
from criu_core.resources import FileImage, RestoredFd
from criu_core.restore_plan import PLAN_KEY
from criu_core.stash import StashKey

__all__ = ["FD_MEMFD", "PLUGIN", "apply_seals", "fini", "memfd_object", "open_file"]

PLUGIN = "builtin.memfd_restore"
FD_MEMFD = 18  # fdinfo.proto fd_types
F_ADD_SEALS = 1033  # linux/fcntl.h (F_LINUX_SPECIFIC_BASE + 9)
_CHUNK = 1 << 22
_OPEN_ONLY = os.O_CREAT | os.O_TRUNC | os.O_EXCL | os.O_NOCTTY
_OBJECTS: StashKey[dict[int, int]] = StashKey("restore.memfd")  # inode_id -> the restorer's memfd


def memfd_object(ctx: Any, inode_id: int) -> int:
    """The restorer's memfd for dumped inode ``inode_id``, created and filled on first use."""
    objects = ctx.stash.setdefault(_OBJECTS, {})
    fd = objects.get(inode_id)
    if fd is not None:
        return fd
    plan = ctx.stash[PLAN_KEY]
    m = plan.memfd[inode_id]
    if m.HasField("hugetlb_flag") and m.hugetlb_flag:
        raise UnsupportedResource(f"memfd {m.name}", msg=f"memfd {m.name!r} is hugetlb-backed, not supported")
    fd = os.memfd_create(m.name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.ftruncate(fd, m.size)
        shm = plan.shmem.get(m.shmid)
        if shm is not None and shm.pages:
            with open(shm.pages_path, "rb") as pages:
                for run in shm.pages:
                    for off in range(0, run.nr * PAGE_SIZE, _CHUNK):
                        n = min(_CHUNK, run.nr * PAGE_SIZE - off)
                        data = os.pread(pages.fileno(), n, run.offset + off)
                        if len(data) != n or os.pwrite(fd, data, run.vaddr + off) != n:
                            raise CriuError(f"memfd {m.name!r}: short copy of its content at {run.vaddr + off:#x}")
        if m.HasField("mode"):
            os.fchmod(fd, m.mode & 0o7777)
        os.fchown(fd, m.uid, m.gid)
    except BaseException:
        os.close(fd)
        raise
    objects[inode_id] = fd
    return fd


def apply_seals(ctx: Any) -> None:
    """Add each memfd's dumped seals, once every task has mapped and opened it."""
    plan = ctx.stash[PLAN_KEY]
    for inode_id, fd in ctx.stash.get(_OBJECTS, {}).items():
        seals = plan.memfd[inode_id].seals
        if seals:
            fcntl.fcntl(fd, F_ADD_SEALS, seals)


def open_file(ctx: Any, file: FileImage) -> RestoredFd | None:
    """A memfd descriptor: a new open file description of the restored memfd, with its flags and position."""
    e = file.entry
    if e.type != FD_MEMFD or not e.HasField("memfd"):
        return None
    obj = memfd_object(ctx, e.memfd.inode_id)
    fd = os.open(f"/proc/self/fd/{obj}", (e.memfd.flags & ~_OPEN_ONLY) | os.O_CLOEXEC)
    if e.memfd.pos:
        os.lseek(fd, e.memfd.pos, os.SEEK_SET)
    return RestoredFd(PLUGIN, fd)


def fini(ctx: Any, stage: str, success: bool) -> None:
    """Drop the restorer's memfds (the tasks hold their own descriptors and mappings by now)."""
    if stage != "restore":
        return
    for fd in ctx.stash.get(_OBJECTS, {}).values():
        os.close(fd)
    ctx.stash[_OBJECTS] = {}
