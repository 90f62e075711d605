"""Small parsers: ``limits``, ``auxv``, ``children``, ``mountinfo``."""

from __future__ import annotations

import struct

from criu_core.records import dataclass

__all__ = [
    "RLIMIT_NAMES",
    "RLIM_INFINITY",
    "MountInfo",
    "PosixTimer",
    "parse_auxv",
    "parse_children",
    "parse_limits",
    "parse_mountinfo",
    "parse_timers",
]

RLIM_INFINITY = (1 << 64) - 1

# The row titles of /proc/PID/limits (fs/proc/base.c lnames[]) in RLIMIT_* order (asm-generic/resource.h).
RLIMIT_NAMES = (
    "Max cpu time",
    "Max file size",
    "Max data size",
    "Max stack size",
    "Max core file size",
    "Max resident set",
    "Max processes",
    "Max open files",
    "Max locked memory",
    "Max address space",
    "Max file locks",
    "Max pending signals",
    "Max msgqueue size",
    "Max nice priority",
    "Max realtime priority",
    "Max realtime timeout",
)


def parse_limits(text: str) -> list[tuple[int, int]]:
    """``/proc/PID/limits`` → [(soft, hard)] indexed by RLIMIT_* number; "unlimited" is RLIM_INFINITY.

    Used for tasks whose rlimits ``prlimit64`` may not read (another user's task without CAP_SYS_RESOURCE).
    """
    found: dict[str, tuple[int, int]] = {}
    for line in text.splitlines()[1:]:
        for name in RLIMIT_NAMES:
            if line.startswith(name):
                soft, hard = line[len(name) :].split()[:2]
                found[name] = (
                    RLIM_INFINITY if soft == "unlimited" else int(soft),
                    RLIM_INFINITY if hard == "unlimited" else int(hard),
                )
                break
    missing = [n for n in RLIMIT_NAMES if n not in found]
    if missing:
        raise ValueError(f"limits: missing rows {missing}")
    return [found[n] for n in RLIMIT_NAMES]


def parse_auxv(data: bytes) -> list[tuple[int, int]]:
    """``/proc/PID/auxv`` (native u64 pairs) → [(type, value)] up to and excluding AT_NULL."""
    out: list[tuple[int, int]] = []
    for i in range(0, len(data) - len(data) % 16, 16):
        key, value = struct.unpack_from("<QQ", data, i)
        if key == 0:
            break
        out.append((key, value))
    return out


def parse_children(text: str) -> list[int]:
    """``/proc/PID/task/TID/children``: space-separated child pids."""
    return [int(x) for x in text.split()]


@dataclass(frozen=True)
class MountInfo:
    """One ``/proc/PID/mountinfo`` line (proc(5)); ``optional`` are the tagged fields (``shared:N``...)."""

    mnt_id: int
    parent_id: int
    dev: str
    root: str
    mount_point: str
    options: str
    optional: tuple[str, ...]
    fstype: str
    source: str
    super_options: str


def _unescape(s: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 3 < len(s) + 0 and s[i + 1 : i + 4].isdigit():
            out.append(chr(int(s[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[MountInfo]:
    """Parse mountinfo (basic: no propagation analysis)."""
    out = []
    for line in text.splitlines():
        if not line:
            continue
        left, _, right = line.partition(" - ")
        f = left.split()
        r = right.split()
        out.append(
            MountInfo(
                mnt_id=int(f[0]),
                parent_id=int(f[1]),
                dev=f[2],
                root=_unescape(f[3]),
                mount_point=_unescape(f[4]),
                options=f[5],
                optional=tuple(f[6:]),
                fstype=r[0],
                source=_unescape(r[1]) if len(r) > 1 else "",
                super_options=r[2] if len(r) > 2 else "",
            )
        )
    return out


@dataclass(frozen=True)
class PosixTimer:
    """One block of ``/proc/PID/timers`` (fs/proc/base.c show_timer): ``notify`` is the sigev_notify value
    (SIGEV_SIGNAL 0, SIGEV_NONE 1, SIGEV_THREAD 2, | SIGEV_THREAD_ID 4), ``notify_pid`` the target pid/tid."""

    id: int
    signo: int
    sival_ptr: int
    notify: int
    notify_pid: int
    clock_id: int


_SIGEV = {"signal": 0, "none": 1, "thread": 2}


def parse_timers(text: str) -> list[PosixTimer]:
    """Parse ``/proc/PID/timers`` (4 lines per timer)."""
    out: list[PosixTimer] = []
    cur: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        cur[key.strip()] = value.strip()
        if key.strip() == "ClockID":
            sig, _, ptr = cur["signal"].partition("/")
            how, _, target = cur["notify"].partition("/")
            kind, _, pid = target.partition(".")
            notify = _SIGEV.get(how, 0) | (4 if kind == "tid" else 0)
            out.append(PosixTimer(int(cur["ID"]), int(sig), int(ptr, 16), notify, int(pid or 0), int(cur["ClockID"])))
            cur = {}
    return out
