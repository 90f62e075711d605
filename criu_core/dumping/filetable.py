"""files.img of one dump and what hangs off its entries: ghost files and their remaps, memfd inodes, shared
memory objects (pagemap-shmem), pipe data, unix socket peers and queued packets.

:mod:`criu_core.dump` asks the plugins to claim each descriptor and hands the claim to :meth:`FileTable.add_claimed`;
everything here is bookkeeping and image writing, with no plugin calls. Ids come from the dump's
:class:`~criu_core.dumping.ids.DumpIds`, so a file seen through an fd and through a mapping gets one entry.
"""

from __future__ import annotations

import fcntl
import os
import stat
from typing import Any

from criu_core.dumping.files import fown, reg_entry
from criu_core.dumping.ids import DumpIds
from criu_core.dumping.messages import kdev, msg
from criu_core.dumping.pages import PAGE_SIZE, PE_PRESENT
from criu_core.errors import CriuError, UnsupportedResource
from criu_core.images.imagedir import ImageDir
from criu_core.images.messages import pb_module
from criu_core.images.pagemap import make_entry, make_head
from criu_core.resources import FdInfo
from criu_core.sys.proc import KCMP_FILE, kcmp

__all__ = ["FileTable"]

F_GET_SEALS = 1034
_DELETED = " (deleted)"


class FileTable:
    """The files of one dump, in id order, with their side images; :meth:`write` writes them all at the end."""

    def __init__(self, images: ImageDir, ids: DumpIds, *, ghost_limit: int = 1 << 20) -> None:
        self.images = images
        self.ids = ids
        self.ghost_limit = ghost_limit  # --ghost-limit, 1 MiB by default as in CRIU
        self.files: list[Any] = []  # file_entry messages, in id order
        self.fd_ids: list[tuple[FdInfo, int]] = []
        self.fd_types: dict[int, int] = {}
        self.pipe_data: dict[int, tuple[int, bytes, int]] = {}
        self.unix_sockets: dict[int, tuple[int, int, FdInfo]] = {}
        self.sk_queues: list[tuple[Any, bytes]] = []
        self.remaps: list[Any] = []
        self.next_ghost_id = 0
        self.ghosts: dict[tuple[int, int], int] = {}
        self.shmem: dict[int, list[Any]] = {}  # shmid -> [path to the object, size]
        self.memfd_inodes: dict[tuple[int, int], tuple[int, Any]] = {}

    # -- regular files and ghosts ---------------------------------------------------------------------------

    def path_file_id(self, key_path: str, name: str, *, flags: int = 0) -> int:
        """Id of the REG entry for the file behind ``key_path`` (a /proc link), created on first use. A file
        that has lost its name (``name`` ends with " (deleted)") is written as a ghost."""
        s = os.stat(key_path)
        fid, new = self.ids.file_id(("path", s.st_dev, s.st_ino, flags))
        if new:
            deleted = name.endswith(_DELETED) or s.st_nlink == 0
            name = name.removesuffix(_DELETED)
            self.files.append(reg_entry(fid, name, s, flags=flags))
            if deleted:
                fd = os.open(key_path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    self.add_ghost(fid, name, fd)
                finally:
                    os.close(fd)
        return fid

    def add_ghost(self, fid: int, name: str, fd: int) -> None:
        """Save the content of unlinked file ``fd`` as ghost-file-N.img and map file ``fid`` to it in
        remap-fpath.img (CRIU's GHOST remap). Refused above ``--ghost-limit`` (1 MiB by default, as CRIU)."""
        s = os.fstat(fd)
        # One ghost per file entry, even when two entries (an fd and a mapping) name the same inode: CRIU shares
        # one ghost between them, but restorers that create a ghost per remap entry then collide; duplicating the
        # content is valid for both.
        limit = self.ghost_limit
        if not (stat.S_ISREG(s.st_mode) or stat.S_ISDIR(s.st_mode)):
            raise UnsupportedResource(name, msg=f"unlinked file {name} of mode {s.st_mode:o} is not supported")
        if s.st_size > limit:
            raise UnsupportedResource(
                name,
                msg=f"unlinked file {name} is {s.st_size} bytes, more than the ghost limit {limit}",
                hint="raise --ghost-limit",
            )
        data = b""
        if stat.S_ISREG(s.st_mode):
            chunks = []
            off = 0
            while off < s.st_size:
                chunk = os.pread(fd, min(1 << 20, s.st_size - off), off)
                if not chunk:
                    break
                chunks.append(chunk)
                off += len(chunk)
            data = b"".join(chunks)
        self.next_ghost_id += 1
        gid = self.next_ghost_id
        self.ghosts[(s.st_dev, s.st_ino)] = gid
        ghost = msg(
            "ghost_file.ghost_file_entry",
            uid=s.st_uid,
            gid=s.st_gid,
            mode=s.st_mode,
            dev=kdev(s.st_dev),
            ino=s.st_ino,
            atim={"tv_sec": int(s.st_atime), "tv_usec": s.st_atime_ns // 1000 % 10**6},
            mtim={"tv_sec": int(s.st_mtime), "tv_usec": s.st_mtime_ns // 1000 % 10**6},
            size=s.st_size,
        )
        self.images.write("ghost-file", [(ghost, data)], gid)
        self.remaps.append(msg("remap_file_path.remap_file_path_entry", orig_id=fid, remap_id=gid, remap_type=1))

    # -- shared memory objects (shared anonymous memory, memfd) ---------------------------------------------

    def shmem_object(self, path: str, shmid: int, size: int) -> int:
        """Register the shmem object behind ``path`` (a map_files link or an fd link) as ``shmid``; its content
        is written once, at the end, from the populated ranges of the object itself."""
        obj = self.shmem.get(shmid)
        if obj is None:
            self.shmem[shmid] = [path, size]
        else:
            obj[1] = max(obj[1], size)
        return shmid

    def memfd_inode(self, path: str, name: str) -> int:
        """inode_id of the memfd behind ``path`` (memfd.img entry created on first use)."""
        s = os.stat(path)
        key = (s.st_dev, s.st_ino)
        known = self.memfd_inodes.get(key)
        if known is not None:
            return known[0]
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            try:
                seals = fcntl.fcntl(fd, F_GET_SEALS)
            except OSError:
                seals = 0
        finally:
            os.close(fd)
        inode_id = len(self.memfd_inodes) + 1
        label = name.removesuffix(_DELETED).removeprefix("/memfd:")
        inode = msg(
            "memfd.memfd_inode_entry",
            name=label,
            uid=s.st_uid,
            gid=s.st_gid,
            size=s.st_size,
            shmid=s.st_ino,
            seals=seals,
            inode_id=inode_id,
            mode=s.st_mode,
        )
        self.memfd_inodes[key] = (inode_id, inode)
        self.shmem_object(path, s.st_ino, s.st_size)
        return inode_id

    def memfd_map_id(self, path: str, name: str, flags: int) -> int:
        """files.img id of the MEMFD entry a mapping of a memfd names (one per inode and flags)."""
        s = os.stat(path)
        fid, new = self.ids.file_id(("memfd-map", s.st_dev, s.st_ino, flags))
        if new:
            inode_id = self.memfd_inode(path, name)
            memfd = {"id": fid, "flags": flags, "pos": 0, "fown": fown(), "inode_id": inode_id}
            self.files.append(msg("fdinfo.file_entry", type=pb_module("fdinfo").MEMFD, id=fid, memfd=memfd))
        return fid

    def write_shmem(self) -> None:
        """pagemap-shmem-SHMID.img + pages for every shared memory object: the populated ranges found with
        SEEK_DATA/SEEK_HOLE on the object itself, so pages no process has mapped in are not missed."""
        for shmid, (path, size) in sorted(self.shmem.items()):
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                runs: list[tuple[int, int]] = []
                off = 0
                while off < size:
                    try:
                        start = os.lseek(fd, off, os.SEEK_DATA)
                    except OSError:
                        break  # ENXIO: no data after off
                    end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
                    start -= start % PAGE_SIZE
                    end = (end + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE
                    if end > start:
                        runs.append((start, end))
                    off = end
                pages_id = self.images.next_pages_id()
                with self.images.open_pages_writer(pages_id) as out:
                    for start, end in runs:
                        pos = start
                        while pos < end:
                            chunk = os.pread(fd, min(4 << 20, end - pos), pos)
                            if not chunk:
                                break
                            out.write(chunk)
                            pos += len(chunk)
                        if pos < end:
                            out.write(b"\0" * (end - pos))  # past EOF inside the last page
                entries = [make_entry(s, (e - s) // PAGE_SIZE, PE_PRESENT) for s, e in runs]
                self.images.write("pagemap-shmem", [make_head(pages_id), *entries], shmid)
            finally:
                os.close(fd)

    # -- descriptors ----------------------------------------------------------------------------------------

    def shared_with(self, fd: FdInfo) -> tuple[int, int] | None:
        """(file id, fd type) of an entry already made for the same open file description (kcmp KCMP_FILE)."""
        for other, oid in self.fd_ids:
            if other.dev == fd.dev and other.ino == fd.ino:
                try:
                    if kcmp(fd.pid, other.pid, KCMP_FILE, fd.fd, other.fd) == 0:
                        return oid, self.fd_types[oid]
                except CriuError:
                    continue
        return None

    def add_claimed(self, fd: FdInfo, fid: int, claim: Any) -> None:
        """Record the entry a plugin's claim made for ``fd`` as file ``fid``, with what the claim's data asks
        for: a memfd inode, a ghost, pipe data, a unix socket's peer and queue."""
        entry = claim.entry
        entry.id = fid
        for desc, value in entry.ListFields():
            if (
                desc.message_type is not None
                and desc.label != desc.LABEL_REPEATED
                and "id" in desc.message_type.fields_by_name
            ):
                value.id = fid
        self.files.append(entry)
        self.fd_types[fid] = claim.fd_type
        self.fd_ids.append((fd, fid))
        if isinstance(claim.data, dict) and claim.data.get("memfd"):
            entry.memfd.inode_id = self.memfd_inode(f"/proc/{fd.pid}/fd/{fd.fd}", fd.link)
        if isinstance(claim.data, dict) and claim.data.get("ghost"):
            self.add_ghost(fid, entry.reg.name, fd.local_fd)
        if claim.fd_type == pb_module("fdinfo").PIPE and claim.data:
            self.pipe_data.setdefault(claim.data[0], claim.data)
        if claim.fd_type == pb_module("fdinfo").UNIXSK and isinstance(claim.data, dict):
            ns_key = ("net", claim.data.get("netns_ino", 0))
            if ns_key in self.ids.ns:
                entry.usk.ns_id = self.ids.ns[ns_key]
            self.unix_sockets[entry.usk.ino] = (fid, claim.data.get("peer", 0), fd)
            for packet in claim.data.get("queue", ()):
                self.sk_queues.append((msg("sk_packet.sk_packet_entry", id_for=fid, length=len(packet)), packet))

    def check_unix_peers(self) -> None:
        """Every connected unix socket's peer must be dumped too (no --ext-unix-sk support yet)."""
        for ino, (_fid, peer, fd) in self.unix_sockets.items():
            if peer and peer not in self.unix_sockets:
                raise UnsupportedResource(
                    fd,
                    msg=f"unix socket {ino} (fd {fd.fd} of task {fd.pid}) is connected "
                    f"to socket {peer} outside the dumped tree (external unix sockets are not "
                    "supported yet)",
                )

    # -- the images -----------------------------------------------------------------------------------------

    def write(self) -> None:
        """files.img and its side images: pipes-data, memfd, pagemap-shmem, remap-fpath, sk-queues."""
        images = self.images
        images.write("files", self.files)
        if self.pipe_data:
            images.write(
                "pipes-data",
                [
                    (msg("pipe_data.pipe_data_entry", pipe_id=pid_, bytes=len(data), size=size), data)
                    for pid_, data, size in self.pipe_data.values()
                ],
            )
        self.check_unix_peers()
        if self.memfd_inodes:
            images.write("memfd", [inode for _, inode in self.memfd_inodes.values()])
        self.write_shmem()
        if self.remaps:
            images.write("remap-fpath", self.remaps)
        if self.sk_queues:
            images.write("sk-queues", self.sk_queues)
