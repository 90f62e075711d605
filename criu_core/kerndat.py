"""Kernel feature probes behind ``criu-py check`` (CRIU's ``cr-check.c`` and ``kerndat.c``).

Each probe is a small function returning ``(supported, detail)``; it really exercises the interface (a
forked child is seized, read, written and released) instead of reading the kernel version. Probes that
need a live child share one, made by :class:`_Child`.

``run_check`` prints "Looks good." and returns 0 when every *required* feature is there (the ones criu-core's
dump and restore cannot work without); otherwise it logs each missing one and raises
:class:`~criu_core.errors.KernelFeatureMissing` naming them. ``--all`` (or ``--extra``) also checks the
optional ones and warns, as CRIU does, "Dirty tracking is OFF" on kernels without soft-dirty. ``--feature
NAME`` checks one feature by CRIU's name where CRIU has one; ``--feature list`` lists them.
Plugins add probes through ``criu_check_features``; a missing plugin feature is a warning, not a failure,
unless asked for by name.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from criu_core.errors import KernelFeatureMissing, SyscallError, UsageError
from criu_core.records import dataclass

if TYPE_CHECKING:
    from criu_core.context import CheckContext

__all__ = ["FEATURES", "Feature", "probe", "run_check"]

Result = tuple[bool, str]
_PATTERN = b"criu-core kerndat probe pattern\0"


@dataclass(frozen=True)
class Feature:
    """One probe: ``required`` features make ``check`` fail; the others are checked with ``--all``."""

    name: str
    required: bool
    needs_child: bool
    func: Callable[..., Result]
    summary: str


class _Child:
    """A forked child that sleeps until killed; its memory holds a known pattern at ``buf.addr``."""

    def __init__(self) -> None:
        from criu_core.sys.probes import Buffer

        self.buf = Buffer(_PATTERN)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                os.close(r)
                os.write(w, b"x")
                os.close(w)
                while True:
                    time.sleep(60)
            finally:
                os._exit(0)
        os.close(w)
        os.read(r, 1)  # the child runs (and holds the pattern) before anyone looks at it
        os.close(r)
        self.pid = pid

    def close(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)


def _seize(child: _Child, options: int) -> None:
    from criu_core.sys import probes as p

    p.ptrace(p.PTRACE_SEIZE, child.pid, 0, options, what="ptrace(PTRACE_SEIZE)")
    p.ptrace(p.PTRACE_INTERRUPT, child.pid, what="ptrace(PTRACE_INTERRUPT)")
    _, status = os.waitpid(child.pid, 0x40000000)  # __WALL
    if not os.WIFSTOPPED(status) or status >> 16 != 128:  # PTRACE_EVENT_STOP
        raise SyscallError(errno.EIO, "waitpid", child.pid, f"unexpected status {status:#x}")


def _detach(child: _Child) -> None:
    from criu_core.sys import probes as p

    p.ptrace(p.PTRACE_DETACH, child.pid, 0, 0, what="ptrace(PTRACE_DETACH)")


# ------------------------------------------------------------------------------------------------ probes


def probe_ptrace_seize(child: _Child) -> Result:
    """PTRACE_SEIZE + PTRACE_INTERRUPT + waitpid(__WALL) + PTRACE_DETACH on a child."""
    _seize(child, 0)
    _detach(child)
    return True, "seize, interrupt, detach"


def probe_seccomp_suspend(child: _Child) -> Result:
    """PTRACE_O_SUSPEND_SECCOMP (CONFIG_CHECKPOINT_RESTORE + CAP_SYS_ADMIN): dump a task under seccomp."""
    from criu_core.sys import probes as p

    _seize(child, p.PTRACE_O_SUSPEND_SECCOMP)
    _detach(child)
    return True, "PTRACE_O_SUSPEND_SECCOMP"


def probe_get_rseq_conf(child: _Child) -> Result:
    """PTRACE_GET_RSEQ_CONFIGURATION (5.13+): where a task registered its rseq area."""
    from criu_core.sys import probes as p

    _seize(child, 0)
    try:
        addr, size, sig = p.get_rseq_configuration(child.pid)
    finally:
        _detach(child)
    return True, f"rseq area {addr:#x}, size {size}, signature {sig:#x}" if size else "no rseq area registered"


def probe_pidfd_store(child: _Child) -> Result:
    """pidfd_open (5.3) and pidfd_getfd (5.6): take a copy of a task's descriptor."""
    from criu_core.sys import probes as p

    pidfd = p.pidfd_open(child.pid)
    try:
        fd = p.pidfd_getfd(pidfd, 0, pid=child.pid)
        os.close(fd)
    finally:
        os.close(pidfd)
    return True, "pidfd_open, pidfd_getfd"


def probe_process_vm(child: _Child) -> Result:
    """process_vm_readv and process_vm_writev on a child's memory."""
    from criu_core.sys import probes as p

    got = p.Buffer(bytes(len(_PATTERN)))
    p.process_vm_readv(child.pid, got, child.buf.addr)
    if got.bytes() != _PATTERN:
        return False, "process_vm_readv read the wrong bytes"
    new = p.Buffer(_PATTERN.upper())
    p.process_vm_writev(child.pid, new, child.buf.addr)
    p.process_vm_readv(child.pid, got, child.buf.addr)
    if got.bytes() != _PATTERN.upper():
        return False, "process_vm_writev did not write"
    return True, "read and write a child's memory"


def probe_clone3_set_tid() -> Result:
    """clone3 with set_tid (5.5+): asking for our own PID must answer EEXIST."""
    from criu_core.sys import probes as p

    err = p.clone3_set_tid_probe()
    if err == errno.EEXIST:
        return True, "clone3(set_tid) answers EEXIST for a PID in use"
    return False, f"clone3(set_tid) answered {errno.errorcode.get(err, err)}"


def probe_prctl_mm_map() -> Result:
    """prctl(PR_SET_MM, PR_SET_MM_MAP) (3.18+, CONFIG_CHECKPOINT_RESTORE): restore mm fields at once."""
    from criu_core.sys import probes as p

    size = p.prctl_mm_map_size()
    return size > 0, f"struct prctl_mm_map is {size} bytes"


def probe_kcmp() -> Result:
    """kcmp(KCMP_FILE) (3.5+, CONFIG_KCMP): tell shared descriptors apart."""
    from criu_core.sys import probes as p

    pid = os.getpid()
    same = p.kcmp(pid, pid, p.KCMP_FILE, 0, 0)
    return same == 0, "kcmp(KCMP_FILE)"


def probe_pagemap_scan() -> Result:
    """ioctl(PAGEMAP_SCAN) on /proc/self/pagemap (6.7+)."""
    from criu_core.sys import probes as p

    buf = p.Buffer(b"\1" * 8192)
    fd = os.open("/proc/self/pagemap", os.O_RDONLY)
    try:
        regions = p.pagemap_scan(fd, buf.addr & ~4095, (buf.addr & ~4095) + 4096, p.PAGE_IS_PRESENT)
    finally:
        os.close(fd)
    return bool(regions), f"{len(regions)} present region(s) found"


def probe_pagemap_scan_guard_pages() -> Result:
    """PAGEMAP_SCAN knows PAGE_IS_GUARD (MADV_GUARD_INSTALL regions, 6.14+)."""
    from criu_core.sys import probes as p

    fd = os.open("/proc/self/pagemap", os.O_RDONLY)
    try:
        p.pagemap_scan(fd, 0, 0, p.PAGE_IS_GUARD)
    finally:
        os.close(fd)
    return True, "PAGE_IS_GUARD accepted"


def probe_uffd() -> Result:
    """userfaultfd (4.3+) and its API handshake; lists write-protect support used for incremental dumps."""
    from criu_core.sys import probes as p

    fd = p.userfaultfd()
    try:
        features = p.uffdio_api(fd)
    finally:
        os.close(fd)
    wp = "wp_async" if features & (1 << 15) else "no wp_async"
    return True, f"features {features:#x} ({wp})"


def probe_timens() -> Result:
    """Time namespaces (5.6+): /proc/self/ns/time exists."""
    ok = os.path.exists("/proc/self/ns/time")
    return ok, "/proc/self/ns/time" if ok else "no /proc/self/ns/time"


def probe_timer_cr_ids() -> Result:
    """prctl(PR_TIMER_CREATE_RESTORE_IDS): create POSIX timers at given IDs."""
    from criu_core.sys import probes as p

    p.timer_restore_ids_get()
    return True, "PR_TIMER_CREATE_RESTORE_IDS"


def probe_mem_dirty_track() -> Result:
    """Soft-dirty bits (CONFIG_MEM_SOFT_DIRTY): clear_refs 4, touch a page, pagemap bit 55 must be set."""
    from criu_core.sys.probes import Buffer

    buf = Buffer(b"\0" * 8192)
    page = (buf.addr + 4095) & ~4095
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("4")
    except OSError as exc:
        return False, f"clear_refs: {exc.strerror}"
    buf.raw[page - buf.addr] = 1  # dirty the page
    with open("/proc/self/pagemap", "rb") as f:
        f.seek(page // 4096 * 8)
        entry = int.from_bytes(f.read(8), "little")
    if entry & (1 << 55):
        return True, "pagemap soft-dirty bit works"
    return False, "Dirty tracking is OFF. Memory snapshot will not work."


def probe_tracefs() -> Result:
    """tracefs with uprobe_events mounted, or at least mountable (the uprobes plugin needs it)."""
    for path in ("/sys/kernel/tracing/uprobe_events", "/sys/kernel/debug/tracing/uprobe_events"):
        if os.path.exists(path):
            return True, path
    try:
        with open("/proc/filesystems") as f:
            if any(line.split()[-1] == "tracefs" for line in f if line.strip()):
                return True, "tracefs not mounted, but mountable"
    except OSError:
        pass
    return False, "no tracefs"


FEATURES: dict[str, Feature] = {
    f.name: f
    for f in (
        Feature("ptrace_seize", True, True, probe_ptrace_seize, "PTRACE_SEIZE/INTERRUPT/DETACH"),
        Feature("seccomp_suspend", True, True, probe_seccomp_suspend, "PTRACE_O_SUSPEND_SECCOMP"),
        Feature("get_rseq_conf", True, True, probe_get_rseq_conf, "PTRACE_GET_RSEQ_CONFIGURATION"),
        Feature("pidfd_store", True, True, probe_pidfd_store, "pidfd_open + pidfd_getfd"),
        Feature("process_vm", True, True, probe_process_vm, "process_vm_readv/writev"),
        Feature("clone3_set_tid", True, False, probe_clone3_set_tid, "clone3 with set_tid"),
        Feature("prctl_mm_map", True, False, probe_prctl_mm_map, "prctl(PR_SET_MM, PR_SET_MM_MAP)"),
        Feature("kcmp", True, False, probe_kcmp, "kcmp(KCMP_FILE)"),
        Feature("pagemap_scan", False, False, probe_pagemap_scan, "ioctl(PAGEMAP_SCAN)"),
        Feature("pagemap_scan_guard_pages", False, False, probe_pagemap_scan_guard_pages, "PAGE_IS_GUARD"),
        Feature("uffd", False, False, probe_uffd, "userfaultfd"),
        Feature("timens", False, False, probe_timens, "time namespaces"),
        Feature("timer_cr_ids", False, False, probe_timer_cr_ids, "POSIX timers at given IDs"),
        Feature("mem_dirty_track", False, False, probe_mem_dirty_track, "soft-dirty memory tracking"),
        Feature("tracefs", False, False, probe_tracefs, "tracefs (uprobe_events)"),
    )
}


def probe(name: str, child: _Child | None = None) -> Result:
    """Run one probe; a SyscallError or OSError becomes ``(False, why)``."""
    feat = FEATURES[name]
    own = None
    try:
        if feat.needs_child and child is None:
            child = own = _Child()
        return feat.func(child) if feat.needs_child else feat.func()
    except (SyscallError, OSError) as exc:
        return False, str(exc) if isinstance(exc, SyscallError) else f"{exc.strerror or exc}"
    finally:
        if own is not None:
            own.close()


def _run_many(names: list[str]) -> dict[str, Result]:
    child = _Child() if any(FEATURES[n].needs_child for n in names) else None
    try:
        return {n: probe(n, child) for n in names}
    finally:
        if child is not None:
            child.close()


def run_check(
    ctx: CheckContext, features: list[str] | None = None, *, extra: bool = False, experimental: bool = False
) -> int:
    """``criu-py check``; returns 0, or raises KernelFeatureMissing / UsageError (unknown feature name)."""
    log = ctx.log
    plugin_results = {name: (ok, detail) for name, ok, detail in ctx.host.check_features(ctx)}
    if features:
        if "list" in features:
            sys.stdout.write(" ".join(list(FEATURES) + list(plugin_results)) + "\n")
            return 0
        missing = []
        for name in features:
            if name in FEATURES:
                ok, detail = probe(name)
            elif name in plugin_results:
                ok, detail = plugin_results[name]
            else:
                raise UsageError(f"Unknown feature {name}")
            log.info("%s: %s", name, detail)
            if ok:
                sys.stdout.write(f"{name} is supported\n")
            else:
                log.error("%s is not supported: %s", name, detail)
                missing.append(name)
        if missing:
            raise KernelFeatureMissing(",".join(missing), f"not supported: {', '.join(missing)}")
        return 0

    names = [n for n, f in FEATURES.items() if f.required or extra or experimental]
    results = _run_many(names)
    missing = []
    for name, (ok, detail) in results.items():
        feat = FEATURES[name]
        if ok:
            log.info("%s: %s", name, detail)
        elif feat.required:
            log.error("%s (%s) is missing: %s", name, feat.summary, detail)
            missing.append(name)
        elif name == "mem_dirty_track":
            log.warning("%s", detail)
        else:
            log.warning("%s (%s) is not available: %s", name, feat.summary, detail)
    for name, (ok, detail) in plugin_results.items():
        if ok:
            log.info("%s: %s", name, detail)
        else:
            # A plugin whose device is absent is not a problem of this machine unless the user asked (--all).
            (log.warning if extra else log.info)("%s is not available: %s", name, detail)
    if missing:
        raise KernelFeatureMissing(",".join(missing), f"kernel features missing: {', '.join(missing)}")
    sys.stdout.write("Looks good.\n")
    return 0
