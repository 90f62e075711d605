"""Live tests of the tracer core against real C targets."""

from __future__ import annotations

import ctypes
import itertools
import os
import signal
import time

import pytest

from criu_core.arch.x86_64.regs import signed
from criu_core.errors import AccessDenied, PidInUse
from criu_core.procfs import ProcFS
from criu_core.ptrace import fork_child_in, make_seed, seize_tree
from criu_core.sys import ptrace as pt
from criu_core.sys.proc import WALL
from criu_core.sys.structs import KernelSigaction

pytestmark = pytest.mark.live


def _counter_n(lines: list[str]) -> int:
    return int(lines[-1].split("n=")[1].split()[0]) if lines and "n=" in lines[-1] else -1


def test_seize_inject_release_counter(spawn) -> None:
    t = spawn("counter")
    t.wait_output(lambda ls: len(ls) >= 3)
    tree = seize_tree(t.pid)
    try:
        assert list(tree.processes) == [t.pid]
        task = tree.leader(t.pid)
        status = ProcFS().status(t.pid)
        assert status.state == "t"  # tracing stop
        regs = task.get_regs()
        assert regs.rip != 0 and regs.rsp != 0
        assert len(task.get_xstate()) >= 512 + 64
        mask_before = task.get_sigmask()
        frozen_n = _counter_n(t.lines())
        assert task.syscall("getpid") == t.pid
        assert task.syscall("gettid") == t.pid
        brk = task.syscall("brk", 0)
        heap = [m for m in ProcFS().maps(t.pid) if m.name == "[heap]"]
        assert heap and brk == heap[0].end
        with task.scratch() as addr:
            task.syscall("rt_sigaction", signal.SIGUSR1, 0, addr, 8)
            act = KernelSigaction.from_buffer_copy(task.read_mem(addr, ctypes.sizeof(KernelSigaction)))
            assert act.sa_handler > 0x1000
            assert act.sa_flags & 0x10000000  # SA_RESTART
            task.write_mem(addr, b"hello")
            assert task.read_mem(addr, 5) == b"hello"
        with pytest.raises(Exception) as ei:
            task.syscall("close", 12345)
        assert getattr(ei.value, "errno", None) == 9  # EBADF
        assert task.syscall("close", 12345, check=False) == -9
        # the regs are unchanged after injection
        assert bytes(task.get_regs()) == bytes(regs)
        time.sleep(0.1)
        assert _counter_n(t.lines()) == frozen_n  # really frozen
    finally:
        tree.release()
    assert ProcFS().status(t.pid).sigblk == mask_before
    n0 = _counter_n(t.lines())
    t.wait_output(lambda ls: _counter_n(ls) >= n0 + 5)
    # behaviour unchanged: the handler still works and the counter still steps by one
    os.kill(t.pid, signal.SIGUSR1)
    lines = t.wait_output(lambda ls: "usr1=1" in ls[-1])
    ns = [_counter_n([x]) for x in lines]
    assert all(b == a + 1 for a, b in itertools.pairwise(ns))
    assert all(f"pid={t.pid}" in x for x in lines)


def test_seize_twice_is_access_denied(spawn) -> None:
    t = spawn("counter")
    t.wait_output(lambda ls: len(ls) >= 1)
    tree = seize_tree(t.pid)
    try:
        pid = os.fork()
        if pid == 0:  # a second tracer must be refused
            try:
                seize_tree(t.pid)
                os._exit(1)
            except AccessDenied:
                os._exit(0)
            except Exception:  # noqa: BLE001 - any other outcome is a failure code
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        tree.release()
    n0 = _counter_n(t.lines())
    t.wait_output(lambda ls: _counter_n(ls) > n0)


def test_multithreaded_seize_and_release(spawn) -> None:
    t = spawn("threads", "6")
    t.wait_output(lambda ls: len(ls) >= 2)
    tree = seize_tree(t.pid)
    try:
        tids = tree.processes[t.pid]
        assert len(tids) == 7 and tids[0] == t.pid
        assert sorted(tids) == sorted(ProcFS().tids(t.pid))
        for tid in tids:
            assert ProcFS().stat(t.pid, tid).state == "t"
            task = tree.tasks[tid]
            assert task.syscall("gettid") == tid
        sums = t.lines()[-1]
        time.sleep(0.1)
        assert t.lines()[-1] == sums
    finally:
        tree.release()
    s0 = t.lines()[-1]
    t.wait_output(lambda ls: ls[-1] != s0)


def test_seize_races_thread_creation(spawn) -> None:
    t = spawn("spawner")
    t.wait_output(lambda ls: ls == ["ready"])
    time.sleep(0.05)
    for _ in range(5):
        tree = seize_tree(t.pid)
        try:
            # every thread that exists now is frozen by us
            live = ProcFS().tids(t.pid)
            assert set(live) <= set(tree.tasks)
            for tid in live:
                assert ProcFS().stat(t.pid, tid).state == "t", tid
        finally:
            tree.release()
        time.sleep(0.02)
    assert t.proc.poll() is None


def test_seize_tree_of_processes(spawn) -> None:
    t = spawn("forker")
    t.wait_output(lambda ls: ls == ["ready"])
    time.sleep(0.05)
    tree = seize_tree(t.pid)
    try:
        assert len(tree.processes) == 5
        assert next(iter(tree.processes)) == t.pid
        for pid in tree.processes:
            if pid != t.pid:
                assert tree.parents[pid] in tree.processes
    finally:
        tree.release()


def test_kill_multithreaded_reaps_without_hang(spawn) -> None:
    t = spawn("threads", "8")
    t.wait_output(lambda ls: len(ls) >= 1)
    tree = seize_tree(t.pid)
    start = time.monotonic()
    tree.kill()
    assert time.monotonic() - start < 5
    assert not os.path.exists(f"/proc/{t.pid}")


def test_kill_tree_reaps_everything(spawn) -> None:
    t = spawn("forker")
    t.wait_output(lambda ls: ls == ["ready"])
    time.sleep(0.05)
    tree = seize_tree(t.pid)
    pids = list(tree.processes)
    tree.kill()
    time.sleep(0.05)
    for pid in pids:
        # reaped by us (tracer / subreaper): nothing left, not even a zombie
        assert not os.path.exists(f"/proc/{pid}") or ProcFS().stat(pid).state != "Z"


def _kill_seed(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, WALL)


def test_make_seed_with_chosen_pid(at_free_pid) -> None:
    seed = at_free_pid(make_seed)
    want = seed.pid
    try:
        assert seed.pid == want == seed.tid
        assert ProcFS().status(want).tracer_pid == os.getpid()
        assert ProcFS().status(want).ppid == os.getpid()
        assert seed.syscall("getpid") == want
        assert seed.syscall("getppid") == os.getpid()
        # KILL/STOP are never blocked; the single-step SIGTRAP is forced, which unblocks SIGTRAP
        assert pt.getsigmask(want) | (1 << 4) == pt.SIGSET_ALL & ~((1 << 8) | (1 << 18))
    finally:
        _kill_seed(want)


def test_make_seed_pid_in_use() -> None:
    with pytest.raises(PidInUse) as ei:
        make_seed(os.getpid())
    assert ei.value.pid == os.getpid()


def test_fork_child_in_seed(at_free_pid) -> None:
    seed = at_free_pid(make_seed)
    parent_pid = seed.pid
    try:
        child = at_free_pid(lambda pid: fork_child_in(seed, pid))
        child_pid = child.pid
        assert child.pid == child_pid
        assert child.syscall("getpid") == child_pid
        assert child.syscall("getppid") == parent_pid
        assert seed.syscall("getpid") == parent_pid
        with pytest.raises(PidInUse):
            fork_child_in(seed, child_pid)
        _kill_seed_child(child_pid)
    finally:
        _kill_seed(parent_pid)


def _kill_seed_child(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, WALL)


def test_restart_fixup_on_live_sleep(spawn) -> None:
    t = spawn("counter")
    t.wait_output(lambda ls: len(ls) >= 2)
    tree = seize_tree(t.pid)
    try:
        regs = tree.leader(t.pid).get_regs()
        # the counter spends nearly all its time in clock_nanosleep (230), interrupted: -ERESTART_RESTARTBLOCK
        if signed(regs.orig_rax) == 230:
            assert signed(regs.rax) in (-516, -4)
    finally:
        tree.release()


def test_trampoline_mode_and_cost(at_free_pid) -> None:
    from criu_core.ptrace.task import MAP_ANONYMOUS, MAP_PRIVATE, PROT_EXEC, PROT_READ

    seed = at_free_pid(make_seed)
    pid = seed.pid
    try:
        n = 300
        t0 = time.perf_counter()
        for _ in range(n):
            seed.syscall("getpid")
        step = (time.perf_counter() - t0) / n
        page = seed.syscall("mmap", 0, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        seed.install_trampoline(page)
        t0 = time.perf_counter()
        for _ in range(n):
            assert seed.syscall("getpid") == pid
        tramp = (time.perf_counter() - t0) / n
        seed.remove_trampoline()
        seed.syscall("munmap", page, 4096)
        assert seed.syscall("getpid") == pid
        print(f"injected getpid: syscall stops {step * 1e6:.1f} us, tramp {tramp * 1e6:.1f} us")  # figures: bench/
    finally:
        _kill_seed(pid)


def test_injection_keeps_an_ignored_sigtrap(spawn) -> None:
    """A single-step trap is a forced SIGTRAP, and forcing an ignored (or blocked) signal resets its handler to
    SIG_DFL; injection must leave the task's dispositions as they were."""
    t = spawn("trapdisp")
    t.wait_output(lambda ls: ls == ["ready"])
    before = ProcFS().status(t.pid)
    assert before.sigign & (1 << (signal.SIGTRAP - 1))
    tree = seize_tree(t.pid)
    try:
        for _ in range(3):
            tree.leader(t.pid).syscall("getpid")
    finally:
        tree.release()
    after = ProcFS().status(t.pid)
    assert (after.sigign, after.sigcgt) == (before.sigign, before.sigcgt)


@pytest.mark.parametrize(("target", "steps"), [("trapdisp", False), ("traphandled", True)])
def test_seized_tasks_single_step_unless_sigtrap_is_ignored(spawn, monkeypatch, target: str, steps: bool) -> None:
    """A dump's tracees are single-stepped (one stop per injected call) unless they ignore SIGTRAP; a caught and
    blocked SIGTRAP keeps its handler and its place in the mask (it is unblocked only while we inject)."""
    t = spawn(target)
    t.wait_output(lambda ls: ls == ["ready"])
    before = ProcFS().status(t.pid)
    trap = 1 << (signal.SIGTRAP - 1)
    assert (before.sigign if target == "trapdisp" else before.sigcgt & before.sigblk) & trap
    used: list[str] = []
    real_step, real_sys = pt.singlestep, pt.syscall_stop
    monkeypatch.setattr(pt, "singlestep", lambda tid, *a: used.append("step") or real_step(tid, *a))
    monkeypatch.setattr(pt, "syscall_stop", lambda tid, *a: used.append("sys") or real_sys(tid, *a))
    tree = seize_tree(t.pid)
    try:
        for _ in range(3):
            assert tree.leader(t.pid).syscall("getpid") == t.pid
    finally:
        tree.release()
    assert used == (["step"] * 3 if steps else ["sys"] * 6)
    after = ProcFS().status(t.pid)
    assert (after.sigign, after.sigcgt, after.sigblk) == (before.sigign, before.sigcgt, before.sigblk)


def _status_mask(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1], 16)
    raise AssertionError(field)


def test_own_sigactions_match_proc_status() -> None:
    from criu_core.sys.clone import own_sigactions

    old = signal.signal(signal.SIGUSR2, lambda *_: None)
    try:
        acts = own_sigactions()
        assert set(acts) == set(range(1, 65)) - {9, 19}
        ignored = sum(1 << (s - 1) for s, a in acts.items() if a[0] == 1)
        caught = sum(1 << (s - 1) for s, a in acts.items() if a[0] > 1)
        assert (ignored, caught) == (_status_mask("SigIgn"), _status_mask("SigCgt"))
        assert acts[signal.SIGUSR2][0] > 1
    finally:
        signal.signal(signal.SIGUSR2, old)
    assert own_sigactions()[signal.SIGUSR2] != acts[signal.SIGUSR2]


def test_seed_inherits_the_dispositions_it_says(at_free_pid) -> None:
    """What make_seed records as the seed's dispositions is what the kernel holds for it (queried inside the
    seed): restore_sigactions skips the signals whose dumped action equals it."""
    old = signal.signal(signal.SIGUSR2, lambda *_: None)  # a caught signal, with libc's restorer
    try:
        seed = at_free_pid(make_seed)
    finally:
        signal.signal(signal.SIGUSR2, old)
    try:
        inherited = seed.inherited_sigactions
        assert inherited is not None and inherited[signal.SIGUSR2][0] > 1
        size = ctypes.sizeof(KernelSigaction)
        with seed.scratch() as at:
            for sig, act in inherited.items():
                seed.syscall("rt_sigaction", sig, 0, at, 8)
                got = KernelSigaction.from_buffer_copy(seed.read_mem(at, size))
                assert (got.sa_handler, got.sa_flags, got.sa_restorer, got.sa_mask) == act, sig
    finally:
        _kill_seed(seed.pid)
