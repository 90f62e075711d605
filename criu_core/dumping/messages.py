"""Message builders of a dump: the core of a thread, a zombie's core, the seccomp chain, the inventory and the
stats, with CRIU 4.2's field choices. Pure functions over the state the collectors gathered; no I/O."""

from __future__ import annotations

import os
import time
from typing import Any

from criu_core.dumping.task import SIGACTION_SIGNALS, ProcessState
from criu_core.dumping.thread import GDT_ENTRY_TLS_MIN, ThreadState
from criu_core.images.messages import message_class

__all__ = [
    "TASK_ALIVE",
    "TASK_DEAD",
    "TASK_STOPPED",
    "add_seccomp",
    "core_entry",
    "inventory_entry",
    "kdev",
    "msg",
    "stats_entry",
    "timens_entry",
    "uuid4",
    "zombie_core",
]

TASK_ALIVE = 1
TASK_DEAD = 2  # a zombie: only pstree and core (exit_code) are written
TASK_STOPPED = 3


def msg(qualname: str, /, **fields: Any) -> Any:
    """A message of type ``qualname`` (``"core.core_entry"``) with ``fields``."""
    return message_class(qualname)(**fields)


def kdev(dev: int) -> int:
    """A dev_t in the kernel's old 32-bit encoding (major << 20 | minor), as CRIU's images store devices."""
    return (os.major(dev) << 20) | os.minor(dev)


def uuid4() -> str:
    """A random (version 4) UUID string, as ``str(uuid.uuid4())``; the uuid module costs 2 ms of imports."""
    b = bytearray(os.urandom(16))
    b[6] = b[6] & 0x0F | 0x40
    b[8] = b[8] & 0x3F | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def core_entry(th: ThreadState, proc: ProcessState | None, seccomp_filters: list[Any]) -> Any:
    """core-TID.img of one thread; ``proc`` (the process-wide part, ``tc``) for the leader only. A thread's
    seccomp chain is appended to ``seccomp_filters`` (seccomp.img)."""
    tls = [
        {
            "entry_number": GDT_ENTRY_TLS_MIN + i,
            "base_addr": 0,
            "limit": 0,
            "seg_32bit": False,
            "contents_h": False,
            "contents_l": False,
            "read_exec_only": True,
            "limit_in_pages": False,
            "seg_not_present": True,
            "usable": False,
        }
        for i in range(3)
    ]
    xsave = th.xsave if len(th.xsave) > 1 or th.xsave.get("xstate_bv") else None
    fpregs = dict(th.fpregs)
    if xsave is not None:
        fpregs["xsave"] = xsave
    thread_info = {
        "clear_tid_addr": th.clear_tid_addr,
        "gpregs": dict(th.regs, mode=1),
        "fpregs": fpregs,
        "tls": tls,
    }
    thread_core: dict[str, Any] = {
        "futex_rla": th.futex_rla,
        "futex_rla_len": th.futex_rla_len,
        "sched_nice": th.sched["nice"],
        "sched_policy": th.sched["policy"],
        "blk_sigset": th.sigmask,
        "sas": {"ss_sp": th.sas[0], "ss_size": th.sas[1], "ss_flags": th.sas[2]},
        "signals_p": {"signals": [{"siginfo": s} for s in th.signals_p]},
        "creds": th.creds,
        "comm": th.comm,
    }
    if th.sched["policy"] in (1, 2):  # SCHED_FIFO, SCHED_RR
        thread_core["sched_prio"] = th.sched["prio"]
    if th.pdeath_sig:
        thread_core["pdeath_sig"] = th.pdeath_sig
    if th.rseq is not None:
        thread_core["rseq_entry"] = {
            "rseq_abi_pointer": th.rseq[0],
            "rseq_abi_size": th.rseq[1],
            "signature": th.rseq[2],
        }
        if th.rseq[3]:
            thread_core["rseq_entry"]["rseq_cs_pointer"] = th.rseq[3]
    if th.seccomp_mode:
        thread_core["seccomp_mode"] = th.seccomp_mode
        if th.seccomp_filters:
            thread_core["seccomp_filter"] = add_seccomp(seccomp_filters, th.seccomp_filters)
    core: dict[str, Any] = {"mtype": 1, "thread_info": thread_info, "thread_core": thread_core}
    if proc is not None:
        timers = {
            name: {"isec": it[0], "iusec": it[1], "vsec": it[2], "vusec": it[3]}
            for name, it in zip(("real", "virt", "prof"), proc.itimers)
        }
        timers["posix"] = proc.posix_timers
        core["tc"] = {
            "task_state": TASK_ALIVE,
            "exit_code": 0,
            "personality": proc.personality,
            "flags": proc.flags,
            "blk_sigset": th.sigmask,
            "comm": proc.comm,
            "timers": timers,
            "rlimits": {"rlimits": [{"cur": c, "max": m} for c, m in proc.rlimits]},
            "signals_s": {"signals": [{"siginfo": s} for s in proc.signals_s]},
            "loginuid": proc.loginuid,
            "oom_score_adj": proc.oom_score_adj,
            "sigactions": [
                {"sigaction": a[0], "flags": a[1], "restorer": a[2], "mask": a[3], "compat_sigaction": False}
                for a in (proc.sigactions[s] for s in SIGACTION_SIGNALS)
            ],
            "child_subreaper": proc.child_subreaper,
        }
        if "stop_signo" in proc.extra:
            core["tc"]["task_state"] = TASK_STOPPED
            core["tc"]["stop_signo"] = proc.extra["stop_signo"]
    return msg("core.core_entry", **core)


def zombie_core(stat: Any) -> Any:
    """core-PID.img of a zombie: task_state TASK_DEAD and the wait status, as CRIU's dump_one_zombie."""
    tc = {
        "task_state": TASK_DEAD,
        "exit_code": stat.exit_code & 0xFFFF,
        "personality": 0,
        "flags": 0,
        "blk_sigset": 0,
        "comm": stat.comm,
    }
    return msg("core.core_entry", mtype=1, tc=tc)


def add_seccomp(seccomp_filters: list[Any], filters: list[bytes]) -> int:
    """Append a thread's filter chain (oldest first, each ``prev`` pointing at the older one); returns the
    index of the newest, which is what thread_core.seccomp_filter names."""
    prev: int | None = None
    for prog in reversed(filters):
        f: dict[str, Any] = {"filter": prog}
        if prev is not None:
            f["prev"] = prev
        seccomp_filters.append(f)
        prev = len(seccomp_filters) - 1
    assert prev is not None
    return prev


def timens_entry() -> Any:
    """timens-0.img: this machine's monotonic and boot clocks now (the offsets a time namespace would need)."""
    mono = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    boot = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    return msg(
        "timens.timens_entry",
        monotonic={"tv_sec": mono // 10**9, "tv_nsec": mono % 10**9},
        boottime={"tv_sec": boot // 10**9, "tv_nsec": boot % 10**9},
    )


def inventory_entry(root_ids: Any, plugins: list[str]) -> Any:
    """The core's inventory fields (CRIU 4.2's values for a dump without namespaces or cgroups)."""
    return msg(
        "inventory.inventory_entry",
        img_version=2,
        fdinfo_per_id=True,
        root_ids=root_ids,
        ns_per_id=True,
        root_cg_set=1,
        lsmtype=0,
        network_lock_method=0,
        plugins_entry={"plugins": plugins},
        dump_criu_run_id=uuid4(),
    )


def stats_entry(r: Any) -> Any:
    """stats-dump: the counters and timings (microseconds) of a DumpResult."""
    dump = {
        "freezing_time": r.freezing_time,
        "frozen_time": r.frozen_time,
        "memdump_time": r.memdump_time,
        "memwrite_time": 0,
        "pages_scanned": r.pages_scanned,
        "pages_skipped_parent": 0,
        "pages_written": r.pages_written,
        "pages_lazy": 0,
    }
    return msg("stats.stats_entry", dump=dump)
