"""Signals racing the freeze, stopped targets, and seeds made while Python threads run (P13)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from criu_core.procfs import ProcFS
from criu_core.ptrace import clone_thread_in, make_seed, seize_tree
from criu_core.sys import ptrace as pt
from criu_core.sys.proc import WALL

pytestmark = pytest.mark.live


def _count(lines: list[str]) -> int:
    for line in reversed(lines):
        if line.startswith("count="):
            return int(line[6:])
    return -1


def test_no_signal_lost_while_seizing(spawn) -> None:
    """Queue real-time signals while repeatedly freezing and releasing: every one is delivered exactly once."""
    t = spawn("sigcount")
    t.wait_output(lambda ls: ls[:1] == ["ready"])
    rt = signal.SIGRTMIN
    sent = 0
    stop = threading.Event()

    def bomber() -> None:
        nonlocal sent
        while not stop.is_set():
            os.kill(t.pid, rt)
            sent += 1
            if sent % 500 == 0:
                time.sleep(0.001)

    th = threading.Thread(target=bomber)
    th.start()
    requeued = 0
    try:
        for _ in range(200):
            tree = seize_tree(t.pid)
            requeued += sum(len(task.requeued_signals) for task in tree)
            tree.leader(t.pid).syscall("getpid")
            tree.release()
    finally:
        stop.set()
        th.join()
    t.wait_output(lambda ls: _count(ls) == sent, timeout=5)
    print(f"sent={sent} requeued={requeued}")


def test_seize_a_stopped_process(spawn) -> None:
    t = spawn("counter")
    t.wait_output(lambda ls: len(ls) >= 1)
    os.kill(t.pid, signal.SIGSTOP)
    deadline = time.monotonic() + 2
    while ProcFS().stat(t.pid).state != "T" and time.monotonic() < deadline:
        time.sleep(0.01)
    tree = seize_tree(t.pid)
    try:
        task = tree.leader(t.pid)
        assert task.group_stop_sig == signal.SIGSTOP
        assert task.syscall("getpid") == t.pid
    finally:
        tree.release()
    time.sleep(0.05)
    n = len(t.lines())
    time.sleep(0.1)
    assert len(t.lines()) == n  # still stopped after release
    os.kill(t.pid, signal.SIGCONT)
    t.wait_output(lambda ls: len(ls) > n + 2)


def _free_pids(k: int) -> list[int]:
    with open("/proc/sys/kernel/pid_max") as f:
        pid = int(f.read()) - 1
    out = []
    while len(out) < k:
        if not os.path.exists(f"/proc/{pid}"):
            out.append(pid)
        pid -= 1
    return out


def test_seeds_while_python_threads_spin() -> None:
    """clone3 through PyDLL keeps the GIL: the child never deadlocks even with a busy Python thread (P13)."""
    stop = threading.Event()

    def spin() -> None:
        x = 0
        while not stop.is_set():
            x += 1

    th = threading.Thread(target=spin)
    th.start()
    try:
        for pid in _free_pids(10):
            seed = make_seed(pid)
            assert seed.syscall("getpid") == pid
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, WALL)
    finally:
        stop.set()
        th.join()


def test_clone_thread_in_seed() -> None:
    pid, tid = _free_pids(2)
    seed = make_seed(pid)
    try:
        regs = seed.get_regs()
        with seed.scratch() as ctid:
            thread = clone_thread_in(seed, tid, tls=regs.fs_base, child_tid=ctid)
            assert thread.pid == pid and thread.tid == tid
            assert thread.syscall("gettid") == tid
            assert thread.syscall("getpid") == pid
            assert ProcFS().tids(pid) == [pid, tid]
            assert thread.get_regs().fs_base == regs.fs_base
    finally:
        os.kill(pid, signal.SIGKILL)
        # reap the thread first (P4), then the leader
        for t in (tid, pid):
            try:
                os.waitpid(t, WALL)
            except ChildProcessError:
                pass
    assert not os.path.exists(f"/proc/{pid}")


def test_peek_pending_signals_and_seccomp(spawn) -> None:
    t = spawn("pending")
    t.wait_output(lambda ls: ls == ["ready"])
    tree = seize_tree(t.pid)
    try:
        task = tree.leader(t.pid)
        shared = task.peek_siginfo(shared=True)
        private = task.peek_siginfo(shared=False)
        assert [int.from_bytes(s[:4], "little") for s in shared] == [signal.SIGUSR1]
        assert [int.from_bytes(s[:4], "little") for s in private] == [signal.SIGRTMIN] * 2
        # si_value sits at offset 24 for SI_QUEUE (after si_pid, si_uid)
        assert [int.from_bytes(s[24:28], "little") for s in private] == [111, 222]
        assert all(len(s) == 128 for s in shared + private)
        # PTRACE_O_SUSPEND_SECCOMP: the filter does not apply to injected calls
        with task.scratch() as addr:
            assert task.syscall("getitimer", 0, addr) == 0
        prog = pt.seccomp_get_filter(t.pid, 0)
        assert prog is not None and len(prog) == 4 * 8
        assert pt.seccomp_get_filter(t.pid, 1) is None
        assert ProcFS().status(t.pid).seccomp == 2
    finally:
        tree.release()
    # the queue is untouched
    status = ProcFS().status(t.pid)
    assert status.shdpnd & (1 << (signal.SIGUSR1 - 1))
    assert status.sigpnd & (1 << (signal.SIGRTMIN - 1))


def test_without_suspend_seccomp_the_filter_applies(spawn) -> None:
    t = spawn("pending")
    t.wait_output(lambda ls: ls == ["ready"])
    tree = seize_tree(t.pid, suspend_seccomp=False)
    try:
        task = tree.leader(t.pid)
        with task.scratch() as addr:
            assert task.syscall("getitimer", 0, addr, check=False) == -1  # -EPERM
    finally:
        tree.release()
