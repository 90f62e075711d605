"""Pure parsers of ``/proc`` files and the :class:`ProcFS` reader that feeds them.

Parsers take text (or bytes) and return frozen dataclasses; they do no I/O. :class:`ProcFS` reads files under
an injectable root.
"""

from __future__ import annotations

from criu_core.procfs.fdinfo import FdInfo, parse_fdinfo
from criu_core.procfs.maps import MapEntry, parse_maps, parse_maps_line, parse_smaps
from criu_core.procfs.misc import (
    RLIM_INFINITY,
    RLIMIT_NAMES,
    MountInfo,
    parse_auxv,
    parse_children,
    parse_limits,
    parse_mountinfo,
)
from criu_core.procfs.reader import ProcFS
from criu_core.procfs.stat import ProcStat, parse_stat
from criu_core.procfs.status import ProcStatus, parse_status

__all__ = [
    "RLIMIT_NAMES",
    "RLIM_INFINITY",
    "FdInfo",
    "MapEntry",
    "MountInfo",
    "ProcFS",
    "ProcStat",
    "ProcStatus",
    "parse_auxv",
    "parse_children",
    "parse_fdinfo",
    "parse_limits",
    "parse_maps",
    "parse_maps_line",
    "parse_mountinfo",
    "parse_smaps",
    "parse_stat",
    "parse_status",
]
