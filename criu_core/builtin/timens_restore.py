"""Time namespace at restore: CLOCK_MONOTONIC and CLOCK_BOOTTIME continue from their values at dump time.

A task that sleeps until an absolute monotonic deadline (Python's ``time.sleep`` uses
``clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)``) would otherwise wait until this machine's uptime catches
up with the dumping machine's. Like CRIU (timens-0.img holds the host clocks at dump), the root seed
``unshare(CLONE_NEWTIME)``s, the restorer writes the offsets (dumped clock - current clock) into its
``/proc/PID/timens_offsets`` (allowed only while nobody is in the new namespace yet), and the seed enters
it with ``setns`` on its ``time_for_children`` (possible because it is single-threaded; the kernel then
switches its vvar pages to the namespace's).
"""

from __future__ import annotations

import time
from typing import Any

from criu_core.restore_plan import TaskState

__all__ = ["CLONE_NEWTIME", "enter_timens", "timens_offsets"]

CLONE_NEWTIME = 0x80
_NS = 1_000_000_000
AT_FDCWD = -100


def timens_offsets(timens: Any, now_mono_ns: int, now_boot_ns: int) -> str:
    """The text for /proc/PID/timens_offsets: ``<clock> <sec> <nsec>`` lines, nsec normalised to [0, 1e9)."""
    lines = []
    for name, clk, now in (("monotonic", timens.monotonic, now_mono_ns), ("boottime", timens.boottime, now_boot_ns)):
        off = clk.tv_sec * _NS + clk.tv_nsec - now
        sec, nsec = divmod(off, _NS)
        lines.append(f"{name} {sec} {nsec}\n")
    return "".join(lines)


def _own_offsets() -> dict[str, int]:
    """This process's time namespace offsets in ns (``/proc/self/timens_offsets``; zero in the host's)."""
    out: dict[str, int] = {}
    try:
        with open("/proc/self/timens_offsets") as f:
            for line in f:
                name, sec, nsec = line.split()
                out[name] = int(sec) * _NS + int(nsec)
    except (OSError, ValueError):
        pass
    return out


def enter_timens(st: TaskState, timens: Any) -> None:
    """Put the seed in a new time namespace whose clocks continue from ``timens`` (a timens_entry)."""
    remote, scratch = st.remote, st.scratch
    remote.syscall("unshare", CLONE_NEWTIME)
    # Offsets are relative to the host's clocks, and the restorer may itself live in a time namespace.
    own = _own_offsets()
    text = timens_offsets(timens, time.clock_gettime_ns(time.CLOCK_MONOTONIC) - own.get("monotonic", 0),
                          time.clock_gettime_ns(time.CLOCK_BOOTTIME) - own.get("boottime", 0))
    with open(f"/proc/{st.plan.pid}/timens_offsets", "w") as f:
        f.write(text)
    scratch.reset()
    fd = remote.syscall("openat", AT_FDCWD, scratch.cstr("/proc/self/ns/time_for_children"), 0o2000000, 0)
    try:
        remote.syscall("setns", fd, CLONE_NEWTIME)
    finally:
        remote.syscall("close", fd, check=False)
