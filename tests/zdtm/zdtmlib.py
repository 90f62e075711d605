"""The ZDTM-like harness: build targets, run them, drive ``criu-py`` as a user would, compare /proc.

A test's life:

1. ``t = zdtm.start("sig_pending")`` compiles ``targets/sig_pending.c`` (once per session), starts it in its own
   session with stdout/stderr on files, and waits for its ``READY`` line.
2. ``zdtm.cycle(t)`` records the task's /proc state, runs ``criu-py dump -t PID -D DIR``, reaps the killed task,
   runs ``criu-py restore -D DIR -d``, checks the same PID is back and compares the /proc state again.
3. ``t.check()`` sends SIGUSR2; the target verifies itself and answers ``PASS`` or ``FAIL: why``.

Everything is polled with a deadline; nothing sleeps and hopes. The harness must be a child subreaper (restored
tasks are reparented to criu-py's parent, i.e. to us, when criu-py exits with ``-d``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "KNOWN_DIFFERENCES",
    "NOCR",
    "REPO",
    "SYS_PYTHON",
    "TARGETS",
    "Builder",
    "CliResult",
    "Snapshot",
    "Target",
    "assert_refusal",
    "assert_runs_freely",
    "compare",
    "cpu_ticks",
    "descendants",
    "dump",
    "dumped_pids",
    "images_digest",
    "new_ctl_dir",
    "pid_alive",
    "reap",
    "restore",
    "run_cli",
    "snapshot",
    "start_cli",
    "start_process",
    "wait_all_gone",
    "wait_for",
    "wait_gone",
]

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TARGETS = HERE / "targets"
SYS_PYTHON = "/usr/bin/python3"
# ZDTM_NOCR=1: run the targets without dumping or restoring them (a self-test of targets and harness).
NOCR = os.environ.get("ZDTM_NOCR") == "1"


def wait_for(cond: Callable[[], object], timeout: float, what: str, step: float = 0.005) -> object:
    """Poll ``cond`` until it returns a true value; raise AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        val = cond()
        if val:
            return val
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(step)
        step = min(step * 1.5, 0.05)


def pid_alive(pid: int) -> bool:
    """True while /proc/PID exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def reap(pid: int, timeout: float = 10.0) -> int | None:
    """Wait for our child (or adopted orphan) ``pid`` to exit; return its wait status, None if not our child."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            got, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if got == pid:
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"task {pid} did not exit within {timeout:.1f} s")
        time.sleep(0.005)


def wait_gone(pid: int, timeout: float = 10.0) -> None:
    """Reap ``pid`` if it is ours, and wait until /proc/PID disappears (the PID is then free for a restore)."""
    reap(pid, timeout)
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), timeout, f"/proc/{pid} to disappear")


def descendants(pid: int) -> list[int]:
    """Every descendant of ``pid`` (through /proc/P/task/T/children of every thread)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                kids = [int(c) for c in Path(f"/proc/{p}/task/{tid}/children").read_text().split()]
            except OSError:
                continue
            out.extend(kids)
            todo.extend(kids)
    return out


def wait_all_gone(pids: Iterable[int], timeout: float = 10.0) -> None:
    """Reap whichever of ``pids`` end up as our children (killed trees are reparented to us, the subreaper)
    and wait until none of them is left in /proc."""
    pending = set(pids)

    def gone() -> bool:
        for pid in list(pending):
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            if not os.path.exists(f"/proc/{pid}"):
                pending.discard(pid)
        return not pending

    wait_for(gone, timeout, f"PIDs {sorted(pending)[:10]} to disappear")


def dumped_pids(images: Path) -> list[int]:
    """Every PID that pstree.img lists (a tree may have forked between our look and the dump's freeze)."""
    try:
        from criu_core.images import ImageDir

        return [int(e.pid) for e in ImageDir(images).read_all("pstree")]
    except Exception:  # noqa: BLE001 - no image layer or no pstree: the caller falls back on what it saw
        return []


# ---------------------------------------------------------------------------------------------- building


class Builder:
    """Compiles C targets with gcc into one directory per session, each (source, flags) once."""

    def __init__(self, outdir: Path) -> None:
        self.outdir = outdir
        self._cache: dict[tuple[str, tuple[str, ...]], Path] = {}

    def build(self, name: str, flags: Sequence[str] = ()) -> Path:
        key = (name, tuple(flags))
        if key in self._cache:
            return self._cache[key]
        src = TARGETS / f"{name}.c"
        suffix = "" if not flags else "-" + str(abs(hash(key[1])))
        out = self.outdir / f"{name}{suffix}"
        cmd = ["gcc", "-O2", "-g", "-Wall", "-Werror", "-I", str(TARGETS), "-o", str(out), str(src), *flags]
        res = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
        if res.returncode:
            raise AssertionError(f"gcc failed for {src.name}:\n{res.stderr}")
        self._cache[key] = out
        return out


# ---------------------------------------------------------------------------------------------- targets


@dataclass
class Target:
    """A running target: its PID, its control directory and the file its stdout goes to."""

    pid: int
    name: str
    ctl: Path
    popen: subprocess.Popen[bytes] | None = None
    restored: bool = False
    log: list[str] = field(default_factory=list)

    @property
    def out(self) -> Path:
        return self.ctl / "out"

    def lines(self) -> list[str]:
        try:
            return self.out.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def verdict(self) -> str | None:
        for line in self.lines():
            if line.startswith(("PASS", "FAIL")):
                return line
        return None

    def describe(self) -> str:
        err = ""
        errfile = self.ctl / "err"
        if errfile.exists():
            err = errfile.read_text(errors="replace")[-2000:]
        return f"target {self.name} pid {self.pid}; stdout:\n" + "\n".join(self.lines()[-40:]) + f"\nstderr:\n{err}"

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            lines = self.lines()
            if any(line.startswith("FAIL") for line in lines):
                raise AssertionError("target failed while setting up: " + self.describe())
            if "READY" in lines:
                return True
            if self.popen is not None and self.popen.poll() is not None:
                raise AssertionError(f"target exited ({self.popen.returncode}) before READY: " + self.describe())
            return False

        wait_for(ready, timeout, f"{self.name} to be ready")

    def assert_no_verdict(self) -> None:
        v = self.verdict()
        assert v is None, f"target answered before it was asked to check: {v!r}\n" + self.describe()

    def check(self, sig: int = signal.SIGUSR2, timeout: float = 30.0, expect_status: int | None = 0) -> str:
        """Ask the target to verify itself; assert PASS; reap it and assert its exit status."""
        self.assert_no_verdict()
        assert pid_alive(self.pid), f"task {self.pid} is not running before the check\n" + self.describe()
        os.kill(self.pid, sig)
        verdict = wait_for(self.verdict, timeout, f"the verdict of {self.name}")
        assert isinstance(verdict, str)
        assert verdict == "PASS", f"{verdict}\n" + self.describe()
        status = self.wait_exit(timeout)
        if expect_status is not None and status is not None:
            assert os.waitstatus_to_exitcode(status) == expect_status, self.describe()
        return verdict

    def wait_exit(self, timeout: float = 10.0) -> int | None:
        if self.popen is not None and not self.restored:
            try:
                return _status_of(self.popen.wait(timeout))
            except subprocess.TimeoutExpired:
                raise AssertionError(f"{self.name} did not exit\n" + self.describe()) from None
        return reap(self.pid, timeout)

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        if self.popen is not None and not self.restored:
            self.popen.wait(10)
        else:
            reap(self.pid)


def _status_of(returncode: int) -> int:
    """Popen's returncode back to a wait status."""
    return (-returncode) & 0x7F if returncode < 0 else (returncode & 0xFF) << 8


def start_process(
    argv: Sequence[str],
    name: str,
    ctl: Path,
    *,
    setsid: bool = True,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
    stdin: str = "/dev/null",
    pass_fds: Iterable[int] = (),
    ready: bool = True,
) -> Target:
    """Start ``argv`` with stdout on ``ctl/out`` (O_APPEND), stderr on ``ctl/err``; wait for READY."""
    with open(stdin, "rb") as fin, open(ctl / "out", "ab") as fout, open(ctl / "err", "ab") as ferr:
        popen = subprocess.Popen(
            list(argv),
            stdin=fin,
            stdout=fout,
            stderr=ferr,
            cwd=cwd or ctl,
            env=env if env is not None else _target_env(ctl),
            start_new_session=setsid,
            pass_fds=tuple(pass_fds),
            close_fds=True,
        )
    t = Target(pid=popen.pid, name=name, ctl=ctl, popen=popen)
    if ready:
        t.wait_ready()
    return t


def _target_env(ctl: Path) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "ZDTM_DIR": str(ctl), "LC_ALL": "C"}


def new_ctl_dir() -> Path:
    """A control directory others can enter (a target may drop to uid 1000); pytest's tmp dirs are 0700."""
    d = Path(tempfile.mkdtemp(prefix="zdtm-"))
    d.chmod(0o755)
    return d


# ---------------------------------------------------------------------------------------------- the CLI


@dataclass
class CliResult:
    args: list[str]
    rc: int
    stdout: str
    stderr: str
    wall: float
    log: str = ""

    def explain(self) -> str:
        return (
            f"$ criu-py {' '.join(self.args)}\nrc={self.rc} in {self.wall:.3f} s\nstderr:\n{self.stderr}"
            f"\nstdout:\n{self.stdout}\nlog tail:\n{self.log[-4000:]}"
        )


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_cli(args: Sequence[str], timeout: float = 120.0, log: Path | None = None) -> CliResult:
    """Run ``python -m criu_core.cli ARGS`` with this interpreter and this checkout; never raises on rc != 0."""
    cmd = [sys.executable, "-m", "criu_core.cli", *args]
    t0 = time.monotonic()
    res = subprocess.run(
        cmd, check=False, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, env=cli_env()
    )
    wall = time.monotonic() - t0
    text = ""
    if log is not None and log.exists():
        text = log.read_text(errors="replace")
    return CliResult(list(args), res.returncode, res.stdout, res.stderr, wall, text)


def dump(pid: int, images: Path, *extra: str, timeout: float = 120.0) -> CliResult:
    images.mkdir(parents=True, exist_ok=True)
    return run_cli(
        ["dump", "-t", str(pid), "-D", str(images), "-o", "dump.log", "-v4", *extra], timeout, images / "dump.log"
    )


def restore(images: Path, *extra: str, detach: bool = True, timeout: float = 120.0) -> CliResult:
    args = ["restore", "-D", str(images), "-o", "restore.log", "-v4", *(["-d"] if detach else []), *extra]
    return run_cli(args, timeout, images / "restore.log")


# ---------------------------------------------------------------------------------------------- /proc state

STATUS_KEYS = (
    "Umask", "State", "Tgid", "Pid", "PPid", "TracerPid", "Uid", "Gid", "FDSize", "Groups", "NStgid", "NSpid",
    "NSpgid", "NSsid", "Threads", "SigQ", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt", "CapInh", "CapPrm",
    "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Seccomp_filters", "VmLck", "VmPin",
)  # fmt: skip

# /proc/PID/stat fields (1-based, as proc(5) numbers them) that a restore must bring back.
# Not field 9 (PF_* flags): PF_FORKNOEXEC and friends depend on how the task was created, not on its state.
STAT_FIELDS = {
    4: "ppid", 5: "pgrp", 6: "session", 7: "tty_nr", 18: "priority", 19: "nice",
    26: "startcode", 27: "endcode", 28: "startstack", 38: "exit_signal", 40: "rt_priority", 41: "policy",
    45: "start_data", 46: "end_data", 47: "start_brk", 48: "arg_start", 49: "arg_end", 50: "env_start",
    51: "env_end",
}  # fmt: skip


@dataclass
class Snapshot:
    """What the harness compares before and after: every value is plain data with a readable repr."""

    values: dict[str, object]

    def __getitem__(self, key: str) -> object:
        return self.values[key]


def _read(path: str, binary: bool = False) -> str | bytes | None:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return data if binary else data.decode(errors="replace")


def _link(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


_SHMEM_NAMES = ("/dev/zero (deleted)", "/SYSV", "/memfd:")
_ANON_LINK = re.compile(r"^(pipe|socket|anon_inode:\[?[a-z_]+\]?)(:\[\d+\])?$")


def _fd_link(link: str | None) -> str | None:
    # pipe:[123] / socket:[456]: the inode number is new after a restore; only the kind must match.
    if link is None:
        return None
    m = _ANON_LINK.match(link)
    return m.group(1) if m else link


def snapshot(pid: int) -> Snapshot:
    base = f"/proc/{pid}"
    v: dict[str, object] = {}
    maps = []
    for line in str(_read(f"{base}/maps") or "").splitlines():
        parts = line.split(maxsplit=5)
        rng, perms, off, dev, ino = parts[:5]
        name = parts[5] if len(parts) > 5 else ""
        if name.startswith(_SHMEM_NAMES):
            ino = "(shmem)"  # shared anonymous memory, SysV shm, memfd: the restore makes a new shmem object
        maps.append((rng, perms, off, dev, ino, name))
    v["maps"] = maps
    vmflags: dict[str, str] = {}
    cur = ""
    for line in str(_read(f"{base}/smaps") or "").splitlines():
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            cur = line.split()[0]
        elif line.startswith("VmFlags:"):
            vmflags[cur] = " ".join(sorted(line.split()[1:]))
    v["vmflags"] = vmflags
    fds: dict[int, dict[str, str | None]] = {}
    try:
        names = os.listdir(f"{base}/fd")
    except OSError:
        names = []
    for n in sorted(names, key=int):
        raw = _link(f"{base}/fd/{n}")
        info: dict[str, str | None] = {"link": _fd_link(raw)}
        for line in str(_read(f"{base}/fdinfo/{n}") or "").splitlines():
            key, _, val = line.partition(":")
            if key in ("pos", "flags", "mnt_id", "ino"):
                info[key] = val.strip()
        if raw != info["link"]:
            info.pop("ino", None)  # a pipe or socket is a new object after restore; its kind is compared
        fds[int(n)] = info
    v["fds"] = fds
    status = {}
    for line in str(_read(f"{base}/status") or "").splitlines():
        key, _, val = line.partition(":")
        if key in STATUS_KEYS:
            status[key] = " ".join(val.split())
    v["status"] = status
    stat = str(_read(f"{base}/stat") or "")
    if stat:
        v["comm_stat"] = stat[stat.index("(") + 1 : stat.rindex(")")]
        rest = stat[stat.rindex(")") + 2 :].split()
        v["stat"] = {name: rest[i - 3] for i, name in STAT_FIELDS.items() if i - 3 < len(rest)}
    for key in ("comm", "personality", "limits", "cmdline", "environ", "loginuid", "oom_score_adj", "timers"):
        v[key] = _read(f"{base}/{key}")
    threads: dict[int, str] = {}
    try:
        tids = sorted(int(t) for t in os.listdir(f"{base}/task"))
    except OSError:
        tids = []
    for tid in tids:
        comm = str(_read(f"{base}/task/{tid}/comm") or "").strip()
        sig = {}
        for line in str(_read(f"{base}/task/{tid}/status") or "").splitlines():
            key, _, val = line.partition(":")
            if key in ("SigBlk", "SigPnd"):
                sig[key] = val.strip()
        threads[tid] = f"{comm} blk={sig.get('SigBlk')} pnd={sig.get('SigPnd')}"
    v["threads"] = threads
    v["auxv"] = _read(f"{base}/auxv", binary=True)
    for key in ("cwd", "root", "exe"):
        v[key] = _link(f"{base}/{key}")
    return Snapshot(v)


# Differences a correct restore legitimately shows, each with the reason. Keys are "category" or
# "category.key"; a test adds its own with ``compare(..., allow={...: reason})``.
KNOWN_DIFFERENCES: dict[str, str] = {
    # The state letter depends on the instant we look (R while it computes, S while it sleeps).
    "status.State": "running/sleeping is a matter of timing",
    # SigQ counts queued signals of the *user*, including other processes of that user.
    "status.SigQ": "per-user counter, not per-task",
    # FDSize is the capacity of the fd table, which grows in powers of two as the restorer installs fds.
    "status.FDSize": "fd table capacity, not content",
}


def compare(before: Snapshot, after: Snapshot, allow: dict[str, str] | None = None) -> list[str]:
    """Every difference between two snapshots that is not explained by KNOWN_DIFFERENCES or ``allow``."""
    allowed = {**KNOWN_DIFFERENCES, **(allow or {})}
    diffs: list[str] = []
    for cat in sorted(set(before.values) | set(after.values)):
        if cat in allowed:
            continue
        a, b = before.values.get(cat), after.values.get(cat)
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b), key=str):
                if f"{cat}.{key}" in allowed:
                    continue
                if a.get(key) != b.get(key):
                    diffs.append(f"{cat}.{key}: before {a.get(key)!r}, after {b.get(key)!r}")
        elif cat == "maps":
            diffs.extend(_maps_diff(a or [], b or []))  # type: ignore[arg-type]
        elif a != b:
            diffs.append(f"{cat}: before {a!r}, after {b!r}")
    return diffs


def _maps_diff(a: list[tuple[str, ...]], b: list[tuple[str, ...]]) -> list[str]:
    if a == b:
        return []
    sa, sb = set(a), set(b)
    out = [f"maps: lost   {' '.join(x)}" for x in a if x not in sb]
    out += [f"maps: gained {' '.join(x)}" for x in b if x not in sa]
    return out or ["maps: same entries in a different order"]


def images_digest(images: Path) -> dict[str, bytes]:
    """Contents of every file of an image directory except logs (used to prove a restore changed nothing)."""
    return {p.name: p.read_bytes() for p in sorted(images.iterdir()) if p.is_file() and not p.name.endswith(".log")}


def start_cli(args: Sequence[str]) -> subprocess.Popen[str]:
    """``criu-py ARGS`` in the background (e.g. ``restore`` without ``-d``, which waits for the task)."""
    cmd = [sys.executable, "-m", "criu_core.cli", *args]
    return subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env()
    )


def cpu_ticks(pid: int) -> int:
    """utime + stime of ``pid`` in clock ticks."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    rest = stat[stat.rindex(")") + 2 :].split()
    return int(rest[11]) + int(rest[12])


def assert_runs_freely(pid: int, timeout: float = 5.0) -> None:
    """The task is not stopped or traced and keeps getting CPU time (for busy targets)."""
    status = snapshot(pid)["status"]
    assert isinstance(status, dict)
    assert status.get("TracerPid") == "0", f"task {pid} is still traced: {status}"
    t0 = cpu_ticks(pid)
    wait_for(lambda: cpu_ticks(pid) > t0 + 2, timeout, f"task {pid} to keep running")
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    assert state in "RS", f"task {pid} is in state {state}"


def assert_refusal(t: Target, d: CliResult, before: Snapshot, fds: Sequence[int], kind: str) -> None:
    """A dump refused ``t``: the task runs on, untraced and unchanged; one line on stderr names the task, the
    kind and (if given) one of ``fds``. The task is checked first, the message after."""
    assert d.rc != 0, d.explain()
    assert t.popen is not None and t.popen.poll() is None, "the task died in a failed dump\n" + t.describe()
    assert_runs_freely(t.pid)
    diffs = compare(before, snapshot(t.pid))
    assert not diffs, "a failed dump changed the task:\n" + "\n".join(diffs)
    assert "Traceback" not in d.stderr, d.explain()
    lines = d.stderr.strip().splitlines()
    assert len(lines) == 1, "expected one line on stderr:\n" + d.explain()
    msg = lines[0]
    named_fd = not fds or any(re.search(rf"\b{fd}\b", msg) for fd in fds)
    what = f"the fd {tuple(fds)} and " if fds else ""
    assert str(t.pid) in msg and kind in msg.lower() and named_fd, (
        f"the message must name the task {t.pid}, {what}the kind {kind}: {msg}"
    )
