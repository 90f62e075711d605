"""Built-in process and thread state at restore, from core-PID.img: signals, timers, limits, prctl bits,
per-thread kernel registrations, credentials, seccomp, and finally registers and the blocked mask.

Each function is a group of injected syscalls in the seed, called by :mod:`criu_core.restore` in the order of
reference/ptrace-dump-restore.md §3 (steps 11-15): process state, then per-thread state, then creds and
seccomp (which may forbid what follows), then registers, xstate and the real signal mask right before detach.
"""

from __future__ import annotations

import os
import signal
import struct
from typing import Any

from criu_core.builtin.regs_restore import build_regs, build_xstate
from criu_core.errors import UnsupportedResource
from criu_core.restore_plan import NR_SIGNALS, TaskState
from criu_core.sys import ptrace as pt

__all__ = [
    "check_supported",
    "restore_creds",
    "restore_itimers",
    "restore_pending_signals",
    "restore_posix_timers",
    "restore_registers",
    "restore_rlimits",
    "restore_seccomp",
    "restore_sigactions",
    "restore_task_misc",
    "restore_thread",
]

_U64 = (1 << 64) - 1
RLIM_INFINITY = _U64
SS_ONSTACK, SS_DISABLE = 1, 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NAME = 1, 4, 15
PR_CAPBSET_DROP, PR_SET_SECUREBITS = 24, 28
SECBIT_NO_SETUID_FIXUP = 1 << 2
PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS, PR_SET_THP_DISABLE = 36, 38, 41
PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE = 47, 2
PR_TIMER_CREATE_RESTORE_IDS = 77
PRIO_PROCESS = 0
SECCOMP_SET_MODE_FILTER = 1
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
TASK_ALIVE, TASK_DEAD, TASK_STOPPED = 1, 2, 3


def check_supported(st: TaskState) -> None:
    """Refuse, before anything is created, what this restore cannot bring back."""
    plan = st.plan
    tc = plan.core.tc
    where = f"task {plan.pid}"
    if tc.task_state == TASK_DEAD:
        return  # a zombie: recreated by the orchestrator, nothing else to check
    if tc.task_state not in (TASK_ALIVE, TASK_STOPPED):
        raise UnsupportedResource(where, msg=f"{where} was dumped in state {tc.task_state} (dead/zombie tasks "
                                  "are not supported)")
    if any(sa.compat_sigaction for sa in tc.sigactions):
        raise UnsupportedResource(where, msg=f"{where} has compat (32-bit) signal handlers")


# ---------------------------------------------------------------------------------------------- process


def restore_sigactions(st: TaskState, only: set[int] | None = None) -> None:
    """rt_sigaction for every signal but SIGKILL/SIGSTOP (62 entries in the image, in order), or for the
    signals in ``only``.

    A signal is skipped when ``st.sigactions_now`` (what the task has now: a child forked after its parent's
    were set inherits them; a seed, the restorer's, as ``remote.inherited_sigactions`` says) already holds its
    dumped action; otherwise it is set, SIG_DFL included: a seed inherited the restorer's dispositions (P8).
    """
    remote, scratch = st.remote, st.scratch
    sigs = [s for s in range(1, NR_SIGNALS + 1) if s not in (9, 19)]
    entries = list(st.plan.core.tc.sigactions)
    now = st.sigactions_now
    inherited, remote.inherited_sigactions = remote.inherited_sigactions, None
    if inherited and not now:
        # A seed's dispositions, known from its maker. Not SIGTRAP's: a trampoline's int3 forces SIGTRAP, and
        # forcing an ignored signal resets it to SIG_DFL (kernel force_sig_info_to_task).
        now.update((sig, act) for sig, act in inherited.items() if sig != signal.SIGTRAP)
    scratch.reset()
    for i, sig in enumerate(sigs):
        if only is not None and sig not in only:
            continue
        if entries:
            sa = entries[i]
            act = (sa.sigaction, sa.flags, sa.restorer, sa.mask)
        else:
            act = (0, 0, 0, 0)  # legacy images keep them in sigacts-PID.img; SIG_DFL is the safe reading
        if now.get(sig) == act:
            continue
        # the kernel's struct sigaction (asm/signal.h): handler, flags, restorer, 64-bit mask
        at = scratch.put(struct.pack("<4Q", *(v & _U64 for v in act)), 8)
        remote.syscall("rt_sigaction", sig, at, 0, 8)
        now[sig] = act
        if sig == signal.SIGTRAP and act[0] == 1 and remote.trampoline is not None:
            # the trampoline's int3 forces SIGTRAP, and forcing an ignored signal resets it to SIG_DFL
            # (kernel force_sig_info_to_task): inject with syscall-stops from here on
            remote.trampoline = None


def restore_itimers(st: TaskState) -> None:
    """setitimer for ITIMER_REAL/VIRTUAL/PROF (a fork starts with none armed)."""
    tc = st.plan.core.tc
    if not tc.HasField("timers"):
        return
    for which, it in enumerate((tc.timers.real, tc.timers.virt, tc.timers.prof)):
        if not (it.isec or it.iusec or it.vsec or it.vusec):
            continue
        vsec, vusec = it.vsec, it.vusec
        if not (vsec or vusec):
            vusec = 1  # armed periodic timer caught at expiry: fire at once rather than disarm it
        st.scratch.reset()
        at = st.scratch.put(struct.pack("<4q", it.isec, it.iusec, vsec, vusec), 8)
        st.remote.syscall("setitimer", which, at, 0)


def restore_posix_timers(st: TaskState) -> None:
    """timer_create with the dumped ids (PR_TIMER_CREATE_RESTORE_IDS, Linux 6.15+: the id is read from the
    result pointer), then timer_settime with the remaining time. Overrun counts cannot be restored."""
    tc = st.plan.core.tc
    timers = list(tc.timers.posix) if tc.HasField("timers") else []
    if not timers:
        return
    remote, scratch = st.remote, st.scratch
    exact = remote.syscall("prctl", PR_TIMER_CREATE_RESTORE_IDS, 1, 0, 0, 0, check=False) == 0
    try:
        for t in sorted(timers, key=lambda t: t.it_id):
            scratch.reset()
            # struct sigevent (asm-generic/siginfo.h, 64 bytes): sigval, signo, notify, then the thread id
            tid = t.notify_thread_id if t.HasField("notify_thread_id") else 0
            sev = scratch.put(struct.pack("<Qiii", t.sival_ptr, t.si_signo, t.it_sigev_notify, tid).ljust(64, b"\0"))
            id_at = scratch.put(struct.pack("<i", t.it_id), 4)
            clock = t.clock_id - (1 << 32) if t.clock_id >= 1 << 31 else t.clock_id  # CPU clocks are negative
            remote.syscall("timer_create", clock, sev, id_at)
            got = struct.unpack("<i", scratch.read(id_at, 4))[0]
            if got != t.it_id:
                raise UnsupportedResource("posix timer", msg=f"task {st.plan.pid}: POSIX timer {t.it_id} came back "
                                          f"as {got} (this kernel cannot choose timer ids: Linux 6.15+ needed)")
            its = scratch.put(struct.pack("<4q", t.isec, t.insec, t.vsec, t.vnsec), 8)
            remote.syscall("timer_settime", t.it_id, 0, its, 0)
            if t.overrun:
                st.warnings.append(f"task {st.plan.pid}: overrun count {t.overrun} of POSIX timer {t.it_id} is lost")
    finally:
        if exact:
            remote.syscall("prctl", PR_TIMER_CREATE_RESTORE_IDS, 0, 0, 0, 0, check=False)


def restore_rlimits(st: TaskState) -> None:
    """prlimit64 per resource, never above the hard limit the seed has.

    Raising a hard limit needs CAP_SYS_RESOURCE, which root lacks on this machine; such a limit is set to the
    seed's hard limit and a warning names it (the task may then get less than it had).
    """
    tc = st.plan.core.tc
    if not tc.HasField("rlimits"):
        return
    remote, scratch = st.remote, st.scratch
    # what the seed has, read from /proc (no injected call): a forked child usually has its parent's already
    have = remote.procfs.limits(remote.pid)
    for res, rl in enumerate(tc.rlimits.rlimits):
        scratch.reset()
        if res < len(have):
            old = have[res]
        else:
            old_at = scratch.alloc(16, 8)
            if remote.syscall("prlimit64", 0, res, 0, old_at, check=False) < 0:
                continue  # a resource this kernel does not know
            old = struct.unpack("<QQ", scratch.read(old_at, 16))
        old_max = old[1]
        new_max = min(rl.max, old_max)
        if rl.max > old_max:
            st.warnings.append(f"rlimit {res} of task {st.plan.pid}: hard limit {rl.max} cannot be raised above "
                               f"{old_max} without CAP_SYS_RESOURCE")
        new_cur = min(rl.cur, new_max)
        if (new_cur, new_max) == tuple(old):
            continue
        ret = remote.syscall("prlimit64", 0, res, scratch.put(struct.pack("<QQ", new_cur, new_max), 8), 0,
                             check=False)
        if ret < 0:
            st.warnings.append(f"rlimit {res} of task {st.plan.pid}: prlimit64 failed: {os.strerror(-ret)}")


def restore_task_misc(st: TaskState) -> None:
    """comm, personality, scheduling, subreaper, THP, oom_score_adj (process-wide, harmless to set early)."""
    plan = st.plan
    tc, thc = plan.core.tc, plan.core.thread_core
    remote, scratch = st.remote, st.scratch
    scratch.reset()
    remote.syscall("prctl", PR_SET_NAME, scratch.cstr(tc.comm.encode()[:15]), 0, 0, 0)
    remote.syscall("personality", tc.personality & 0xFFFFFFFF)
    if thc.HasField("sched_policy") and thc.sched_policy:
        at = scratch.put(struct.pack("<i", thc.sched_prio), 4)
        remote.syscall("sched_setscheduler", 0, thc.sched_policy, at)
    if thc.HasField("sched_nice") and thc.sched_nice:
        remote.syscall("setpriority", PRIO_PROCESS, 0, thc.sched_nice)
    if tc.child_subreaper:
        remote.syscall("prctl", PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    if plan.mm.thp_disabled:
        remote.syscall("prctl", PR_SET_THP_DISABLE, 1, 0, 0, 0)
    if tc.HasField("oom_score_adj") and tc.oom_score_adj:
        try:
            with open(f"/proc/{plan.pid}/oom_score_adj", "w") as f:
                f.write(str(tc.oom_score_adj))
        except OSError as err:  # lowering it needs CAP_SYS_RESOURCE, which root lacks on this machine
            st.warnings.append(f"task {plan.pid}: oom_score_adj {tc.oom_score_adj} not restored: {err.strerror}")
    if tc.HasField("membarrier_registration_mask") and tc.membarrier_registration_mask:
        st.warnings.append(f"task {plan.pid}: membarrier registrations are not restored")


def restore_thread(st: TaskState, remote: Any, core: Any) -> None:
    """Per thread: clear_child_tid, robust list, sigaltstack, pdeath signal, name, rseq registration (P3)."""
    ti, thc = core.thread_info, core.thread_core
    scratch = st.scratch
    remote.syscall("set_tid_address", ti.clear_tid_addr)
    if thc.futex_rla:
        remote.syscall("set_robust_list", thc.futex_rla, thc.futex_rla_len)
    if thc.HasField("sas"):
        sas = thc.sas
        flags = sas.ss_flags & ~SS_ONSTACK  # "on the stack now" is state, not a flag sigaltstack accepts
        scratch.reset()
        # stack_t (asm/signal.h): void *ss_sp; int ss_flags; size_t ss_size
        at = scratch.put(struct.pack("<QiiQ", sas.ss_sp if not flags & SS_DISABLE else 0, flags, 0,
                                     sas.ss_size if not flags & SS_DISABLE else 0), 8)
        remote.syscall("sigaltstack", at, 0)
    if thc.HasField("pdeath_sig") and thc.pdeath_sig:
        remote.syscall("prctl", PR_SET_PDEATHSIG, thc.pdeath_sig, 0, 0, 0)
    if thc.HasField("comm") and thc.comm:
        scratch.reset()
        remote.syscall("prctl", PR_SET_NAME, scratch.cstr(thc.comm.encode()[:15]), 0, 0, 0)  # per-thread name
    if thc.HasField("rseq_entry") and thc.rseq_entry.rseq_abi_pointer:
        r = thc.rseq_entry
        remote.syscall("rseq", r.rseq_abi_pointer, r.rseq_abi_size, 0, r.signature)


def restore_pending_signals(st: TaskState) -> None:
    """Queue the dumped pending signals again, from inside the task (the kernel refuses a siginfo with
    si_code >= 0 from another process). They stay pending: every signal is blocked until the very end."""
    plan = st.plan
    remote, scratch = st.remote, st.scratch
    queues = [(None, plan.core.tc.signals_s)] + [(tid, c.thread_core.signals_p)
                                                 for tid, c in plan.thread_cores.items()]
    for tid, queue in queues:
        for sig in queue.signals:
            info = bytes(sig.siginfo)
            if len(info) != 128:
                raise UnsupportedResource("siginfo", msg=f"task {plan.pid}: a queued siginfo is {len(info)} bytes")
            signo = struct.unpack_from("<i", info)[0]
            scratch.reset()
            at = scratch.put(info, 8)
            if tid is None:
                remote.syscall("rt_sigqueueinfo", plan.pid, signo, at)
            else:
                remote.syscall("rt_tgsigqueueinfo", plan.pid, tid, signo, at)


def _own_creds() -> tuple[tuple[int, ...], tuple[int, ...], list[int]]:
    return os.getresuid(), os.getresgid(), sorted(os.getgroups())


def restore_creds(st: TaskState) -> None:
    """Credentials, only if they differ from the restorer's (root): groups, ids (with NO_SETUID_FIXUP so the
    capabilities survive), securebits, bounding set, capability sets, ambient caps; then no_new_privs and
    dumpable. Done after everything else that needs root (CRIU's order in its restorer)."""
    plan = st.plan
    thc, tc = plan.core.thread_core, plan.core.tc
    if not thc.HasField("creds"):
        return
    c = thc.creds
    remote, scratch = st.remote, st.scratch
    uids, gids, groups = _own_creds()
    same_ids = (c.uid, c.euid, c.suid) == uids and (c.gid, c.egid, c.sgid) == gids and c.fsuid == uids[1] \
        and c.fsgid == gids[1] and sorted(c.groups) == groups
    if not same_ids:
        scratch.reset()
        at = scratch.put(struct.pack(f"<{len(c.groups)}I", *c.groups), 4) if c.groups else 0
        remote.syscall("setgroups", len(c.groups), at)
        # Keep the capabilities across the uid change (a root -> non-root setresuid clears them otherwise),
        # so that securebits, the bounding set and capset, which need CAP_SETPCAP, still work after it.
        remote.syscall("prctl", PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP, 0, 0, 0)
        remote.syscall("setresgid", c.gid, c.egid, c.sgid)
        remote.syscall("setresuid", c.uid, c.euid, c.suid)
        remote.syscall("setfsgid", c.fsgid)
        remote.syscall("setfsuid", c.fsuid)
        remote.syscall("prctl", PR_SET_SECUREBITS, c.secbits, 0, 0, 0)
        bnd = list(c.cap_bnd) + [0xFFFFFFFF] * (2 - len(c.cap_bnd))
        for cap in range(64):
            if not bnd[cap // 32] >> (cap % 32) & 1:
                remote.syscall("prctl", PR_CAPBSET_DROP, cap, 0, 0, 0, check=False)  # EINVAL past CAP_LAST_CAP
        caps = [list(x) + [0] * (2 - len(x)) for x in (c.cap_eff, c.cap_prm, c.cap_inh)]
        scratch.reset()
        hdr = scratch.put(struct.pack("<Ii", _LINUX_CAPABILITY_VERSION_3, 0), 8)
        # struct __user_cap_data_struct[2] (linux/capability.h): {effective, permitted, inheritable} x 2 words
        data = scratch.put(struct.pack("<6I", caps[0][0], caps[1][0], caps[2][0], caps[0][1], caps[1][1],
                                       caps[2][1]), 8)
        remote.syscall("capset", hdr, data)
        amb = list(c.cap_amb) + [0, 0]
        for cap in range(64):
            if amb[cap // 32] >> (cap % 32) & 1:
                remote.syscall("prctl", PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0)
    if c.HasField("no_new_privs") and c.no_new_privs:
        remote.syscall("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    dumpable = plan.mm.dumpable if plan.mm.HasField("dumpable") else 1
    if dumpable in (0, 1):
        remote.syscall("prctl", PR_SET_DUMPABLE, dumpable, 0, 0, 0)
    if tc.HasField("loginuid") and tc.loginuid != 0xFFFFFFFF:
        st.warnings.append(f"task {plan.pid}: loginuid {tc.loginuid} is not restored")


def restore_seccomp(st: TaskState, plan_seccomp: Any) -> None:
    """Install the thread's seccomp filter chain, oldest first; the last injected syscall of the task (P15)."""
    thc = st.plan.core.thread_core
    mode = thc.seccomp_mode if thc.HasField("seccomp_mode") else 0
    if mode == 0:
        return
    if mode != 2:
        raise UnsupportedResource("seccomp", msg=f"task {st.plan.pid}: strict seccomp mode cannot be restored "
                                  "by injected syscalls")
    filters = list(plan_seccomp.seccomp_filters) if plan_seccomp is not None else []
    chain = []
    idx = thc.seccomp_filter
    while True:
        if not 0 <= idx < len(filters) or len(chain) > len(filters):
            raise UnsupportedResource("seccomp", msg=f"task {st.plan.pid}: bad seccomp filter index {idx}")
        chain.append(filters[idx])
        if not filters[idx].HasField("prev"):
            break
        idx = filters[idx].prev
    for flt in reversed(chain):
        code = bytes(flt.filter)
        if len(code) % 8 or not code:
            raise UnsupportedResource("seccomp", msg=f"task {st.plan.pid}: malformed seccomp filter")
        st.scratch.reset()
        prog = st.scratch.put(code, 8)
        # struct sock_fprog (linux/filter.h): unsigned short len; struct sock_filter *filter
        fprog = st.scratch.put(struct.pack("<H6xQ", len(code) // 8, prog), 8)
        st.remote.syscall("seccomp", SECCOMP_SET_MODE_FILTER, flt.flags if flt.HasField("flags") else 0, fprog)


def restore_registers(st: TaskState, remote: Any, core: Any, *, leader: bool) -> None:
    """Step 15 of §3: SETREGS (fs_base/gs_base included), SETREGSET NT_X86_XSTATE, the real mask, rseq_cs."""
    ti = core.thread_info
    path = f"core-{remote.tid}.img"
    regs = build_regs(ti.gpregs, remote.get_regs(), path=path)
    xstate = build_xstate(ti.fpregs, remote.get_xstate(), path=path)
    remote.set_xstate(xstate)
    # RemoteTask.set_regs() would remember the seed's registers for restore_state(); they are never wanted
    # back, so set them directly.
    pt.setregs(remote.tid, regs)
    mask = core.tc.blk_sigset if leader else core.thread_core.blk_sigset
    remote.set_sigmask(mask & ~((1 << 8) | (1 << 18)))  # SIGKILL/SIGSTOP cannot be blocked
    thc = core.thread_core
    if thc.HasField("rseq_entry") and thc.rseq_entry.rseq_cs_pointer and thc.rseq_entry.rseq_abi_pointer:
        # The kernel cleared rseq->rseq_cs on return from our injected syscalls (their ip is outside the
        # critical section); put the dumped pointer back last, as CRIU does, so the section keeps its abort
        # semantics. struct rseq (linux/rseq.h): u32 cpu_id_start, u32 cpu_id, u64 rseq_cs, ...
        remote.write_mem(thc.rseq_entry.rseq_abi_pointer + 8, struct.pack("<Q", thc.rseq_entry.rseq_cs_pointer))
