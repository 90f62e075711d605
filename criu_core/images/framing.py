"""Framed image files: header magic, ``u32 LE size + protobuf`` entries, and the raw extras after entries.

The contract (reference/criu-images-and-rpc.md §1):

* a header of two u32 (``IMG_COMMON`` or ``IMG_SERVICE``, then the image magic), only the magic for
  inventory.img, nothing for raw images;
* then entries until end of file: a u32 little-endian size and that many bytes of a proto2 message. A size of 0
  is a valid empty message; a partial size word is an error;
* some images carry raw bytes after each entry (pipes-data, fifo-data, sk-queues, tcp-stream, ghost-file,
  ipcns-shm/sem/msg, bpfmap-data); pagemap files start with a ``pagemap_head``.

Images are untrusted input: every length is checked against the bytes that remain before anything is sliced
or allocated, required fields must be present, and every failure raises
:class:`~criu_core.errors.ImageFormatError` naming the file and the offset. A whole image is read into memory;
that is bounded by the file's size, and only raw pages files (never read here) are large.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from typing import Any

from criu_core.errors import ImageFormatError
from criu_core.images import magic as _magic
from criu_core.images.magic import ImageType
from criu_core.images.messages import message_class
from criu_core.records import dataclass, field

__all__ = [
    "Entry",
    "Image",
    "decode",
    "detect",
    "encode",
    "read_image",
    "resolve_type",
    "write_image",
]

_U32 = struct.Struct("<I")


@dataclass
class Entry:
    """One framed entry: the message (raw bytes for images without a known message) and its extra.

    ``extra`` depends on the image: ``bytes`` for pipes-data/fifo-data/sk-queues/bpfmap-data/ipcns-shm/ghost
    content, ``{"inq": bytes, "outq": bytes}`` for tcp-stream, ``bytes`` of nsems u16 values for ipcns-sem,
    a list of ``(ipc_msg, bytes)`` for ipcns-msg; ``None`` otherwise. ``offset`` is where the size word was.
    """

    msg: Any
    extra: Any = None
    offset: int = 0


@dataclass
class Image:
    """A decoded image file. For pagemaps, ``entries[0].msg`` is the ``pagemap_head``."""

    type: ImageType
    entries: list[Entry] = field(default_factory=list)
    path: str = "<bytes>"

    @property
    def messages(self) -> list[Any]:
        return [e.msg for e in self.entries]


def _round_up(n: int, to: int) -> int:
    return (n + to - 1) // to * to


class _Cursor:
    """Bounds-checked reader over the bytes of one file; every failure names the file and an offset."""

    def __init__(self, data: bytes, path: str, pos: int = 0) -> None:
        self.data = data
        self.path = path
        self.pos = pos

    def fail(self, reason: str, offset: int | None = None) -> ImageFormatError:
        return ImageFormatError(self.path, self.pos if offset is None else offset, reason)

    @property
    def left(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or n > self.left:
            raise self.fail(f"{what} needs {n} bytes but only {self.left} remain")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u32(self, what: str) -> int:
        if self.left < 4:
            raise self.fail(f"partial {what}: {self.left} bytes where 4 were expected")
        (v,) = _U32.unpack_from(self.data, self.pos)
        self.pos += 4
        return v

    def message(self, qualname: str | None, what: str = "entry") -> tuple[Any, int]:
        """Read one ``size + payload`` frame; returns (message, offset of the size word)."""
        start = self.pos
        size = self.u32(f"{what} size word")
        if size > self.left:
            raise self.fail(f"{what} size {size} is larger than the {self.left} bytes left in the file", start)
        payload = self.take(size, what)
        if qualname is None:
            return payload, start
        cls = message_class(qualname)
        msg = cls()
        try:
            msg.ParseFromString(payload)
        except Exception as err:  # noqa: BLE001 - upb raises DecodeError, but corrupt input must never escape as a bug
            raise self.fail(f"cannot parse {cls.DESCRIPTOR.name}: {err}", start + 4) from None
        if not msg.IsInitialized():
            missing = ", ".join(msg.FindInitializationErrors())
            raise self.fail(f"{cls.DESCRIPTOR.name} lacks required fields: {missing}", start + 4)
        return msg, start


# ---------------------------------------------------------------------------------------------------------
# header


def resolve_type(image: str | ImageType | None) -> ImageType | None:
    """Accept an ImageType, a type name (``"CORE"``) or a file name (``"core-1.img"``)."""
    if image is None or isinstance(image, ImageType):
        return image
    if image in _magic.BY_NAME:
        return _magic.BY_NAME[image]
    found = _magic.type_for_filename(os.path.basename(image))
    if found is None:
        raise KeyError(f"unknown image {image!r}")
    return found[0]


def detect(data: bytes, path: str = "<bytes>", expect: ImageType | None = None) -> tuple[ImageType, int]:
    """Check the header and return (image type, offset of the first entry).

    Without ``expect`` the type comes from the magic alone, as crit does. With it, the header must be the
    one that type is written with (a pagemap-shmem file is accepted for PAGEMAP and so on: same value).
    Raw images have no header and cannot be detected.
    """
    cur = _Cursor(data, path)
    if expect is not None and expect.kind == "raw":
        return expect, 0
    if len(data) < 4:
        raise cur.fail(f"file too short for an image magic ({len(data)} bytes)")
    first = cur.u32("magic")
    if first in (_magic.IMG_COMMON_MAGIC, _magic.IMG_SERVICE_MAGIC):
        head_kind = "common" if first == _magic.IMG_COMMON_MAGIC else "service"
        value = cur.u32("image magic")
    else:
        head_kind = "inventory"
        value = first
    found = _magic.by_magic(value)
    if expect is not None:
        if value != expect.magic:
            what = f" ({found.name})" if found else ""
            raise cur.fail(f"magic 0x{value:08x}{what} does not match {expect.name} (0x{expect.magic:08x})", 0)
        if head_kind != expect.kind:
            raise cur.fail(f"head magic 0x{first:08x} is not the {expect.kind} head {expect.name} needs", 0)
        return expect, cur.pos
    if found is None:
        hint = " (raw data such as pages-*.img has no magic)" if head_kind == "inventory" else ""
        raise cur.fail(f"unknown magic 0x{value:08x}{hint}", 0)
    if found.kind != head_kind:
        raise cur.fail(f"{found.name} image with a {head_kind} head magic 0x{first:08x}", 0)
    return found, cur.pos


# ---------------------------------------------------------------------------------------------------------
# extras: (reader, writer) per handler name. Readers get the cursor after the entry and return the extra.


def _rd_bytes(n_of):
    def read(cur: _Cursor, msg: Any) -> bytes:
        return cur.take(n_of(msg), "raw payload")

    return read


def _wr_bytes(n_of, what):
    def write(msg: Any, extra: Any) -> bytes:
        data = bytes(extra or b"")
        if len(data) != n_of(msg):
            raise ValueError(f"{what}: entry says {n_of(msg)} bytes, extra has {len(data)}")
        return data

    return write


def _rd_tcp(cur: _Cursor, msg: Any) -> dict[str, bytes]:
    inq = cur.take(msg.inq_len, "tcp receive queue")
    outq = cur.take(msg.outq_len, "tcp send queue")
    return {"inq": inq, "outq": outq}


def _wr_tcp(msg: Any, extra: Any) -> bytes:
    extra = extra or {}
    inq, outq = bytes(extra.get("inq", b"")), bytes(extra.get("outq", b""))
    if len(inq) != msg.inq_len or len(outq) != msg.outq_len:
        raise ValueError("tcp-stream: inq/outq lengths differ from inq_len/outq_len")
    return inq + outq


def _rd_shm(cur: _Cursor, msg: Any) -> bytes | None:
    if msg.in_pagemaps:  # contents went to pagemap-shmem + pages instead
        return None
    data = cur.take(msg.size, "shm segment")
    cur.take(_round_up(msg.size, 4) - msg.size, "shm padding")
    return data


def _wr_shm(msg: Any, extra: Any) -> bytes:
    if msg.in_pagemaps:
        return b""
    data = bytes(extra or b"")
    if len(data) != msg.size:
        raise ValueError(f"ipcns-shm: size is {msg.size}, extra has {len(data)} bytes")
    return data + b"\0" * (_round_up(msg.size, 4) - msg.size)


def _rd_sem(cur: _Cursor, msg: Any) -> bytes:
    size = 2 * msg.nsems
    data = cur.take(size, "semaphore values")
    cur.take(_round_up(size, 8) - size, "semaphore padding")
    return data


def _wr_sem(msg: Any, extra: Any) -> bytes:
    data = bytes(extra or b"")
    if len(data) != 2 * msg.nsems:
        raise ValueError(f"ipcns-sem: nsems is {msg.nsems}, extra has {len(data)} bytes")
    return data + b"\0" * (_round_up(len(data), 8) - len(data))


def _rd_msgq(cur: _Cursor, msg: Any) -> list[tuple[Any, bytes]]:
    out = []
    for _ in range(msg.qnum):
        m, _off = cur.message("ipc_msg.ipc_msg", "ipc message")
        data = cur.take(m.msize, "ipc message text")
        cur.take(_round_up(m.msize, 8) - m.msize, "ipc message padding")
        out.append((m, data))
    return out


def _wr_msgq(msg: Any, extra: Any) -> bytes:
    extra = list(extra or [])
    if len(extra) != msg.qnum:
        raise ValueError(f"ipcns-msg: qnum is {msg.qnum}, extra has {len(extra)} messages")
    parts = []
    for m, data in extra:
        if len(data) != m.msize:
            raise ValueError(f"ipcns-msg: msize is {m.msize}, text has {len(data)} bytes")
        payload = m.SerializeToString()
        parts += [_U32.pack(len(payload)), payload, bytes(data), b"\0" * (_round_up(m.msize, 8) - m.msize)]
    return b"".join(parts)


_EXTRAS = {
    "pipe_data": (_rd_bytes(lambda m: m.bytes), _wr_bytes(lambda m: m.bytes, "pipe data")),
    "sk_queues": (_rd_bytes(lambda m: m.length), _wr_bytes(lambda m: m.length, "sk-queues")),
    "bpfmap_data": (
        _rd_bytes(lambda m: m.keys_bytes + m.values_bytes),
        _wr_bytes(lambda m: m.keys_bytes + m.values_bytes, "bpfmap-data"),
    ),
    "tcp_stream": (_rd_tcp, _wr_tcp),
    "ipc_shm": (_rd_shm, _wr_shm),
    "ipc_sem": (_rd_sem, _wr_sem),
    "ipc_msg": (_rd_msgq, _wr_msgq),
}


# ---------------------------------------------------------------------------------------------------------
# decode / encode


def decode(data: bytes, path: str = "<bytes>", expect: str | ImageType | None = None) -> Image:
    """Decode a whole image file's bytes. Raises ImageFormatError on any inconsistency."""
    itype, pos = detect(data, path, resolve_type(expect))
    if itype.kind == "raw":
        raise ImageFormatError(path, 0, f"{itype.name} is a raw image without entries")
    cur = _Cursor(data, path, pos)
    img = Image(itype, [], path)
    handler = itype.extra
    if handler == "pagemap":
        if cur.left:
            head, off = cur.message("pagemap.pagemap_head", "pagemap head")
            img.entries.append(Entry(head, None, off))
        while cur.left:
            msg, off = cur.message(itype.message)
            img.entries.append(Entry(msg, None, off))
        return img
    if handler == "ghost_file":
        gf, off = cur.message(itype.message, "ghost file entry")
        if not gf.chunks:  # the rest of the file is the content
            img.entries.append(Entry(gf, cur.take(cur.left, "ghost content"), off))
            return img
        img.entries.append(Entry(gf, None, off))
        while cur.left:
            chunk, off = cur.message("ghost_file.ghost_chunk_entry", "ghost chunk")
            img.entries.append(Entry(chunk, cur.take(chunk.len, "ghost chunk data"), off))
        return img
    reader = _EXTRAS[handler][0] if handler else None
    while cur.left:
        msg, off = cur.message(itype.message)
        extra = reader(cur, msg) if reader else None
        img.entries.append(Entry(msg, extra, off))
    return img


def _as_entry(item: Any) -> Entry:
    if isinstance(item, Entry):
        return item
    if isinstance(item, tuple):
        return Entry(*item)
    return Entry(item)


def _frame(msg: Any) -> bytes:
    payload = msg if isinstance(msg, (bytes, bytearray)) else msg.SerializeToString()
    return _U32.pack(len(payload)) + bytes(payload)


def encode(image: str | ImageType, entries: Iterable[Any]) -> bytes:
    """Encode entries (messages, ``(msg, extra)`` pairs or :class:`Entry`) into a whole image file.

    Raises ValueError when an extra disagrees with its entry and protobuf's EncodeError when a required field
    is missing: both are bugs in the caller, not bad input.
    """
    itype = resolve_type(image)
    if itype.kind == "raw":
        raise ValueError(f"{itype.name} is a raw image: write its bytes directly")
    parts = [itype.head]
    handler = itype.extra
    writer = _EXTRAS[handler][1] if handler in _EXTRAS else None
    for i, ent in enumerate(map(_as_entry, entries)):
        parts.append(_frame(ent.msg))
        if writer is not None:
            parts.append(writer(ent.msg, ent.extra))
        elif handler == "ghost_file" and ent.extra is not None:
            # without chunks the content follows the only entry; with chunks each chunk carries its data
            if i == 0 and ent.msg.chunks:
                raise ValueError("ghost-file: a chunked file entry carries no data itself")
            if i > 0 and len(ent.extra) != ent.msg.len:
                raise ValueError(f"ghost-file: chunk len is {ent.msg.len}, data has {len(ent.extra)} bytes")
            parts.append(bytes(ent.extra))
    return b"".join(parts)


def read_image(path: str | os.PathLike[str], expect: str | ImageType | None = None) -> Image:
    """Read and decode one image file. ``expect`` defaults to the type the file name implies, if any."""
    path = os.fspath(path)
    if expect is None:
        found = _magic.type_for_filename(os.path.basename(path))
        expect = found[0] if found else None
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise ImageFormatError(path, 0, f"cannot read: {err.strerror or err}") from None
    return decode(data, path, expect)


def write_image(path: str | os.PathLike[str], image: str | ImageType, entries: Iterable[Any]) -> None:
    """Encode and write one image file (replacing it). Data is built in memory first, so a failed encode
    leaves no half-written file behind."""
    data = encode(image, entries)
    with open(os.fspath(path), "wb") as f:
        f.write(data)
