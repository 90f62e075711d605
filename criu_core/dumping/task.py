"""Per-process state: sigactions (62 of them, CRIU's count), itimers, rlimits, mm fields, misc prctl values.

What only the task can tell is asked with injected syscalls into the leader (reference §3 step 5).
"""

from __future__ import annotations

import struct

from criu_core.procfs import ProcFS
from criu_core.ptrace import RemoteTask
from criu_core.records import dataclass, field
from criu_core.sys.proc import PR_GET_CHILD_SUBREAPER, PR_GET_DUMPABLE, PR_GET_THP_DISABLE
from criu_core.sys.structs import Itimerval, KernelSigaction

__all__ = ["SIGACTION_SIGNALS", "ProcessState", "collect_process"]

# Every signal but SIGKILL (9) and SIGSTOP (19): CRIU writes exactly SIGMAX-2 = 62 sa_entry messages.
SIGACTION_SIGNALS = tuple(s for s in range(1, 65) if s not in (9, 19))


@dataclass
class ProcessState:
    """Process-wide values for core (tc) and mm images."""

    pid: int
    comm: str
    flags: int
    personality: int
    sigactions: dict[int, tuple[int, int, int, int]]  # sig → (handler, flags, restorer, mask)
    itimers: list[tuple[int, int, int, int]]  # real, virt, prof: (isec, iusec, vsec, vusec)
    rlimits: list[tuple[int, int]]
    signals_s: list[bytes]
    loginuid: int
    oom_score_adj: int
    child_subreaper: bool
    dumpable: int
    thp_disabled: bool
    brk: int
    posix_timers: list[dict[str, int]]
    mm: dict[str, int]
    auxv: list[int]
    umask: int
    ppid: int
    pgid: int
    sid: int
    state: str
    exit_signal: int
    extra: dict[str, object] = field(default_factory=dict)


def collect_process(leader: RemoteTask, scratch: int, procfs: ProcFS) -> ProcessState:
    """Read the process-wide state of a frozen process through its leader."""
    pid = leader.pid
    status = procfs.status(pid)
    stat = procfs.stat(pid)
    acts: dict[int, tuple[int, int, int, int]] = {}
    # Every disposition, as CRIU: a SIG_DFL one may still carry flags, a mask and a restorer that the task set
    # (sigaction(sig, {SIG_DFL, flags, mask})). One injected call per signal into its own slot, one read.
    size = len(bytes(KernelSigaction()))
    for i, sig in enumerate(SIGACTION_SIGNALS):
        leader.syscall("rt_sigaction", sig, 0, scratch + i * size, 8)
    raw = leader.read_mem(scratch, size * len(SIGACTION_SIGNALS))
    for i, sig in enumerate(SIGACTION_SIGNALS):
        sa = KernelSigaction.from_buffer_copy(raw, i * size)
        acts[sig] = (sa.sa_handler, sa.sa_flags, sa.sa_restorer, sa.sa_mask)
    itimers = []
    for which in range(3):
        leader.syscall("getitimer", which, scratch)
        it = Itimerval.from_buffer_copy(leader.read_mem(scratch, 32))
        itimers.append((it.interval_sec, it.interval_usec, it.value_sec, it.value_usec))
    leader.syscall("prctl", PR_GET_CHILD_SUBREAPER, scratch)
    (subreaper,) = struct.unpack("<i", leader.read_mem(scratch, 4))
    dumpable = leader.syscall("prctl", PR_GET_DUMPABLE)
    thp = leader.syscall("prctl", PR_GET_THP_DISABLE)
    brk = leader.syscall("brk", 0)
    posix = []
    # CPU-time clocks are negative ids (glibc passes MAKE_PROCESS_CPUCLOCK(0, CPUCLOCK_SCHED) = -6 for
    # CLOCK_PROCESS_CPUTIME_ID); the image field is a u32, so they are stored wrapped, as CRIU does.
    for tm in procfs.timers(pid):
        leader.syscall("timer_gettime", tm.id, scratch)
        isec, insec, vsec, vnsec = struct.unpack("<qqqq", leader.read_mem(scratch, 32))
        overrun = leader.syscall("timer_getoverrun", tm.id)
        entry = {
            "it_id": tm.id,
            # CPU clocks are negative clockid_t values; the image's field is unsigned (CRIU stores the bits)
            "clock_id": tm.clock_id & 0xFFFFFFFF,
            "si_signo": tm.signo,
            "it_sigev_notify": tm.notify,
            "sival_ptr": tm.sival_ptr,
            "overrun": overrun,
            "isec": isec,
            "insec": insec,
            "vsec": vsec,
            "vnsec": vnsec,
        }
        if tm.notify & 4:  # SIGEV_THREAD_ID
            entry["notify_thread_id"] = tm.notify_pid
        posix.append(entry)
    f = stat.fields
    mm = {
        "mm_start_code": f["startcode"],
        "mm_end_code": f["endcode"],
        "mm_start_data": f["start_data"],
        "mm_end_data": f["end_data"],
        "mm_start_stack": f["startstack"],
        "mm_start_brk": f["start_brk"],
        "mm_brk": brk,
        "mm_arg_start": f["arg_start"],
        "mm_arg_end": f["arg_end"],
        "mm_env_start": f["env_start"],
        "mm_env_end": f["env_end"],
    }
    auxv: list[int] = []
    for key, value in procfs.auxv(pid):  # AT_NULL excluded, as CRIU stores it
        auxv += [key, value]
    return ProcessState(
        pid=pid,
        comm=procfs.comm(pid),
        flags=f["flags"],
        personality=int(procfs.read_text(pid, "personality").strip(), 16),
        sigactions=acts,
        itimers=itimers,
        rlimits=procfs.limits(pid),
        signals_s=leader.peek_siginfo(shared=True),
        loginuid=int(procfs.read_text(pid, "loginuid").strip()),
        oom_score_adj=int(procfs.read_text(pid, "oom_score_adj").strip()),
        child_subreaper=bool(subreaper),
        dumpable=dumpable,
        thp_disabled=bool(thp),
        brk=brk,
        posix_timers=posix,
        mm=mm,
        auxv=auxv,
        umask=status.umask if status.umask is not None else 0o022,
        ppid=status.ppid,
        pgid=f["pgrp"],
        sid=f["session"],
        state=stat.state,
        exit_signal=f.get("exit_signal", 17),
    )
