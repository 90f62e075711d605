"""A small tracefs client for uprobe events: find or mount tracefs, add, enable, disable and remove a probe,
read its hit count, and compute a probe's file offset from an ELF symbol.

Used by the plugin's tests and usable by anyone who needs a real uprobe::

    with UprobeEvent.create(path, symbol_file_offset(path, "fn"), group="mygrp", event="fn") as ev:
        ev.enable()
        ...
        print(ev.hits())
    # leaving the block disables the event, then deletes it (a delete of an enabled event fails with EBUSY)

Control files are written with ``os.open(O_WRONLY | O_APPEND)`` and one ``os.write``: Python's ``open(path, "a")``
seeks to the end first, which tracefs answers with EINVAL.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from criu_core.errors import CriuError, KernelFeatureMissing

__all__ = [
    "TRACEFS_DEFAULT",
    "Tracefs",
    "TracefsError",
    "UprobeEvent",
    "symbol_file_offset",
]

TRACEFS_DEFAULT = Path("/sys/kernel/tracing")
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class TracefsError(CriuError):
    """A write to a tracefs control file failed (names the file, the text written and the errno)."""

    def __init__(self, path: Path, text: str, err: int) -> None:
        super().__init__(
            f"writing {text.strip()!r} to {path} failed: {os.strerror(err)}", path=str(path), text=text, errno=err
        )


@dataclass
class Tracefs:
    """A tracefs mount. :meth:`find_or_mount` returns one; :meth:`close` unmounts it if this object mounted it."""

    root: Path
    mounted_here: bool = False

    @classmethod
    def find_or_mount(cls, where: Path = TRACEFS_DEFAULT) -> Tracefs:
        """The tracefs with ``uprobe_events`` in it: an existing mount, else a fresh ``mount -t tracefs`` at ``where``."""
        for candidate in _mounted_tracefs():
            if (candidate / "uprobe_events").exists():
                return cls(candidate)
        if (where / "uprobe_events").exists():
            return cls(where)
        where.mkdir(parents=True, exist_ok=True)
        res = subprocess.run(
            ["mount", "-t", "tracefs", "nodev", str(where)], check=False, capture_output=True, text=True
        )
        if res.returncode != 0 or not (where / "uprobe_events").exists():
            raise KernelFeatureMissing(
                "tracefs", f"cannot mount tracefs at {where}: {res.stderr.strip() or 'no uprobe_events'}"
            )
        return cls(where, mounted_here=True)

    def close(self) -> None:
        if self.mounted_here:
            subprocess.run(["umount", str(self.root)], check=False, capture_output=True)
            self.mounted_here = False

    def write(self, rel: str, text: str) -> None:
        """Append ``text`` to the control file ``rel`` (one write, O_APPEND; see the module docstring)."""
        path = self.root / rel
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, text.encode())
        except OSError as exc:
            raise TracefsError(path, text, exc.errno or 0) from exc
        finally:
            os.close(fd)

    def read(self, rel: str) -> str:
        return (self.root / rel).read_text()

    def uprobe_events(self) -> list[str]:
        return [line for line in self.read("uprobe_events").splitlines() if line.strip()]

    def profile(self) -> dict[str, int]:
        """``uprobe_profile`` as ``{event: hits}`` (its lines are ``PATH EVENT HITS``, without the group)."""
        out: dict[str, int] = {}
        for line in self.read("uprobe_profile").splitlines():
            parts = line.split()
            if len(parts) >= 3:
                out[parts[-2]] = int(parts[-1])
        return out


@dataclass
class UprobeEvent:
    """One ``p:GROUP/EVENT PATH:OFFSET`` uprobe event. Use as a context manager: leaving it removes the event."""

    tracefs: Tracefs
    group: str
    event: str
    path: str
    offset: int
    _own_tracefs: bool = field(default=False, repr=False)

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        offset: int,
        *,
        group: str = "criu_uprobes",
        event: str = "probe",
        tracefs: Tracefs | None = None,
    ) -> UprobeEvent:
        """Define the event (not enabled yet: a defined but disabled event installs nothing in any task)."""
        for name in (group, event):
            if not _NAME_RE.match(name):
                raise ValueError(f"bad tracefs event name {name!r}")
        own = tracefs is None
        tfs = tracefs or Tracefs.find_or_mount()
        ev = cls(tfs, group, event, str(Path(path).resolve()), offset, own)
        try:
            tfs.write("uprobe_events", f"p:{group}/{event} {ev.path}:{offset:#x}\n")
        except BaseException:
            if own:
                tfs.close()
            raise
        return ev

    @property
    def name(self) -> str:
        return f"{self.group}/{self.event}"

    def _enable_file(self) -> str:
        return f"events/{self.group}/{self.event}/enable"

    def enable(self) -> None:
        self.tracefs.write(self._enable_file(), "1")

    def disable(self) -> None:
        self.tracefs.write(self._enable_file(), "0")

    def enabled(self) -> bool:
        return self.tracefs.read(self._enable_file()).strip() == "1"

    def hits(self) -> int:
        """The event's hit count from ``uprobe_profile`` (summed over every task, since the event was defined)."""
        return self.tracefs.profile().get(self.event, 0) if self.exists() else 0

    def exists(self) -> bool:
        return (self.tracefs.root / "events" / self.group / self.event).exists()

    def remove(self) -> None:
        """Disable (a delete of an enabled event fails with EBUSY), then delete; a no-op once removed."""
        try:
            if self.exists():
                if self.enabled():
                    self.disable()
                self.tracefs.write("uprobe_events", f"-:{self.group}/{self.event}\n")
        finally:
            if self._own_tracefs:
                self.tracefs.close()
                self._own_tracefs = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _mounted_tracefs() -> list[Path]:
    out = []
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == "tracefs":
                    out.append(Path(parts[1]))
                elif len(parts) >= 3 and parts[2] == "debugfs":
                    out.append(Path(parts[1]) / "tracing")
    except OSError:
        pass
    return out


# ------------------------------------------------------------------------------------------------------------
# ELF: the file offset of a symbol (what uprobe_events wants), without external tools
# ------------------------------------------------------------------------------------------------------------


def symbol_file_offset(path: str | os.PathLike[str], symbol: str) -> int:
    """The file offset of ``symbol``'s first byte in the ELF64 little-endian file ``path``.

    As the zdtm uprobes test: symbol value - containing section's address + that section's file offset.
    Looks in ``.symtab`` first, then ``.dynsym``. Raises LookupError if the symbol is absent.
    """
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError(f"{path}: not an ELF64 little-endian file")
    # Elf64_Ehdr (elf.h): e_shoff at 0x28, e_shentsize/e_shnum/e_shstrndx at 0x3a..0x3f
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    # Elf64_Shdr: name, type, flags, addr, offset, size, link, info, addralign, entsize
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    SHT_SYMTAB, SHT_DYNSYM = 2, 11
    want = symbol.encode()
    for kind in (SHT_SYMTAB, SHT_DYNSYM):
        for sh in sections:
            if sh[1] != kind:
                continue
            strtab = sections[sh[6]]
            for off in range(sh[4], sh[4] + sh[5], sh[9] or 24):
                # Elf64_Sym: name(I) info(B) other(B) shndx(H) value(Q) size(Q)
                st_name, _info, _other, shndx, value, _size = struct.unpack_from("<IBBHQQ", data, off)
                if shndx == 0 or shndx >= len(sections):
                    continue
                start = strtab[4] + st_name
                if data[start : data.index(b"\0", start)] == want:
                    sec = sections[shndx]
                    return value - sec[3] + sec[4]
    raise LookupError(f"symbol {symbol!r} not found in {path}")
