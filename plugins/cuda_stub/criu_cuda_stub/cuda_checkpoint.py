"""NVIDIA's ``cuda-checkpoint`` utility, driven as CRIU 4.2's CUDA plugin drives it.

The plugin never touches the GPU: ``cuda-checkpoint`` moves a process's device state into its host memory (where an
ordinary dump saves it) and back. This module knows the utility's command lines, how to read its answers and how to
run it without ever waiting forever:

* ``cuda-checkpoint -h``: the capability probe; the usage must mention ``--action`` (r555+ driver).
* ``cuda-checkpoint --get-restore-tid --pid P``: prints the TID of the process's CUDA checkpoint helper thread; a
  non-zero exit means the process does not use CUDA.
* ``cuda-checkpoint --get-state --pid T``: ``running``, ``locked`` or ``checkpointed`` (prefix-matched, as CRIU does).
* ``cuda-checkpoint --action lock --pid P --timeout MS``, ``--action checkpoint|restore|unlock --pid P``.

Every call runs in its own session with a deadline. On expiry the whole process group is killed (a wrapper script
whose child keeps the output pipe open cannot hold us either) and :class:`CudaCheckpointTimeout` names the task,
the action and what the utility had printed so far.
"""

from __future__ import annotations

import enum
import os
import signal
from typing import TYPE_CHECKING

from criu_core.errors import CriuError
from criu_core.records import dataclass

if TYPE_CHECKING:
    import subprocess

__all__ = [
    "BINARY",
    "CallResult",
    "CudaCheckpoint",
    "CudaCheckpointError",
    "CudaCheckpointTimeout",
    "CudaState",
    "CudaUnavailable",
    "parse_restore_tid",
    "parse_state",
]

BINARY = "cuda-checkpoint"
# What CRIU's plugin requires in the usage text: drivers before r555 only have --toggle.
ACTION_FLAG = "--action"
# How much of the utility's output goes into an error message (CRIU keeps 128 bytes; we keep more, it is cheap).
OUTPUT_LIMIT = 1024


class CudaState(enum.IntEnum):
    """A CUDA process's checkpoint state (CRIU's ``cuda_task_state_t``)."""

    UNKNOWN = -1
    RUNNING = 0
    LOCKED = 1
    CHECKPOINTED = 2


@dataclass(frozen=True)
class CallResult:
    """One finished run of the utility: its argv, exit status and combined stdout+stderr."""

    argv: tuple[str, ...]
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class CudaCheckpointError(CriuError):
    """``cuda-checkpoint`` failed on a task: names the task, the action and what the utility said."""

    def __init__(self, pid: int, action: str, output: str, returncode: int | None = None, msg: str = "") -> None:
        said = _clip(output) or "(no output)"
        status = f" (exit status {returncode})" if returncode is not None else ""
        text = msg or f"cuda_stub: cuda-checkpoint {action} failed on task {pid}{status}: {said}"
        super().__init__(text, pid=pid, action=action, output=output, returncode=returncode)


class CudaCheckpointTimeout(CudaCheckpointError):
    """``cuda-checkpoint`` did not finish in time and was killed."""

    def __init__(self, pid: int, action: str, output: str, timeout: float) -> None:
        said = _clip(output) or "(no output)"
        super().__init__(
            pid, action, output, None,
            msg=f"cuda_stub: cuda-checkpoint {action} on task {pid} did not finish within {timeout:g} s and was "
                f"killed; it said: {said}",
        )
        self.timeout = timeout
        self.fields["timeout"] = timeout


class CudaUnavailable(CriuError):
    """A task uses CUDA but this machine cannot checkpoint it (no utility, a driver too old, no GPU).

    With ``images=True``: the images hold CUDA state that this machine cannot restore.
    """

    def __init__(self, pid: int | None, evidence: str, reason: str, *, images: bool = False) -> None:
        if images:
            msg = (f"cuda_stub: the images hold CUDA state (their inventory lists cuda_plugin) but it cannot be "
                   f"restored here: {reason}")
        else:
            msg = f"cuda_stub: task {pid} uses CUDA ({evidence}) but it cannot be checkpointed here: {reason}"
        super().__init__(msg, pid=pid, evidence=evidence, reason=reason)


def _clip(output: str) -> str:
    text = " ".join(output.split())
    return text if len(text) <= OUTPUT_LIMIT else text[:OUTPUT_LIMIT] + "..."


def parse_state(output: str) -> CudaState:
    """Read ``--get-state``'s answer; prefix-matched like CRIU (``running\\n`` is RUNNING)."""
    text = output.strip()
    for word, state in (("running", CudaState.RUNNING), ("locked", CudaState.LOCKED),
                        ("checkpointed", CudaState.CHECKPOINTED)):
        if text.startswith(word):
            return state
    return CudaState.UNKNOWN


def parse_restore_tid(output: str) -> int | None:
    """Read ``--get-restore-tid``'s answer: the first token as a positive TID, else ``None``."""
    tokens = output.split()
    if not tokens:
        return None
    try:
        tid = int(tokens[0])
    except ValueError:
        return None
    return tid if tid > 0 else None


class CudaCheckpoint:
    """Runs the utility found on ``$PATH`` (as CRIU's execvp) with a deadline on every call.

    :param query_timeout: seconds for ``-h``, ``--get-restore-tid`` and ``--get-state``.
    :param action_timeout: seconds for ``--action checkpoint|restore|unlock`` (they copy device memory).
    :param lock_grace: seconds granted beyond lock's own ``--timeout`` before the call is killed.
    :param binary: the program name or path (``cuda-checkpoint``).
    """

    def __init__(self, *, query_timeout: float, action_timeout: float, lock_grace: float = 5.0,
                 binary: str = BINARY) -> None:
        self.query_timeout = query_timeout
        self.action_timeout = action_timeout
        self.lock_grace = lock_grace
        self.binary = binary
        self.calls: list[tuple[str, ...]] = []  # every argv run, for logs and tests

    # ------------------------------------------------------------------------------------------------ running

    def which(self) -> str | None:
        """The utility's path on the current ``$PATH``, or ``None``."""
        import shutil  # here and in run(): a machine without a GPU never needs them, and every command loads us

        return shutil.which(self.binary)

    def run(self, args: list[str], *, timeout: float, pid: int, action: str) -> CallResult:
        """Run ``cuda-checkpoint ARGS``; raise :class:`CudaCheckpointTimeout` if it outlives ``timeout``.

        A utility that cannot be started raises :class:`CudaCheckpointError` (status 127, like a shell).
        """
        import subprocess

        argv = (self.binary, *args)
        self.calls.append(argv)
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            raise CudaCheckpointError(pid, action, f"cannot run {self.binary}: {exc.strerror}", 127) from exc
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            said = _kill_group(proc, exc.output or b"")
            raise CudaCheckpointTimeout(pid, action, said, timeout) from None
        return CallResult(argv, proc.returncode, out.decode(errors="replace"))

    # ------------------------------------------------------------------------------------------------ commands

    def probe(self) -> str | None:
        """Check the utility can be used; ``None`` if so, else why not (the warning CRIU prints)."""
        if self.which() is None:
            return "check that cuda-checkpoint is present in $PATH"
        try:
            res = self.run(["-h"], timeout=self.query_timeout, pid=0, action="-h")
        except CudaCheckpointError as exc:
            return f"check that cuda-checkpoint is present in $PATH ({exc})"
        if ACTION_FLAG not in res.output:
            return ("cuda-checkpoint --action flag not supported, an r555 or higher version driver is required. "
                    "Disabling CUDA plugin")
        return None

    def get_restore_tid(self, pid: int) -> int | None:
        """The helper thread's TID of a CUDA process; ``None`` if ``pid`` does not use CUDA."""
        res = self.run(["--get-restore-tid", "--pid", str(pid)], timeout=self.query_timeout, pid=pid,
                       action="--get-restore-tid")
        if not res.ok:
            return None
        # Exit 0 without a TID: CRIU reads it with strtol and treats a failure as "not CUDA"; so do we.
        return parse_restore_tid(res.output)

    def get_state(self, pid: int, restore_tid: int) -> tuple[CudaState, str]:
        """The checkpoint state, asked of the helper thread ``restore_tid`` (as CRIU does), with the raw answer."""
        res = self.run(["--get-state", "--pid", str(restore_tid)], timeout=self.query_timeout, pid=pid,
                       action="--get-state")
        if not res.ok:
            raise CudaCheckpointError(pid, "--get-state", res.output, res.returncode)
        return parse_state(res.output), res.output

    def lock(self, pid: int, timeout_ms: int) -> CallResult:
        """``--action lock --timeout MS``: the utility gives up itself after MS; we kill it a grace later."""
        return self.run(["--action", "lock", "--pid", str(pid), "--timeout", str(timeout_ms)],
                        timeout=timeout_ms / 1000 + self.lock_grace, pid=pid, action="--action lock")

    def action(self, pid: int, name: str) -> CallResult:
        """``--action NAME`` for checkpoint, restore and unlock (no timeout argument, as CRIU)."""
        return self.run(["--action", name, "--pid", str(pid)], timeout=self.action_timeout, pid=pid,
                        action=f"--action {name}")


def _kill_group(proc: subprocess.Popen[bytes], seen: bytes) -> str:
    """Kill the call's whole process group and collect what it printed (``seen`` so far); never blocks for long.

    ``communicate`` keeps its buffers across a timeout, so the second call returns the whole output.
    """
    import subprocess

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        out, _ = proc.communicate(timeout=2)
    except subprocess.TimeoutExpired:  # a grandchild left the group and holds the pipe: stop reading
        proc.kill()
        if proc.stdout is not None:
            proc.stdout.close()
        proc.wait(timeout=2)
        return seen.decode(errors="replace")
    return (out or seen).decode(errors="replace")
