"""ImageDir: the directory of images a dump writes and a restore reads.

Images are named as CRIU names them. An image is addressed by a short name and an optional id::

    img = ImageDir("/tmp/dump", create=True)
    img.write("pstree", entries)                 # pstree.img
    img.write("core", [core], 123)               # core-123.img
    img.read_one("inventory")                    # the one inventory_entry
    img.read_all("fdinfo", 2)                    # every fdinfo_entry of fdinfo-2.img
    pid = img.next_pages_id()                    # 1, 2, ... for pages-N.img
    with img.open_pages_writer(pid) as f: ...    # raw pages
    img.write("pagemap", [head, *entries], 123)  # head first

Short names are the file names without id and suffix (``core``, ``pagemap``, ``pagemap-shmem``, ``pages``,
``files``, ``pipes-data``, ``tcp-stream``, ``stats``...) or the canonical upper-case names (``CORE``). Every read
validates (see :mod:`criu_core.images.framing`) and raises :class:`~criu_core.errors.ImageFormatError`; ids are
never allowed to name a path outside the directory.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterable
from typing import Any, BinaryIO

from criu_core.errors import ImageFormatError
from criu_core.images import framing, magic
from criu_core.images.magic import ImageType

__all__ = ["ImageDir", "image_type"]


def _short_names() -> dict[str, ImageType]:
    out: dict[str, ImageType] = {}
    for it in magic.IMAGES:
        out[it.name] = it
        if it.pattern:
            short = it.pattern.split("{}")[0].rstrip("-") if "{}" in it.pattern else it.pattern
            short = short.removesuffix(".img")
            out.setdefault(short, it)
    return out


_SHORT = _short_names()


def image_type(name: str | ImageType) -> ImageType:
    """Resolve ``"core"``, ``"CORE"`` or an ImageType; raises KeyError for an unknown name."""
    if isinstance(name, ImageType):
        return name
    try:
        return _SHORT[name]
    except KeyError:
        raise KeyError(f"unknown image name {name!r}") from None


class ImageDir:
    """One image directory. Cheap to create; holds only the path and the pages-id counter.

    ``next_pages_id()`` is the per-dump counter that names pages-N.img (first value 1; task and shmem
    pagemaps share it). Create one ImageDir per dump.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = False) -> None:
        self.path = os.fspath(path)
        if create:
            os.makedirs(self.path, exist_ok=True)
        self._pages_id = 0

    def __repr__(self) -> str:
        return f"ImageDir({self.path!r})"

    # -- names ------------------------------------------------------------------------------------------

    def path_for(self, name: str | ImageType, ident: int | str | None = None) -> str:
        """Full path of image ``name`` with id ``ident`` (``path_for("pages", 1)`` → ``…/pages-1.img``)."""
        return os.path.join(self.path, magic.filename_for(image_type(name).name, ident))

    def exists(self, name: str | ImageType, ident: int | str | None = None) -> bool:
        return os.path.exists(self.path_for(name, ident))

    def list(self) -> list[tuple[str, ImageType, str | None]]:
        """``(file name, image type, id)`` for every file in the directory that is a known image, sorted."""
        out = []
        for fname in sorted(os.listdir(self.path)):
            found = magic.type_for_filename(fname)
            if found is not None and os.path.isfile(os.path.join(self.path, fname)):
                out.append((fname, found[0], found[1]))
        return out

    # -- reading ----------------------------------------------------------------------------------------

    def read(self, name: str | ImageType, ident: int | str | None = None) -> framing.Image:
        """The decoded image (entries with extras and offsets). Raises ImageFormatError, also if missing."""
        it = image_type(name)
        return framing.read_image(self.path_for(it, ident), it)

    def read_all(self, name: str | ImageType, ident: int | str | None = None) -> list[Any]:
        """Every message of the image, in file order (a pagemap's head comes first)."""
        return self.read(name, ident).messages

    def read_one(
        self, name: str | ImageType, ident: int | str | None = None, *, missing_ok: bool = False
    ) -> Any | None:
        """The single message of a one-entry image (inventory, core, mm, fs, ids, ...).

        Raises ImageFormatError if the file has no entry or more than one; with ``missing_ok`` a missing
        file gives None.
        """
        path = self.path_for(name, ident)
        if missing_ok and not os.path.exists(path):
            return None
        img = self.read(name, ident)
        if len(img.entries) != 1:
            off = img.entries[1].offset if img.entries else 0
            raise ImageFormatError(path, off, f"expected exactly one entry, found {len(img.entries)}")
        return img.entries[0].msg

    def read_pagemap(self, ident: int | str, *, shmem: bool = False) -> tuple[Any, list[Any]]:
        """``(pagemap_head, [pagemap_entry, ...])`` of pagemap-<ident>.img (or pagemap-shmem-<ident>.img)."""
        name = "pagemap-shmem" if shmem else "pagemap"
        msgs = self.read_all(name, ident)
        if not msgs:
            raise ImageFormatError(self.path_for(name, ident), 0, "pagemap without a head")
        return msgs[0], msgs[1:]

    # -- writing ----------------------------------------------------------------------------------------

    def write(self, name: str | ImageType, entries: Iterable[Any], ident: int | str | None = None) -> str:
        """Write the image (messages or ``(message, extra)`` pairs) and return its path.

        The whole file is encoded first and then replaces any old file by rename, so readers never see a
        half-written image.
        """
        it = image_type(name)
        path = self.path_for(it, ident)
        data = framing.encode(it, entries)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return path

    def write_one(self, name: str | ImageType, msg: Any, ident: int | str | None = None) -> str:
        return self.write(name, [msg], ident)

    # -- pages ------------------------------------------------------------------------------------------

    def next_pages_id(self) -> int:
        """Allocate the next pages-N.img id (1, 2, ...), one per pagemap written."""
        self._pages_id += 1
        return self._pages_id

    def open_pages_writer(self, pages_id: int) -> BinaryIO:
        """Open pages-<pages_id>.img for writing (truncated). The caller writes pages in pagemap order."""
        return open(self.path_for("PAGES", pages_id), "wb")

    def map_pages(self, pages_id: int) -> mmap.mmap | bytes:
        """pages-<pages_id>.img mapped read-only (``b""`` when empty: a zero-length file cannot be mapped).

        Slicing the result copies; use ``memoryview(m)[a:b]`` to avoid that. Close it when done.
        """
        path = self.path_for("PAGES", pages_id)
        try:
            with open(path, "rb") as f:
                if os.fstat(f.fileno()).st_size == 0:
                    return b""
                return mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        except OSError as err:
            raise ImageFormatError(path, 0, f"cannot map pages: {err.strerror or err}") from None
