"""Fixtures of the cuda_stub tests: a stand-in ``cuda-checkpoint`` on PATH, a fake NVIDIA procfs root, real targets.

The stand-in is a shell script (the tests write it into a temporary directory placed first on ``$PATH``):

* it appends every argv (``"$*"``) as one line to ``$FAKE_CUDA_LOG``;
* a pid is a CUDA task when ``$FAKE_CUDA_STATE_DIR/<pid>`` exists; the file holds its state (``running``,
  ``locked``, ``checkpointed``); ``--get-restore-tid`` answers the pid itself (restore tid = pid, as the fake used
  to verify CRIU 4.2's sequences);
* actions move the state like the real utility and refuse a wrong order (lock needs running, checkpoint needs
  locked, restore needs checkpointed, unlock needs locked);
* ``FAKE_CUDA_FAIL=ACTION`` (or ``ACTION:PID``) makes that action fail with a message; ``FAKE_CUDA_HANG=ACTION``
  makes it print a line and hang in a child ``sleep`` that keeps the output pipe open (its pid goes to
  ``$FAKE_CUDA_STATE_DIR/hang.pid``); ACTION is ``lock``, ``checkpoint``, ``restore``, ``unlock``,
  ``get-restore-tid`` or ``get-state``;
* the "old driver" variant prints only the r550 usage (``--toggle``), without ``--action``.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from criu_core.testing import missing_engines

__all__ = ["FakeCuda", "FakeProc"]

FAKE_SCRIPT = r"""#!/bin/sh
# Stand-in for NVIDIA's cuda-checkpoint, written by the criu_cuda_stub tests.
echo "$*" >> "$FAKE_CUDA_LOG"
dir="$FAKE_CUDA_STATE_DIR"

hang() {
    echo "cuda-checkpoint: $1 in progress on $2"
    sleep 1000 &
    echo $! > "$dir/hang.pid"
    wait
}
fail_if_told() {
    case "$FAKE_CUDA_FAIL" in
        "$1"|"$1:$2") echo "cuda-checkpoint: $1 of process $2 failed: CUDA_ERROR_INVALID_VALUE (told to fail)"; exit 1;;
    esac
}

case "$1" in
-h|--help)
    cat <<'EOF'
CUDA checkpoint and restore utility.
Usage: cuda-checkpoint [--action <action>] [--pid <value>] [--timeout <value>] [--get-state] [--get-restore-tid]
  --action           lock | checkpoint | restore | unlock
  --pid              process ID to act on
  --timeout          lock timeout in milliseconds
  --get-state        print the CUDA checkpoint state of the process
  --get-restore-tid  print the thread ID of the process's restore thread
EOF
    exit 0;;
--get-restore-tid)
    pid="$3"
    [ "$FAKE_CUDA_HANG" = get-restore-tid ] && hang get-restore-tid "$pid"
    fail_if_told get-restore-tid "$pid"
    if [ -f "$dir/$pid" ]; then echo "$pid"; exit 0; fi
    echo "cuda-checkpoint: process $pid has no CUDA context"
    exit 1;;
--get-state)
    pid="$3"
    [ "$FAKE_CUDA_HANG" = get-state ] && hang get-state "$pid"
    fail_if_told get-state "$pid"
    if [ -f "$dir/$pid" ]; then cat "$dir/$pid"; exit 0; fi
    echo "cuda-checkpoint: process $pid has no CUDA context"
    exit 1;;
--action)
    action="$2"; pid="$4"
    [ "$FAKE_CUDA_HANG" = "$action" ] && hang "$action" "$pid"
    fail_if_told "$action" "$pid"
    if [ ! -f "$dir/$pid" ]; then echo "cuda-checkpoint: process $pid has no CUDA context"; exit 1; fi
    state=$(cat "$dir/$pid")
    case "$action" in
        lock) need=running; new=locked;;
        checkpoint) need=locked; new=checkpointed;;
        restore) need=checkpointed; new=locked;;
        unlock) need=locked; new=running;;
        *) echo "cuda-checkpoint: unknown action $action"; exit 2;;
    esac
    if [ "$state" != "$need" ]; then
        echo "cuda-checkpoint: cannot $action process $pid in state $state"
        exit 1
    fi
    echo "$new" > "$dir/$pid"
    exit 0;;
esac
echo "cuda-checkpoint: bad arguments: $*"
exit 2
"""

OLD_SCRIPT = r"""#!/bin/sh
# Stand-in for an r550 cuda-checkpoint: no --action flag.
echo "$*" >> "$FAKE_CUDA_LOG"
echo "Usage: cuda-checkpoint --toggle --pid PID"
exit 0
"""


@dataclass
class FakeCuda:
    """The stand-in ``cuda-checkpoint`` and its files."""

    bin_dir: Path
    log: Path
    state_dir: Path
    monkeypatch: pytest.MonkeyPatch

    @property
    def binary(self) -> Path:
        return self.bin_dir / "cuda-checkpoint"

    def install(self, script: str = FAKE_SCRIPT) -> None:
        self.binary.write_text(script)
        self.binary.chmod(0o755)

    def install_old(self) -> None:
        self.install(OLD_SCRIPT)

    def remove(self) -> None:
        self.binary.unlink(missing_ok=True)

    def calls(self) -> list[str]:
        """Every call so far, one argv (without the program name) per entry."""
        return self.log.read_text().splitlines() if self.log.exists() else []

    def mark_cuda(self, pid: int, state: str = "running") -> None:
        (self.state_dir / str(pid)).write_text(state + "\n")

    def state(self, pid: int) -> str:
        return (self.state_dir / str(pid)).read_text().strip()

    def fail(self, action: str, pid: int | None = None) -> None:
        self.monkeypatch.setenv("FAKE_CUDA_FAIL", action if pid is None else f"{action}:{pid}")

    def hang(self, action: str) -> None:
        self.monkeypatch.setenv("FAKE_CUDA_HANG", action)

    def hang_pid(self) -> int | None:
        path = self.state_dir / "hang.pid"
        return int(path.read_text()) if path.exists() else None


@dataclass
class FakeProc:
    """A procfs root with ``driver/nvidia/gpus/<bus id>/`` and, on demand, ``<pid>/maps``."""

    root: Path

    def add_gpu(self, bus_id: str = "0000:01:00.0") -> None:
        d = self.root / "driver" / "nvidia" / "gpus" / bus_id
        d.mkdir(parents=True, exist_ok=True)
        (d / "information").write_text("Model: \t\t NVIDIA H100 80GB HBM3\nBus Location: \t " + bus_id + "\n")

    def remove_gpus(self) -> None:
        gpus = self.root / "driver" / "nvidia" / "gpus"
        for d in sorted(gpus.glob("*"), reverse=True):
            for f in d.iterdir():
                f.unlink()
            d.rmdir()

    def copy_maps(self, pid: int, *, nvidia: bool = False) -> None:
        """``<root>/<pid>/maps``: the real task's maps, plus the mappings of a CUDA context if ``nvidia``."""
        d = self.root / str(pid)
        d.mkdir(parents=True, exist_ok=True)
        (d / "maps").write_text(Path(f"/proc/{pid}/maps").read_text() + (NVIDIA_MAPS if nvidia else ""))


NVIDIA_MAPS = (
    "7f0a10000000-7f0a10001000 rw-s 00000000 00:05 1043                       /dev/nvidiactl\n"
    "7f0a10200000-7f0a10400000 rw-s 00000000 00:05 1044                       /dev/nvidia0\n"
)


@pytest.fixture
def fake_cuda(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCuda]:
    """The stand-in installed first on ``$PATH``, with an empty log and state directory."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    state_dir = tmp_path / "cuda-state"
    state_dir.mkdir()
    fake = FakeCuda(bin_dir, tmp_path / "cuda-checkpoint.log", state_dir, monkeypatch)
    fake.install()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_CUDA_LOG", str(fake.log))
    monkeypatch.setenv("FAKE_CUDA_STATE_DIR", str(state_dir))
    monkeypatch.delenv("FAKE_CUDA_FAIL", raising=False)
    monkeypatch.delenv("FAKE_CUDA_HANG", raising=False)
    monkeypatch.delenv("CRIU_FAULT", raising=False)
    yield fake
    hung = fake.hang_pid()
    if hung is not None:
        try:
            os.kill(hung, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def fake_proc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeProc:
    """A fake procfs root with one NVIDIA GPU, named by ``$CRIU_PY_CUDA_PROC_ROOT``."""
    proc = FakeProc(tmp_path / "proc")
    proc.add_gpu()
    monkeypatch.setenv("CRIU_PY_CUDA_PROC_ROOT", str(proc.root))
    return proc


@pytest.fixture
def spawn() -> Iterator:
    """``pid = spawn()`` starts a real ``sleep`` target (its own session); all are killed and reaped at the end."""
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> int:
        p = subprocess.Popen(["sleep", "1000"], start_new_session=True, stdin=subprocess.DEVNULL)
        procs.append(p)
        return p.pid

    yield start
    for p in procs:
        p.kill()
        p.wait()


# ---------------------------------------------------------------------------------------------------- criu-py

@pytest.fixture
def criu_py(tmp_path: Path):
    """``res = criu_py("dump", "-t", str(pid), "-D", str(d))`` runs the criu-py command line in a child process
    (this interpreter, the environment of the test: the stand-in's PATH and the fake procfs root included)."""
    import sys

    reason = missing_engines()
    if reason:
        pytest.skip(reason)

    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        code = "import sys; from criu_core.cli.main import main; sys.argv[0] = 'criu-py'; sys.exit(main())"
        return subprocess.run([sys.executable, "-c", code, *args], check=False, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout, cwd=tmp_path)

    return run


def wait_gone(pid: int, timeout: float = 10) -> None:
    """Wait until ``pid`` has left /proc (its PID is free for the restore)."""
    import time

    end = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}"):
        if time.monotonic() > end:
            raise AssertionError(f"task {pid} is still there after {timeout} s")
        time.sleep(0.05)


def is_running(pid: int) -> bool:
    """``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def procs():
    """Helpers on real tasks: ``procs.wait_gone(pid)``, ``procs.is_running(pid)``."""
    from types import SimpleNamespace

    return SimpleNamespace(wait_gone=wait_gone, is_running=is_running)
