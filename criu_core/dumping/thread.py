"""Per-thread state for core-TID.img: registers (after the syscall-restart rewrite), FPU/XSAVE, blocked mask,
pending signals, alternate stack, tid address, robust list, rseq, creds, scheduling, seccomp."""

from __future__ import annotations

import struct
from typing import Any

from criu_core.arch.x86_64.regs import restart_fixup
from criu_core.arch.x86_64.xstate import fpregs_fields
from criu_core.errors import CriuError
from criu_core.procfs import ProcFS
from criu_core.procfs.status import ProcStatus
from criu_core.ptrace import RemoteTask
from criu_core.records import dataclass, field
from criu_core.sys.proc import PR_GET_PDEATHSIG, PR_GET_SECUREBITS, PR_GET_TID_ADDRESS, get_robust_list
from criu_core.sys.structs import StackT, UserRegs

__all__ = ["GDT_ENTRY_TLS_MIN", "ThreadState", "collect_thread", "creds_fields", "regs_fields"]

GDT_ENTRY_TLS_MIN = 12
_CAP_WORDS = 2


@dataclass
class ThreadState:
    """What one thread contributes to the images (plain values; :mod:`criu_core.dump` builds the messages)."""

    tid: int
    raw_regs: UserRegs
    regs: dict[str, int]
    fpregs: dict[str, Any]
    xsave: dict[str, Any]
    sigmask: int
    clear_tid_addr: int
    futex_rla: int
    futex_rla_len: int
    sas: tuple[int, int, int]
    pdeath_sig: int
    signals_p: list[bytes]
    creds: dict[str, Any]
    sched: dict[str, int]
    comm: str
    rseq: tuple[int, int, int, int] | None  # pointer, size, signature, rseq_cs pointer (0: none)
    seccomp_mode: int
    seccomp_filters: list[bytes] = field(default_factory=list)  # newest first


def regs_fields(regs: UserRegs) -> dict[str, int]:
    """``user_x86_regs_entry`` fields from raw registers, with CRIU's syscall-restart rewrite applied
    (reference §3 / images §4.3) but ``orig_ax`` kept as dumped, as CRIU does."""
    fixed = restart_fixup(regs.copy())
    names = {
        "rbp": "bp",
        "rbx": "bx",
        "rax": "ax",
        "rcx": "cx",
        "rdx": "dx",
        "rsi": "si",
        "rdi": "di",
        "rip": "ip",
        "rsp": "sp",
        "eflags": "flags",
        "orig_rax": "orig_ax",
    }
    out = {names.get(n, n): getattr(fixed, n) for n, _ in UserRegs._fields_}
    out["orig_ax"] = regs.orig_rax
    return out


def _cap_words(value: int) -> list[int]:
    return [(value >> (32 * i)) & 0xFFFFFFFF for i in range(_CAP_WORDS)]


def creds_fields(st: ProcStatus, secbits: int) -> dict[str, Any]:
    """``creds_entry`` fields from /proc/PID/task/TID/status."""
    return {
        "uid": st.uids[0],
        "euid": st.uids[1],
        "suid": st.uids[2],
        "fsuid": st.uids[3],
        "gid": st.gids[0],
        "egid": st.gids[1],
        "sgid": st.gids[2],
        "fsgid": st.gids[3],
        "cap_inh": _cap_words(st.cap_inh),
        "cap_prm": _cap_words(st.cap_prm),
        "cap_eff": _cap_words(st.cap_eff),
        "cap_bnd": _cap_words(st.cap_bnd),
        "cap_amb": _cap_words(st.cap_amb),
        "secbits": secbits,
        "groups": list(st.groups),
        "no_new_privs": st.no_new_privs,
    }


RSEQ_CS_FLAG_NO_RESTART_ON_SIGNAL = 1 << 1


def read_rseq_cs(task: RemoteTask, rseq_ptr: int) -> tuple[int, tuple[int, int, int, int] | None]:
    """``rseq->rseq_cs`` and the descriptor it points to: (pointer, (flags, start_ip, post_commit_offset,
    abort_ip)), (0, None) when none. Must run before any syscall is injected into the thread: the kernel clears
    ``rseq_cs`` on the way back to user space from one (the injection ip is outside the critical section).

    ``struct rseq`` (linux/rseq.h): u32 cpu_id_start, u32 cpu_id, u64 rseq_cs, ...; ``struct rseq_cs``: u32
    version, u32 flags, u64 start_ip, u64 post_commit_offset, u64 abort_ip.
    """
    try:
        (cs_ptr,) = struct.unpack("<Q", task.read_mem(rseq_ptr + 8, 8))
        if not cs_ptr:
            return 0, None
        _version, flags, start_ip, post_commit, abort_ip = struct.unpack("<IIQQQ", task.read_mem(cs_ptr, 32))
    except CriuError:
        return 0, None
    return cs_ptr, (flags, start_ip, post_commit, abort_ip)


def rseq_fixup(desc: tuple[int, int, int, int] | None, regs: dict[str, int]) -> None:
    """A thread frozen inside an rseq critical section resumes at its abort handler, as the kernel would make it
    on signal delivery (CRIU's fixup_thread_rseq). Only the image's ``regs`` change, not the thread's."""
    if desc is None:
        return
    flags, start_ip, post_commit, abort_ip = desc
    if start_ip <= regs["ip"] < start_ip + post_commit and not flags & RSEQ_CS_FLAG_NO_RESTART_ON_SIGNAL:
        regs["ip"] = abort_ip


def collect_thread(task: RemoteTask, scratch: int, procfs: ProcFS, rseq_cs: tuple | None = None) -> ThreadState:
    """Read one frozen thread. ``scratch`` is a page of the process's memory for injected results.

    Must run before anything else modifies the thread's registers (it reads them raw first).
    """
    tid, pid = task.tid, task.pid
    raw = task.get_regs()
    area = task.get_xstate()
    fp, xs = fpregs_fields(area)
    sigmask = task.get_sigmask()
    rseq_conf = task.get_rseq_config()
    if rseq_cs is not None:
        cs_ptr, cs_desc = rseq_cs
    else:
        cs_ptr, cs_desc = read_rseq_cs(task, rseq_conf.rseq_abi_pointer) if rseq_conf.rseq_abi_pointer else (0, None)
    signals_p = task.peek_siginfo(shared=False)

    task.syscall("prctl", PR_GET_TID_ADDRESS, scratch)
    (clear_tid,) = struct.unpack("<Q", task.read_mem(scratch, 8))
    task.syscall("sigaltstack", 0, scratch)
    ss = StackT.from_buffer_copy(task.read_mem(scratch, 24))
    task.syscall("prctl", PR_GET_PDEATHSIG, scratch)
    (pdeath,) = struct.unpack("<i", task.read_mem(scratch, 4))
    secbits = task.syscall("prctl", PR_GET_SECUREBITS)
    head, length = get_robust_list(tid)
    if cs_ptr:
        # The syscalls above made the kernel clear rseq->rseq_cs; put it back so that a thread left running
        # (--leave-running, or a failed dump) is still inside an armed critical section.
        task.write_mem(rseq_conf.rseq_abi_pointer + 8, struct.pack("<Q", cs_ptr))

    status = procfs.status(pid, tid)
    stat = procfs.stat(pid, tid)
    policy = stat.fields.get("policy", 0)
    sched = {"nice": stat.fields.get("nice", 0), "policy": policy, "prio": stat.fields.get("rt_priority", 0)}
    comm = procfs.read_text(pid, "task", tid, "comm").rstrip("\n")
    regs = regs_fields(raw)
    rseq = None
    if rseq_conf.rseq_abi_pointer:
        rseq_fixup(cs_desc, regs)
        rseq = (rseq_conf.rseq_abi_pointer, rseq_conf.rseq_abi_size, rseq_conf.signature, cs_ptr)
    filters: list[bytes] = []
    if status.seccomp == 2:
        from criu_core.sys.ptrace import seccomp_get_filter

        i = 0
        while (prog := seccomp_get_filter(tid, i)) is not None:
            filters.append(prog)
            i += 1
    return ThreadState(
        tid=tid,
        raw_regs=raw,
        regs=regs,
        fpregs=fp,
        xsave=xs,
        sigmask=sigmask,
        clear_tid_addr=clear_tid,
        futex_rla=head,
        futex_rla_len=length,
        sas=(ss.ss_sp, ss.ss_size, ss.ss_flags & 0xFFFFFFFF),
        pdeath_sig=pdeath,
        signals_p=signals_p,
        creds=creds_fields(status, secbits),
        sched=sched,
        comm=comm,
        rseq=rseq,
        seccomp_mode=status.seccomp,
        seccomp_filters=filters,
    )
