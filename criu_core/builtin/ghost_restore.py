"""Files that were deleted (or replaced) while open or mapped: CRIU's remaps (remap-fpath.img).

A file entry listed in remap-fpath.img has lost its name on disk. Its content lives either in a ghost image
(GHOST: ghost-file-ID.img holds mode, owner, times and the bytes) or in a hard link the dump made beside it
(LINKED: another files.img entry naming ``link_remap.N``). To reopen it under its own name, as CRIU does, the
restorer creates the ghost (``<name>.cr.<id>.ghost``), hard-links it to the original name just for the
``open`` or ``mmap`` (:func:`opened_path`) and unlinks that name again, so the task's descriptor and mappings
show ``<name> (deleted)`` as before. If something new took the name meanwhile (a binary replaced by an
upgrade), the ghost itself is opened. Ghosts are removed when the restore ends, link_remap files after a
successful restore.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from criu_core.errors import CriuError, ImageFormatError, UnsupportedResource
from criu_core.images.framing import read_image
from criu_core.records import dataclass
from criu_core.restore_plan import PLAN_KEY
from criu_core.stash import StashKey

__all__ = ["REMAP_GHOST", "REMAP_LINKED", "fini", "opened_path", "remap_source"]

REMAP_LINKED, REMAP_GHOST, REMAP_PROCFS = 0, 1, 2
_REMAP_GHOST_BIT = 1 << 31  # images older than remap_type marked ghosts in remap_id


@dataclass
class _Remap:
    source: str  # a path holding the file's content, to link from
    linked: bool  # a link_remap file of the dump, removed after a successful restore


_SOURCES: StashKey[dict[int, _Remap]] = StashKey("restore.remaps")  # orig file id -> its source


def _create_ghost(ctx: Any, name: str, remap_id: int) -> str:
    path = os.path.join(ctx.images_dir, f"ghost-file-{remap_id:x}.img")
    img = read_image(path)
    if not img.entries:
        raise ImageFormatError(path, 0, "empty ghost file image")
    g = img.entries[0].msg
    ghost = f"{name}.cr.{remap_id:x}.ghost"
    if stat.S_ISDIR(g.mode):
        os.mkdir(ghost, g.mode & 0o7777)
    elif stat.S_ISREG(g.mode):
        fd = os.open(ghost, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            if g.HasField("chunks") and g.chunks:
                for ent in img.entries[1:]:
                    os.pwrite(fd, ent.extra, ent.msg.off)
                if g.HasField("size"):
                    os.ftruncate(fd, g.size)
            else:
                os.write(fd, img.entries[0].extra or b"")
            os.fchmod(fd, g.mode & 0o7777)
        finally:
            os.close(fd)
    else:
        raise UnsupportedResource(name, msg=f"deleted file {name}: ghost of mode {g.mode:o} is not supported")
    os.chown(ghost, g.uid, g.gid, follow_symlinks=False)
    if g.HasField("atim") and g.HasField("mtim"):
        os.utime(ghost, ns=(g.atim.tv_sec * 10**9 + g.atim.tv_usec * 1000,
                            g.mtim.tv_sec * 10**9 + g.mtim.tv_usec * 1000))
    return ghost


def remap_source(ctx: Any, file_id: int) -> str | None:
    """The path to reopen a remapped file from (a ghost, created on first use), or None if it is not remapped."""
    plan = ctx.stash[PLAN_KEY]
    rpe = plan.remaps.get(file_id)
    if rpe is None:
        return None
    sources = ctx.stash.setdefault(_SOURCES, {})
    if file_id in sources:
        return sources[file_id].source
    kind = rpe.remap_type if rpe.HasField("remap_type") else (
        REMAP_GHOST if rpe.remap_id & _REMAP_GHOST_BIT else REMAP_LINKED)
    remap_id = rpe.remap_id & ~_REMAP_GHOST_BIT
    name = plan.files[file_id].reg.name
    if kind == REMAP_GHOST:
        sources[file_id] = _Remap(_create_ghost(ctx, name, remap_id), linked=False)
    elif kind == REMAP_LINKED:
        link = plan.files.get(remap_id)
        if link is None or not link.HasField("reg"):
            raise ImageFormatError("remap-fpath.img", 0, f"file id {file_id}: no link_remap file id {remap_id}")
        sources[file_id] = _Remap(link.reg.name, linked=True)
    else:
        raise UnsupportedResource(name, msg=f"file {name}: remap type {kind} is not supported")
    return sources[file_id].source


@contextmanager
def opened_path(ctx: Any, file_id: int, name: str) -> Iterator[str]:
    """The path to open file ``file_id`` by while the block runs: its own name (linked from its ghost or
    link_remap file for the duration if it was deleted), or the ghost itself if the name is taken."""
    source = remap_source(ctx, file_id)
    if source is None:
        yield name
        return
    try:
        os.link(source, name, follow_symlinks=False)
    except FileExistsError:
        yield source  # something new has the name now: open the old content under its ghost name
        return
    except OSError as err:
        if err.errno in (errno.EPERM, errno.EXDEV, errno.EISDIR):  # directories, other file systems
            yield source
            return
        raise CriuError(f"Can't link {source} to {name}: {err.strerror}", path=name) from None
    try:
        yield name
    finally:
        os.unlink(name)


def fini(ctx: Any, stage: str, success: bool) -> None:
    """Remove the ghosts made for this restore, and the dump's link_remap files once it succeeded."""
    if stage != "restore":
        return
    for remap in ctx.stash.get(_SOURCES, {}).values():
        if remap.linked and not success:
            continue
        try:
            if os.path.isdir(remap.source) and not os.path.islink(remap.source):
                os.rmdir(remap.source)
            else:
                os.unlink(remap.source)
        except OSError as err:
            ctx.log.warning("cannot remove %s: %s", remap.source, err.strerror)
    ctx.stash[_SOURCES] = {}
