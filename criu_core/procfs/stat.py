"""Parser for ``/proc/PID/stat`` (and ``/proc/PID/task/TID/stat``)."""

from __future__ import annotations

from criu_core.records import dataclass

__all__ = ["STAT_FIELDS", "ProcStat", "parse_stat"]

# proc(5) field names, numbered from 1 (pid) and 2 (comm); the rest in order from field 3.
STAT_FIELDS = [
    "state",
    "ppid",
    "pgrp",
    "session",
    "tty_nr",
    "tpgid",
    "flags",
    "minflt",
    "cminflt",
    "majflt",
    "cmajflt",
    "utime",
    "stime",
    "cutime",
    "cstime",
    "priority",
    "nice",
    "num_threads",
    "itrealvalue",
    "starttime",
    "vsize",
    "rss",
    "rsslim",
    "startcode",
    "endcode",
    "startstack",
    "kstkesp",
    "kstkeip",
    "signal",
    "blocked",
    "sigignore",
    "sigcatch",
    "wchan",
    "nswap",
    "cnswap",
    "exit_signal",
    "processor",
    "rt_priority",
    "policy",
    "delayacct_blkio_ticks",
    "guest_time",
    "cguest_time",
    "start_data",
    "end_data",
    "start_brk",
    "arg_start",
    "arg_end",
    "env_start",
    "env_end",
    "exit_code",
]


@dataclass(frozen=True)
class ProcStat:
    """``/proc/PID/stat``: ``pid``, ``comm`` (without parentheses, may contain anything) and ``fields`` by name
    (integers except ``state``). Missing trailing fields (older kernels) are absent from ``fields``."""

    pid: int
    comm: str
    state: str
    fields: dict[str, int]

    def __getattr__(self, name: str) -> int:
        try:
            return self.fields[name]
        except KeyError:
            raise AttributeError(name) from None


def parse_stat(text: str) -> ProcStat:
    """Parse stat text. ``comm`` may contain spaces and ``)``, so it is split at the *last* ``)``."""
    lpar = text.index("(")
    rpar = text.rindex(")")
    pid = int(text[:lpar])
    comm = text[lpar + 1 : rpar]
    rest = text[rpar + 1 :].split()
    state = rest[0]
    fields: dict[str, int] = {}
    for name, value in zip(STAT_FIELDS[1:], rest[1:]):
        fields[name] = int(value)
    return ProcStat(pid, comm, state, fields)
