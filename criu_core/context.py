"""Per-run contexts: what every hook receives first.

A context carries the options, the plugin host, the image directory, the logger, the stash (typed per-run
state for plugins) and the thread pools it handed out; it is created by the command line, RPC or a test,
and closed when the run ends (pools are joined then at the latest).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from criu_core.options import Options
from criu_core.records import dataclass, field
from criu_core.stash import Stash

if TYPE_CHECKING:
    import logging
    from concurrent.futures import ThreadPoolExecutor

    from criu_core.plugins import PluginHost

__all__ = ["BaseContext", "CheckContext", "DumpContext", "RestoreContext"]


def _criu_logger() -> logging.Logger:
    import logging

    return logging.getLogger("criu")


@dataclass
class BaseContext:
    """Common run state. ``stage`` is ``"dump"``, ``"pre-dump"``, ``"restore"`` or ``"check"``."""

    options: Options
    host: PluginHost
    images_dir: Path
    work_dir: Path | None = None
    log: logging.Logger = field(default_factory=lambda: _criu_logger())
    stash: Stash = field(default_factory=Stash)
    stage: str = ""
    images: Any = None  # criu_core.images.ImageDir, opened by the orchestrator
    used_plugins: list[str] = field(default_factory=list)
    # Set by the RPC layer when the client asked for notifications (criu_opts.notify_scripts); see notify().
    notifier: Callable[..., None] | None = field(default=None, repr=False)
    _pools: list[ThreadPoolExecutor] = field(default_factory=list, repr=False)
    # Set by the dump/restore engine while it holds the tree: (pid, tid) -> the tracer's RemoteTask of that thread.
    tracee: Callable[[int, int], Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.images_dir = Path(self.images_dir)
        if self.work_dir is None:
            self.work_dir = self.images_dir

    def executor(self, max_workers: int, name: str) -> ThreadPoolExecutor:
        """A thread pool owned by this run; it is shut down (joined) by :meth:`close` at the latest."""
        from concurrent.futures import ThreadPoolExecutor  # only the runs that use one pay for the import

        pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name)
        self._pools.append(pool)
        return pool

    def mark_plugin_used(self, name: str) -> None:
        """Record that the images depend on plugin ``name`` (written to the inventory's ``plugins_entry``)."""
        if name not in self.used_plugins:
            self.used_plugins.append(name)

    def notify(self, name: str, pid: int | None = None, fd: int | None = None) -> None:
        """Tell whoever drives this run that it reached the point ``name`` (CRIU's action-script names).

        Dump: ``pre-dump``, ``query-ext-files``, ``post-dump``; restore: ``pre-restore``, ``post-restore``
        (``pid``: the root task's real PID), ``pre-resume``, ``post-resume``. A no-op unless a notifier is
        set (RPC with ``notify_scripts``). It blocks until the client answers and raises a CriuError when the
        client reports a failure, which fails the run like any other error.

        ``fd``: a descriptor of ours sent with the notification (SCM_RIGHTS), as CRIU sends the master of an
        orphaned pty with ``orphan-pts-master``; it stays ours (the client gets a copy).
        """
        if self.notifier is None:
            return
        if fd is None:
            self.notifier(self, name, pid)
        else:
            self.notifier(self, name, pid, fd=fd)

    def thread_running(self, pid: int, tid: int) -> AbstractContextManager[None]:
        """A context manager during which thread ``tid`` of the frozen process ``pid`` runs, then is stopped again.

        For device plugins whose driver needs a thread of the task alive while they work (CRIU's CUDA plugin
        runs ``cuda-checkpoint`` with the CUDA helper thread running). Available while the engine holds the
        tree: at dump from seizing until the tree is released (``criu_devices_checkpoint``, file hooks,
        ``criu_devices_dump_late``, ``criu_fini``), at restore from the threads' creation until they are detached
        (``criu_devices_resume_late``). Inside the block the thread has its own registers, every signal but
        SIGTRAP blocked and no ptrace options; afterwards it is interrupted, and its options and signal mask are
        put back. Call it from the thread the hook was called from (the tracer). Raises a CriuError when no
        tree is held or the thread is not part of it.
        """
        from criu_core.errors import CriuError

        if self.tracee is None:
            raise CriuError(f"no traced tree: thread {tid} of task {pid} cannot be let run now", pid=pid)
        return self.tracee(pid, tid).running()

    def close(self) -> None:
        while self._pools:
            self._pools.pop().shutdown(wait=True)


@dataclass
class DumpContext(BaseContext):
    """A dump or pre-dump: ``root_pid`` is the tree's root (``-t``)."""

    root_pid: int = 0
    inventory: Any = None  # the inventory_entry being built

    def __post_init__(self) -> None:
        super().__post_init__()
        self.stage = self.stage or "dump"


@dataclass
class RestoreContext(BaseContext):
    """A restore: ``inventory`` is the validated inventory_entry of the images."""

    inventory: Any = None
    root_pid: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.stage = self.stage or "restore"

    def alloc_task_fd(self, pid: int) -> int:
        """A descriptor number for a plugin's own descriptor in restored task ``pid`` (CRIU's ``fd_next``).

        It is above every descriptor of the task's dumped fd table (so the core's installation of those never
        lands on it) and free in the task now; each call returns a new one. Valid from the task's creation
        until its descriptors are installed; plugins close what they no longer need (``criu_task_restore``).
        """
        from criu_core.restore_plan import task_state

        return task_state(self, pid).alloc_fd()


@dataclass
class CheckContext(BaseContext):
    """``criu-py check``: plugins may add feature probes."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.stage = self.stage or "check"
