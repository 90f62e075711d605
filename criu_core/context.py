"""Per-run contexts: what every hook receives first.

A context carries the options, the plugin host, the image directory, the logger, the stash (typed per-run
state for plugins) and the thread pools it handed out; it is created by the command line, RPC or a test,
and closed when the run ends (pools are joined then at the latest).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from criu_core.options import Options
from criu_core.stash import Stash

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from criu_core.plugins import PluginHost

__all__ = ["BaseContext", "DumpContext", "RestoreContext", "CheckContext"]


@dataclass
class BaseContext:
    """Common run state. ``stage`` is ``"dump"``, ``"pre-dump"``, ``"restore"`` or ``"check"``."""

    options: Options
    host: "PluginHost"
    images_dir: Path
    work_dir: Path | None = None
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("criu"))
    stash: Stash = field(default_factory=Stash)
    stage: str = ""
    images: Any = None  # criu_core.images.ImageDir, opened by the orchestrator
    used_plugins: list[str] = field(default_factory=list)
    # Set by the RPC layer when the client asked for notifications (criu_opts.notify_scripts); see notify().
    notifier: Callable[[BaseContext, str, int | None], None] | None = field(default=None, repr=False)
    _pools: list[ThreadPoolExecutor] = field(default_factory=list, repr=False)

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

    def notify(self, name: str, pid: int | None = None) -> None:
        """Tell whoever drives this run that it reached the point ``name`` (CRIU's action-script names).

        Dump: ``pre-dump``, ``query-ext-files``, ``post-dump``; restore: ``pre-restore``, ``post-restore``
        (``pid``: the root task's real PID), ``pre-resume``, ``post-resume``. A no-op unless a notifier is
        set (RPC with ``notify_scripts``). It blocks until the client answers and raises a CriuError when the
        client reports a failure, which fails the run like any other error.
        """
        if self.notifier is not None:
            self.notifier(self, name, pid)

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


@dataclass
class CheckContext(BaseContext):
    """``criu-py check``: plugins may add feature probes."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.stage = self.stage or "check"
