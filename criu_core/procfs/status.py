"""Parser for ``/proc/PID/status``."""

from __future__ import annotations

from criu_core.records import dataclass, field

__all__ = ["ProcStatus", "parse_status"]


@dataclass(frozen=True)
class ProcStatus:
    """The fields of ``/proc/PID/status`` criu-core uses, decoded; ``raw`` keeps every line as text.

    Signal sets and capability sets are ints (bit n-1 = signal n; bit n = capability n). ``uids``/``gids`` are
    (real, effective, saved, fs). ``nspid``/``nssid``/``nspgid`` list the ids from the outermost pid namespace
    inward (NSsid/NSpgid exist only on some kernels: empty tuple when absent). ``umask`` is None on kernels
    before 4.7.
    """

    name: str
    umask: int | None
    state: str
    tgid: int
    pid: int
    ppid: int
    tracer_pid: int
    uids: tuple[int, int, int, int]
    gids: tuple[int, int, int, int]
    groups: tuple[int, ...]
    nstgid: tuple[int, ...]
    nspid: tuple[int, ...]
    nspgid: tuple[int, ...]
    nssid: tuple[int, ...]
    threads: int
    sigq: tuple[int, int]
    sigpnd: int
    shdpnd: int
    sigblk: int
    sigign: int
    sigcgt: int
    cap_inh: int
    cap_prm: int
    cap_eff: int
    cap_bnd: int
    cap_amb: int
    no_new_privs: int
    seccomp: int
    seccomp_filters: int
    raw: dict[str, str] = field(default_factory=dict, compare=False)


def _ints(value: str) -> tuple[int, ...]:
    return tuple(int(v) for v in value.split())


def _hex(raw: dict[str, str], key: str) -> int:
    return int(raw[key], 16) if key in raw else 0


def parse_status(text: str) -> ProcStatus:
    """Parse status text (``Key:<tab>value`` lines)."""
    raw: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            raw[key] = value.strip()
    uids = _ints(raw.get("Uid", "0 0 0 0"))
    gids = _ints(raw.get("Gid", "0 0 0 0"))
    sigq = raw.get("SigQ", "0/0").split("/")
    return ProcStatus(
        name=raw.get("Name", ""),
        umask=int(raw["Umask"], 8) if "Umask" in raw else None,
        state=raw.get("State", "?").split()[0] if raw.get("State") else "?",
        tgid=int(raw.get("Tgid", 0)),
        pid=int(raw.get("Pid", 0)),
        ppid=int(raw.get("PPid", 0)),
        tracer_pid=int(raw.get("TracerPid", 0)),
        uids=(uids[0], uids[1], uids[2], uids[3]),
        gids=(gids[0], gids[1], gids[2], gids[3]),
        groups=_ints(raw.get("Groups", "")),
        nstgid=_ints(raw.get("NStgid", "")),
        nspid=_ints(raw.get("NSpid", "")),
        nspgid=_ints(raw.get("NSpgid", "")),
        nssid=_ints(raw.get("NSsid", "")),
        threads=int(raw.get("Threads", 1)),
        sigq=(int(sigq[0]), int(sigq[1])),
        sigpnd=_hex(raw, "SigPnd"),
        shdpnd=_hex(raw, "ShdPnd"),
        sigblk=_hex(raw, "SigBlk"),
        sigign=_hex(raw, "SigIgn"),
        sigcgt=_hex(raw, "SigCgt"),
        cap_inh=_hex(raw, "CapInh"),
        cap_prm=_hex(raw, "CapPrm"),
        cap_eff=_hex(raw, "CapEff"),
        cap_bnd=_hex(raw, "CapBnd"),
        cap_amb=_hex(raw, "CapAmb"),
        no_new_privs=int(raw.get("NoNewPrivs", 0)),
        seccomp=int(raw.get("Seccomp", 0)),
        seccomp_filters=int(raw.get("Seccomp_filters", 0)),
        raw=raw,
    )
