"""RemoteTask: one stopped, traced thread, and system calls injected into it.

Injection: save the registers, point ``rip`` at a ``syscall`` instruction (a ``0f 05`` pair in the task's
``[vdso]`` by default), load the number and arguments, run it, read ``rax``, put the registers back. Nothing is
written into the task's code. How "run it" works:

* **syscall stops** (default when the tracee has PTRACE_O_TRACESYSGOOD, as every seed has, and the tracees of
  seize_tree that ignore SIGTRAP): PTRACE_SYSCALL to the syscall-entry stop, again to the syscall-exit stop.
  No signal is generated. About 20-45 us per call on the project's machine (two stops).
* **step** (reference §6; tracees without TRACESYSGOOD, and those of seize_tree whose SIGTRAP is not
  ignored): PTRACE_SINGLESTEP, result at the SIGTRAP after the
  syscall's exit. The trap is a *forced* SIGTRAP: the kernel resets the handler of a forced signal that is
  ignored or blocked to SIG_DFL (force_sig_info_to_task), so a task ignoring SIGTRAP would lose that.
* **tramp** (:meth:`RemoteTask.install_trampoline`): ``syscall; int3`` in a page of ours and PTRACE_CONT; about
  20 us, same forced-SIGTRAP caveat as step (fine in a seed whose dispositions are all set afterwards).

Every signal but SIGTRAP is blocked in the thread while it runs (P6); the original mask is kept in
:attr:`RemoteTask.saved_sigmask` and put back by :meth:`RemoteTask.restore_state`. Cross-CPU wake-ups dominate
the cost on this VM: pinning tracer and tracee to one CPU brings a call down to about 19 us.
"""

from __future__ import annotations

import errno as _errno
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

from criu_core.arch.x86_64.regs import kernel_restart, set_syscall, signed
from criu_core.arch.x86_64.syscalls import NAMES
from criu_core.arch.x86_64.syscalls import nr as _nr
from criu_core.arch.x86_64.vdso import find_syscall_insn
from criu_core.errors import CriuError, NoSuchProcess, SyscallError
from criu_core.procfs import ProcFS
from criu_core.ptrace.events import Stop, wait_tid
from criu_core.sys import ptrace as pt
from criu_core.sys.proc import tgkill
from criu_core.sys.structs import RseqConfig, UserRegs

__all__ = ["MAP_ANONYMOUS", "MAP_PRIVATE", "PAGE_SIZE", "PROT_EXEC", "PROT_READ", "PROT_WRITE", "RemoteTask"]

PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS = 1, 2, 0x10, 0x20
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

_SIGTRAP = int(signal.SIGTRAP)
_SIGSTOP = int(signal.SIGSTOP)
_SYSCALL_STOP = _SIGTRAP | 0x80  # WSTOPSIG of a syscall stop with PTRACE_O_TRACESYSGOOD
_FAULTS = (int(signal.SIGSEGV), int(signal.SIGBUS), int(signal.SIGILL), int(signal.SIGFPE))
_NEW_TASK_EVENTS = (pt.PTRACE_EVENT_FORK, pt.PTRACE_EVENT_VFORK, pt.PTRACE_EVENT_CLONE)


class RemoteTask:
    """A traced thread in a ptrace-stop. ``tid`` is the thread, ``pid`` its thread group.

    State kept for the way back: :attr:`saved_regs` / :attr:`saved_sigmask` (as at the first change we made),
    :attr:`stashed_signals` (siginfos of signals the tracer swallowed while the task stopped for us; 128 bytes
    each) and :attr:`new_tasks` (tids announced by PTRACE_EVENT_CLONE/FORK stops during injected syscalls, not
    yet collected with :meth:`wait_new_task`).
    """

    def __init__(
        self, tid: int, pid: int | None = None, *, procfs: ProcFS | None = None, options: int | None = None
    ) -> None:
        self.tid = tid
        self.pid = pid if pid is not None else tid
        self.procfs = procfs or ProcFS()
        self.syscall_ip: int | None = None
        self.trampoline: int | None = None
        # ptrace options of this tracee when known (seize_tree and the seeds set them). With
        # PTRACE_O_TRACESYSGOOD, injected syscalls run between syscall-entry and syscall-exit stops
        # (PTRACE_SYSCALL) instead of single-stepping: a single-step trap is a *forced* SIGTRAP, and the kernel
        # resets the handler of a forced signal that is ignored or blocked to SIG_DFL (force_sig_info_to_task),
        # which would silently change a task that ignores SIGTRAP.
        self.options = options
        # signal -> (handler, flags, restorer, mask) the task had when it was made, where its maker knows
        # them (make_seed: a copy of the restorer's); None otherwise. Consumed by restore_sigactions.
        self.inherited_sigactions: dict[int, tuple[int, int, int, int]] | None = None
        # Set by seize_tree (a dump: nothing sets a disposition while it holds the tree): single-step unless the
        # task ignores SIGTRAP (one stop per injected call instead of two); see _use_syscall_stops.
        self.step_unless_trap_ignored = False
        self._trap_ignored: bool | None = None
        self.saved_regs: UserRegs | None = None
        self.saved_sigmask: int | None = None
        self.stashed_signals: list[bytes] = []
        self.requeued_signals: list[bytes] = []
        self.new_tasks: list[int] = []
        self.group_stop_sig = 0
        self.injected = 0
        self._mem_fd: int | None = None
        self._blocked = False

    def __repr__(self) -> str:
        return f"<RemoteTask tid={self.tid} pid={self.pid}>"

    # -- registers and masks ----------------------------------------------------------------------------------

    def get_regs(self) -> UserRegs:
        return pt.getregs(self.tid)

    def set_regs(self, regs: UserRegs) -> None:
        """Set the registers (remembering the original ones first, for :meth:`restore_state`)."""
        self.remember_regs()
        pt.setregs(self.tid, regs)

    def get_xstate(self) -> bytes:
        """The NT_X86_XSTATE area; its length is whatever the kernel returned (2,432 bytes here)."""
        return pt.getregset(self.tid, pt.NT_X86_XSTATE)

    def set_xstate(self, data: bytes) -> None:
        pt.setregset(self.tid, data, pt.NT_X86_XSTATE)

    def get_sigmask(self) -> int:
        """The blocked mask. While signals are blocked for injection this is the *saved* (real) mask."""
        if self._blocked and self.saved_sigmask is not None:
            return self.saved_sigmask
        return pt.getsigmask(self.tid)

    def set_sigmask(self, mask: int) -> None:
        """Set the real blocked mask now (ends the injection blocking; the next syscall() blocks again)."""
        pt.setsigmask(self.tid, mask)
        self._blocked = False

    def get_rseq_config(self) -> RseqConfig:
        return pt.get_rseq_configuration(self.tid)

    def get_siginfo(self) -> bytes:
        return pt.getsiginfo(self.tid)

    def peek_siginfo(self, *, shared: bool) -> list[bytes]:
        """Queued signals (raw 128-byte siginfos) of this thread (``shared=False``) or its process."""
        return pt.peeksiginfo(self.tid, shared=shared)

    def remember_regs(self) -> None:
        if self.saved_regs is None:
            self.saved_regs = self.get_regs()

    def block_signals(self) -> None:
        """Block every signal in the thread (P6), remembering the real mask once."""
        if self._blocked:
            return
        if self.saved_sigmask is None:
            self.saved_sigmask = pt.getsigmask(self.tid)
        # Not SIGTRAP: a single-step trap is a forced signal, and forcing a blocked signal resets the task's
        # handler to SIG_DFL (kernel force_sig_info_to_task); a task's own SIGTRAP handler would be lost.
        pt.setsigmask(self.tid, pt.SIGSET_ALL & ~(1 << (signal.SIGTRAP - 1)))
        self._blocked = True

    def restore_state(self) -> None:
        """Put back the registers and signal mask as they were before criu-core touched them."""
        if self.saved_regs is not None:
            pt.setregs(self.tid, self.saved_regs)
        if self.saved_sigmask is not None:
            pt.setsigmask(self.tid, self.saved_sigmask)
            self._blocked = False

    # -- memory -----------------------------------------------------------------------------------------------

    def _mem(self) -> int:
        if self._mem_fd is None:
            try:
                self._mem_fd = os.open(f"/proc/{self.tid}/mem", os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError as e:
                raise NoSuchProcess(self.tid) from e
        return self._mem_fd

    def read_mem(self, addr: int, size: int) -> bytes:
        """Read through ``/proc/PID/mem`` (FOLL_FORCE: works on PROT_NONE and read-only mappings)."""
        out = bytearray()
        while len(out) < size:
            try:
                chunk = os.pread(self._mem(), size - len(out), addr + len(out))
            except OSError as e:
                raise SyscallError(e.errno or _errno.EIO, "pread(/proc/PID/mem)", self.tid, f"at {addr:#x}") from e
            if not chunk:
                raise SyscallError(_errno.EIO, "pread(/proc/PID/mem)", self.tid, f"short read at {addr:#x}")
            out += chunk
        return bytes(out)

    def write_mem(self, addr: int, data: bytes) -> None:
        """Write through ``/proc/PID/mem`` (FOLL_FORCE on this kernel: ignores the mapping's protection)."""
        view = memoryview(data)
        done = 0
        while done < len(view):
            try:
                n = os.pwrite(self._mem(), view[done:], addr + done)
            except OSError as e:
                raise SyscallError(e.errno or _errno.EIO, "pwrite(/proc/PID/mem)", self.tid, f"at {addr:#x}") from e
            if n <= 0:
                raise SyscallError(_errno.EIO, "pwrite(/proc/PID/mem)", self.tid, f"short write at {addr:#x}")
            done += n

    def close(self) -> None:
        if self._mem_fd is not None:
            os.close(self._mem_fd)
            self._mem_fd = None

    # -- injection --------------------------------------------------------------------------------------------

    def find_syscall_ip(self, name: str = "[vdso]") -> int:
        """Locate a ``0f 05`` in mapping ``name`` (default ``[vdso]``), falling back to any executable mapping."""
        maps = self.procfs.maps(self.pid)
        candidates = [m for m in maps if m.name == name] + [m for m in maps if m.executable and m.name != name]
        for m in candidates:
            if m.name == "[vsyscall]":
                continue
            try:
                ip = find_syscall_insn(self.read_mem(m.start, m.size), m.start)
            except SyscallError:
                continue
            if ip is not None:
                return ip
        raise CriuError(f"no syscall instruction found in the executable mappings of task {self.tid}", pid=self.tid)

    def syscall(self, nr: int | str, *args: int, check: bool = True) -> int:
        """Run one system call inside the task and return its (signed) result.

        A result in [-4095, -1] raises ``SyscallError(errno, name, tid)`` unless ``check=False``, which returns
        the negative errno. The registers are restored afterwards; PTRACE_EVENT_CLONE/FORK/VFORK stops on the way
        append the new tid to :attr:`new_tasks` (collect it with :meth:`wait_new_task`).
        """
        number = _nr(nr)
        name = nr if isinstance(nr, str) else NAMES.get(nr, str(nr))
        sysstops = False
        if self.trampoline is not None:
            ip, resume, done_at = self.trampoline, pt.cont, self.trampoline + 3
        else:
            if self.syscall_ip is None:
                self.syscall_ip = self.find_syscall_ip()
            ip, resume, done_at = self.syscall_ip, pt.singlestep, self.syscall_ip + 2
            if self._use_syscall_stops():
                resume, sysstops = pt.syscall_stop, True
        entered = False
        self.block_signals()
        orig = self.get_regs()
        regs = orig.copy()
        set_syscall(regs, ip, number, tuple(args))
        pt.setregs(self.tid, regs)
        alive = True
        try:
            resume(self.tid)
            while True:
                st = self._wait()
                if st.gone:
                    alive = False
                    raise NoSuchProcess(self.tid, f"task {self.tid} died during injected {name}")
                if st.kind == "event":
                    if st.event in _NEW_TASK_EVENTS:
                        self.new_tasks.append(pt.geteventmsg(self.tid))
                    resume(self.tid)
                    continue
                if sysstops and st.sig == _SYSCALL_STOP:
                    if not entered:  # syscall-entry stop: let it run to the exit stop
                        entered = True
                        resume(self.tid)
                        continue
                    after = self.get_regs()
                    break
                if st.sig == _SIGTRAP and not sysstops:
                    after = self.get_regs()
                    if after.rip == done_at:
                        break
                    # restarted by the kernel (rip back on the insn): run it again
                    resume(self.tid)
                    continue
                if st.sig in _FAULTS:
                    raise CriuError(
                        f"injected {name} in task {self.tid} faulted with signal {st.sig}", pid=self.tid, signal=st.sig
                    )
                # An unblockable signal (SIGSTOP): keep it for later, do not deliver it now.
                self.stashed_signals.append(self.get_siginfo())
                resume(self.tid)
        finally:
            if alive:
                pt.setregs(self.tid, orig)
        self.injected += 1
        ret = signed(after.rax)
        if check and -4096 < ret < 0:
            raise SyscallError(-ret, name, self.tid)
        return ret

    def _use_syscall_stops(self) -> bool:
        """Inject between syscall stops (two stops) rather than single-step (one): with TRACESYSGOOD, unless
        :attr:`step_unless_trap_ignored` and the task does not ignore SIGTRAP. A single-step trap is a forced
        SIGTRAP, which resets the handler only of an ignored or blocked SIGTRAP (force_sig_info_to_task), and
        SIGTRAP is never blocked while we inject (block_signals)."""
        if self.options is None or not self.options & pt.PTRACE_O_TRACESYSGOOD:
            return False
        if not self.step_unless_trap_ignored:
            return True
        if self._trap_ignored is None:
            sigign = self.procfs.status(self.pid, self.tid).sigign
            self._trap_ignored = bool(sigign & (1 << (signal.SIGTRAP - 1)))
        return self._trap_ignored

    def _wait(self) -> Stop:
        st = wait_tid(self.tid)
        assert st is not None
        return st

    def install_trampoline(self, addr: int) -> None:
        """Switch to "tramp" mode: write ``syscall; int3`` (``0f 05 cc``) at ``addr`` (in an executable page; the
        write goes through /proc/PID/mem, so the page need not be writable) and inject with PTRACE_CONT
        instead of single-stepping. Call :meth:`remove_trampoline` (or just set ``trampoline = None``) before
        unmapping that page."""
        self.write_mem(addr, b"\x0f\x05\xcc")
        self.trampoline = addr

    def remove_trampoline(self) -> None:
        """Back to "step" mode (the default)."""
        self.trampoline = None

    @contextmanager
    def scratch(self, size: int = PAGE_SIZE, prot: int = PROT_READ | PROT_WRITE) -> Iterator[int]:
        """Map an anonymous private area in the task for the duration of the block; yields its address."""
        size = (size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        addr = self.syscall("mmap", 0, size, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        try:
            yield addr
        finally:
            self.syscall("munmap", addr, size, check=False)

    # -- new tasks, resume ------------------------------------------------------------------------------------

    def wait_new_task(self, tid: int | None = None, timeout: float = 10.0) -> RemoteTask:
        """Collect the first stop of a task created by an injected clone3/fork and wrap it.

        The new task is auto-attached (TRACECLONE/TRACEFORK) and comes up stopped: PTRACE_EVENT_STOP for a
        seized parent, a SIGSTOP signal-delivery-stop otherwise. Its signals are blocked at once.
        """
        if tid is None:
            tid = self.new_tasks[-1]
        deadline = time.monotonic() + timeout
        delay = 0.0001
        while True:
            st = wait_tid(tid, nohang=True)
            if st is not None:
                break
            if time.monotonic() > deadline:
                raise CriuError(f"new task {tid} did not stop within {timeout}s", pid=tid)
            time.sleep(delay)
            delay = min(delay * 2, 0.01)
        if st.gone:
            raise NoSuchProcess(tid, f"new task {tid} exited at once")
        if tid in self.new_tasks:
            self.new_tasks.remove(tid)
        tgid = self.procfs.status(tid).tgid
        task = RemoteTask(tid, tgid, procfs=self.procfs, options=self.options)  # options are inherited
        if tgid == self.pid:
            task.syscall_ip = self.syscall_ip  # same mm
        elif self.syscall_ip is not None:
            task.syscall_ip = self.syscall_ip  # a fork has the same layout at that instant
        if st.kind == "event" and st.event == pt.PTRACE_EVENT_STOP and st.sig != _SIGTRAP:
            task.group_stop_sig = st.sig
        task.block_signals()
        return task

    @contextmanager
    def running(self, timeout: float = 10.0) -> Iterator[None]:
        """Let this thread run for the duration of the block, then stop it again (CRIU's CUDA plugin:
        resume_restore_thread / interrupt_restore_thread).

        The thread gets its own registers back first (any injection state is dropped: it moves on from where it
        stopped), every signal but SIGTRAP is blocked, and its ptrace options are cleared (no SUSPEND_SECCOMP:
        its own seccomp filter applies; no TRACECLONE, as in CRIU) before PTRACE_CONT. Afterwards
        PTRACE_INTERRUPT, the stop is collected, the options and the real signal mask are put back. Registers
        read before the block are stale after it.
        """
        regs = self.saved_regs if self.saved_regs is not None else self.get_regs()
        # the thread may sit in the syscall-exit stop of an injected call, where the kernel would skip the restart
        # of the syscall we interrupted: do it in the registers (and make sure the kernel does not do it again)
        pt.setregs(self.tid, kernel_restart(regs.copy()))
        self.saved_regs = None
        real_mask = self.saved_sigmask if self._blocked and self.saved_sigmask is not None else pt.getsigmask(self.tid)
        pt.setsigmask(self.tid, pt.SIGSET_ALL & ~(1 << (_SIGTRAP - 1)))
        if self.options is not None:
            pt.setoptions(self.tid, 0)
        pt.cont(self.tid, 0)
        try:
            yield
        finally:
            self._stop_again(timeout)
            if self.options is not None:
                pt.setoptions(self.tid, self.options)
            pt.setsigmask(self.tid, real_mask)
            self.saved_sigmask = real_mask
            self._blocked = False

    def _stop_again(self, timeout: float) -> None:
        """PTRACE_INTERRUPT a running thread and collect its interrupt stop; a signal that stops it first (only
        unblockable ones or SIGTRAP can) is kept in :attr:`stashed_signals` and suppressed.

        A tracee attached the old way (a restore seed: PTRACE_TRACEME, and what it forks or clones) cannot be
        interrupted (EIO): it gets a SIGSTOP instead and stays in that signal-delivery-stop, as a new seed does.
        """
        seized = True
        try:
            pt.interrupt(self.tid)
        except SyscallError as exc:
            if exc.errno != _errno.EIO:
                raise
            seized = False
            tgkill(self.pid, self.tid, _SIGSTOP)
        deadline = time.monotonic() + timeout
        delay = 0.0001
        while True:
            st = wait_tid(self.tid, nohang=True)
            if st is None:
                if time.monotonic() > deadline:
                    raise CriuError(f"thread {self.tid} did not stop within {timeout:.0f}s", pid=self.tid)
                time.sleep(delay)
                delay = min(delay * 2, 0.01)
                continue
            if st.gone:
                raise NoSuchProcess(self.tid, f"thread {self.tid} ended while it ran ({st.kind} {st.code or st.sig})")
            if not seized and st.kind == "signal" and st.sig == _SIGSTOP:
                return
            if st.kind == "event" and st.event == pt.PTRACE_EVENT_STOP:
                if st.sig != _SIGTRAP:
                    self.group_stop_sig = st.sig
                return
            if st.kind == "event":
                pt.cont(self.tid, 0)  # another event (its options were cleared: unlikely); the interrupt follows
                continue
            self.stashed_signals.append(pt.getsiginfo(self.tid))
            pt.cont(self.tid, 0)

    def detach(self, sig: int = 0) -> None:
        """PTRACE_DETACH (``sig`` is delivered only from a signal-delivery-stop)."""
        self.close()
        pt.detach(self.tid, sig)

    def cont(self, sig: int = 0) -> None:
        pt.cont(self.tid, sig)
