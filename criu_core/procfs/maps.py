"""Parsers for ``/proc/PID/maps`` and ``/proc/PID/smaps`` (pure: text in, records out)."""

from __future__ import annotations

import re

from criu_core.records import dataclass, field

__all__ = ["MapEntry", "parse_maps", "parse_maps_line", "parse_smaps"]

_HEADER = re.compile(r"^[0-9a-f]+-[0-9a-f]+ ")
_DELETED = " (deleted)"


@dataclass(frozen=True)
class MapEntry:
    """One VMA as ``maps``/``smaps`` show it.

    ``name`` is the path or pseudo-name (``[heap]``, ``[vdso]``, ``[anon:foo]``) without the ``" (deleted)"``
    suffix, which sets ``deleted`` instead. ``stats`` holds the smaps counters in kB (``Rss``, ``Pss``,
    ``Anonymous``, ``Swap``, ...); ``vmflags`` the two-letter VmFlags (``rd wr mr mw me ac nh ...``).
    """

    start: int
    end: int
    perms: str
    offset: int
    dev: str
    inode: int
    name: str = ""
    deleted: bool = False
    stats: dict[str, int] = field(default_factory=dict, compare=False)
    vmflags: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def readable(self) -> bool:
        return self.perms[0] == "r"

    @property
    def writable(self) -> bool:
        return self.perms[1] == "w"

    @property
    def executable(self) -> bool:
        return self.perms[2] == "x"

    @property
    def shared(self) -> bool:
        return self.perms[3] == "s"

    @property
    def dev_major_minor(self) -> tuple[int, int]:
        major, minor = self.dev.split(":")
        return int(major, 16), int(minor, 16)

    @property
    def is_file(self) -> bool:
        """Backed by an inode (a file, memfd, SysV shm or shared anonymous memory), not private anonymous."""
        return self.inode != 0


def parse_maps_line(line: str) -> MapEntry:
    """Parse one maps/smaps header line."""
    parts = line.rstrip("\n").split(None, 5)
    if len(parts) < 5:
        raise ValueError(f"bad maps line: {line!r}")
    span, perms, offset, dev, inode = parts[:5]
    # The name column is padded with spaces; a file name with leading spaces cannot be told apart (kernel limit).
    name = parts[5] if len(parts) == 6 else ""
    deleted = name.endswith(_DELETED) and inode != "0"
    if deleted:
        name = name[: -len(_DELETED)]
    # seq_file_path() escapes only '\n' (as "\012") in paths.
    name = name.replace("\\012", "\n")
    start, end = span.split("-")
    return MapEntry(int(start, 16), int(end, 16), perms, int(offset, 16), dev, int(inode), name, deleted)


def parse_maps(text: str) -> list[MapEntry]:
    """Parse the whole of ``/proc/PID/maps``."""
    return [parse_maps_line(line) for line in text.splitlines() if line]


def parse_smaps(text: str) -> list[MapEntry]:
    """Parse the whole of ``/proc/PID/smaps``: header lines with their counters and VmFlags."""
    out: list[MapEntry] = []
    cur: MapEntry | None = None
    stats: dict[str, int] = {}
    flags: tuple[str, ...] = ()

    def flush() -> None:
        if cur is not None:
            out.append(
                MapEntry(
                    cur.start, cur.end, cur.perms, cur.offset, cur.dev, cur.inode, cur.name, cur.deleted, stats, flags
                )
            )

    for line in text.splitlines():
        if not line:
            continue
        if _HEADER.match(line):
            flush()
            cur, stats, flags = parse_maps_line(line), {}, ()
            continue
        key, _, value = line.partition(":")
        if key == "VmFlags":
            flags = tuple(value.split())
        elif key == "THPeligible" or key == "ProtectionKey":
            stats[key] = int(value.split()[0])
        else:
            words = value.split()
            if words and words[0].isdigit():
                stats[key] = int(words[0])
    flush()
    return out
