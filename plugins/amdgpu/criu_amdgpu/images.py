"""The plugin's image files, in CRIU's amdgpu format (reference §3).

None of them is CRIU-framed: an 8-byte native ``size_t`` holds the payload length, then comes the payload (a raw
protobuf message, or raw BO bytes for the pages files). Names carry CRIU's file id (``%d``) and the *user* gpu_id
(``%04x``): ``amdgpu-kfd-<id>.img``, ``amdgpu-pages-<id>-<gpu_id>.img``, ``amdgpu-renderD-<id>.img``.

Images are untrusted: every read checks the header against the file size, the message's required fields and
the values the caller relies on, and fails with an :class:`~criu_core.errors.ImageFormatError` naming the file and
the offset.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from criu_core.errors import ImageFormatError

if TYPE_CHECKING:  # protobuf itself is imported only when an image is read
    from google.protobuf.message import Message

from criu_amdgpu.topology import DEVICE_PROPERTIES, IoLink, Topology, TopoNode

__all__ = [
    "HEADER",
    "MAX_MESSAGE_SIZE",
    "PagesFile",
    "entries_to_topology",
    "kfd_image_name",
    "pages_image_name",
    "read_message",
    "render_image_name",
    "topology_to_entries",
    "write_message",
]

HEADER = struct.Struct("=Q")  # size_t, native endian (x86_64: little)
MAX_MESSAGE_SIZE = 256 << 20  # a criu_kfd of 8 GPUs and 100k BOs is a few MiB; refuse absurd headers before reading

M = TypeVar("M", bound="Message")


def kfd_image_name(file_id: int) -> str:
    return f"amdgpu-kfd-{file_id}.img"


def pages_image_name(file_id: int, gpu_id: int) -> str:
    return f"amdgpu-pages-{file_id}-{gpu_id:04x}.img"


def render_image_name(file_id: int) -> str:
    return f"amdgpu-renderD-{file_id}.img"


def write_message(images_dir: Path, name: str, msg: Message) -> Path:
    """Write ``msg`` with the 8-byte length header (mode 0600, as CRIU's plugin)."""
    path = Path(images_dir) / name
    payload = msg.SerializeToString()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(HEADER.pack(len(payload)) + payload)
    return path


def read_message(images_dir: Path, name: str, cls: type[M]) -> M:
    """Read and validate one framed message."""
    path = Path(images_dir) / name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise ImageFormatError(str(path), 0, f"cannot open: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(HEADER.size)
        if len(head) != HEADER.size:
            raise ImageFormatError(str(path), 0, f"truncated header ({len(head)} of {HEADER.size} bytes)")
        (length,) = HEADER.unpack(head)
        if length > MAX_MESSAGE_SIZE or length != size - HEADER.size:
            raise ImageFormatError(str(path), 0, f"header says {length} bytes, the file holds {size - HEADER.size}")
        payload = f.read(length)
    msg = cls()
    try:
        msg.ParseFromString(payload)
    except _decode_error() as exc:
        raise ImageFormatError(str(path), HEADER.size, f"not a valid {cls.DESCRIPTOR.name}: {exc}") from None
    if not msg.IsInitialized():
        missing = ", ".join(msg.FindInitializationErrors())
        raise ImageFormatError(str(path), HEADER.size, f"{cls.DESCRIPTOR.name} lacks required fields: {missing}")
    return msg


class PagesFile:
    """``amdgpu-pages-<id>-<gpu_id>.img``: header = summed size of that GPU's VRAM/GTT BOs, then their bytes.

    Offsets are 64-bit and per file (CRIU's parallel restore overflowed an ``int`` above 2 GiB and let offsets run
    on across GPUs). Each worker opens its own handle.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def create(self, total: int) -> int:
        """Create the file for writing ``total`` content bytes; returns a descriptor positioned after the header."""
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        os.write(fd, HEADER.pack(total))
        return fd

    def open_checked(self, expected: int) -> int:
        """Open for reading; the header and the file size must both equal ``expected`` content bytes."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            raise ImageFormatError(str(self.path), 0, f"cannot open: {exc.strerror}") from None
        try:
            head = os.pread(fd, HEADER.size, 0)
            if len(head) != HEADER.size:
                raise ImageFormatError(str(self.path), 0, "truncated header")
            (length,) = HEADER.unpack(head)
            size = os.fstat(fd).st_size - HEADER.size
            if length != expected or size != expected:
                raise ImageFormatError(str(self.path), 0, f"holds {size} bytes (header {length}), the BOs need "
                                                          f"{expected}")
        except BaseException:
            os.close(fd)
            raise
        return fd


# ---------------------------------------------------------------------------------------------- topology


def topology_to_entries(topo: Topology, actual_to_user: dict[int, int] | None = None) -> list[Any]:
    """One device entry per node (CPUs and GPUs), GPU ids translated to the task's user ids, valid links only."""
    actual_to_user = actual_to_user or {}
    out = []
    for node in topo.nodes:
        from criu_amdgpu import proto  # protobuf is loaded only when images are written

        e = proto.kfd_device_entry(node_id=node.node_id, gpu_id=actual_to_user.get(node.gpu_id, node.gpu_id))
        for name in DEVICE_PROPERTIES:
            setattr(e, name, node.prop(name) if node.is_gpu or name == "cpu_cores_count" else 0)
        e.vram_public = int(node.vram_public)
        e.vram_size = node.vram_size
        for link in node.valid_links():
            e.iolinks.add(type=link.type, node_to_id=link.node_to)
        out.append(e)
    return out


def entries_to_topology(entries, where: str = "amdgpu image") -> Topology:
    """The checkpointed topology; a CPU is a node with cpu_cores_count != 0 (APU GPU nodes are stored with 0)."""
    topo = Topology()
    for e in entries:
        is_cpu = e.cpu_cores_count != 0
        if not is_cpu and e.gpu_id == 0:
            raise ImageFormatError(where, 0, f"device entry of node {e.node_id} is neither a CPU nor a GPU")
        node = TopoNode(e.node_id, 0 if is_cpu else e.gpu_id,
                        {name: getattr(e, name) for name in DEVICE_PROPERTIES},
                        bool(e.vram_public), e.vram_size, [IoLink(link.type, link.node_to_id) for link in e.iolinks])
        topo.nodes.append(node)
    topo.nodes.sort(key=lambda n: n.node_id)
    topo.validate_links()
    return topo


def _decode_error() -> type[Exception]:
    from google.protobuf.message import DecodeError

    return DecodeError
