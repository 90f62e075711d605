"""Parser for ``/proc/PID/fdinfo/FD``: the common lines plus the type-specific ones.

Type-specific content (fs/eventfd.c, fs/eventpoll.c, fs/notify/fdinfo.c, fs/signalfd.c, fs/timerfd.c):

* eventfd: ``eventfd-count: <hex>``, ``eventfd-id: <n>``, ``eventfd-semaphore: 0|1`` (newer kernels)
* epoll: ``tfd: <fd> events: <hex> data: <hex> pos:<n> ino:<hex> sdev:<hex>`` per watched fd
* inotify: ``inotify wd:<hex> ino:<hex> sdev:<hex> mask:<hex> ignored_mask:<hex> [fhandle-bytes:.. ...]``
* fanotify: ``fanotify flags:.. event-flags:..`` and ``fanotify ino:.. sdev:.. mflags:.. mask:.. ...`` marks
* signalfd: ``sigmask: <hex>``
* timerfd: ``clockid: n``, ``ticks: n``, ``settime flags: 0n`` (octal), ``it_value: (s, ns)``,
  ``it_interval: (s, ns)``
"""

from __future__ import annotations

import re

from criu_core.records import dataclass, field

__all__ = ["FdInfo", "parse_fdinfo"]

_KV = re.compile(r"([A-Za-z_-]+):\s*(\S+)")
_PAIR = re.compile(r"\((\d+),\s*(\d+)\)")


@dataclass(frozen=True)
class FdInfo:
    """Decoded fdinfo. ``flags`` is the file's f_flags (from octal); ``extra`` holds other scalar lines as text;
    ``epoll_tfds``, ``inotify_wds`` and ``fanotify_marks`` hold one dict of ints per entry line; timerfd and
    signalfd values are decoded into their own fields (None when the fd is not of that type)."""

    pos: int
    flags: int
    mnt_id: int
    ino: int | None
    eventfd_count: int | None = None
    eventfd_id: int | None = None
    eventfd_semaphore: int | None = None
    sigmask: int | None = None
    timerfd_clockid: int | None = None
    timerfd_ticks: int | None = None
    timerfd_settime_flags: int | None = None
    timerfd_it_value: tuple[int, int] | None = None
    timerfd_it_interval: tuple[int, int] | None = None
    epoll_tfds: tuple[dict[str, int], ...] = ()
    inotify_wds: tuple[dict[str, int], ...] = ()
    fanotify_marks: tuple[dict[str, int], ...] = ()
    fanotify_flags: dict[str, int] | None = None
    extra: dict[str, str] = field(default_factory=dict, compare=False)


def _hexdict(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, value in _KV.findall(text):
        try:
            out[key] = int(value, 16)
        except ValueError:
            continue
    return out


def _pair(text: str) -> tuple[int, int]:
    m = _PAIR.search(text)
    if not m:
        raise ValueError(f"bad timerfd time: {text!r}")
    return int(m.group(1)), int(m.group(2))


def parse_fdinfo(text: str) -> FdInfo:
    """Parse the text of one fdinfo file."""
    common: dict[str, int] = {}
    kw: dict[str, object] = {}
    extra: dict[str, str] = {}
    tfds: list[dict[str, int]] = []
    wds: list[dict[str, int]] = []
    marks: list[dict[str, int]] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("tfd:"):
            # "tfd:        5 events:       19 data: ..." : tfd is decimal, the rest hex
            d = _hexdict(line)
            d["tfd"] = int(line.split()[1])
            if "pos" in d:
                d["pos"] = int(re.search(r"pos:\s*(\d+)", line).group(1))  # type: ignore[union-attr]
            tfds.append(d)
            continue
        if line.startswith("inotify "):
            wds.append(_hexdict(line[len("inotify ") :]))
            continue
        if line.startswith("fanotify "):
            d = _hexdict(line[len("fanotify ") :])
            if "flags" in d and "event-flags" in d:
                kw["fanotify_flags"] = d
            else:
                marks.append(d)
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        value = value.strip()
        if key == "pos":
            common["pos"] = int(value)
        elif key == "flags":
            common["flags"] = int(value, 8)
        elif key == "mnt_id":
            common["mnt_id"] = int(value)
        elif key == "ino":
            common["ino"] = int(value)
        elif key == "eventfd-count":
            kw["eventfd_count"] = int(value, 16)
        elif key == "eventfd-id":
            kw["eventfd_id"] = int(value)
        elif key == "eventfd-semaphore":
            kw["eventfd_semaphore"] = int(value)
        elif key == "sigmask":
            kw["sigmask"] = int(value, 16)
        elif key == "clockid":
            kw["timerfd_clockid"] = int(value)
        elif key == "ticks":
            kw["timerfd_ticks"] = int(value)
        elif key == "settime flags":
            kw["timerfd_settime_flags"] = int(value, 8)
        elif key == "it_value":
            kw["timerfd_it_value"] = _pair(value)
        elif key == "it_interval":
            kw["timerfd_it_interval"] = _pair(value)
        else:
            extra[key] = value
    return FdInfo(
        pos=common.get("pos", 0),
        flags=common.get("flags", 0),
        mnt_id=common.get("mnt_id", 0),
        ino=common.get("ino"),
        epoll_tfds=tuple(tfds),
        inotify_wds=tuple(wds),
        fanotify_marks=tuple(marks),
        extra=extra,
        **kw,  # type: ignore[arg-type]
    )
