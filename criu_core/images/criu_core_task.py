"""criu-core's own per-task image, ``criu-core-PID.img`` (image type ``CRIU_CORE_TASK``, message
``criu_core_task_entry`` of ../proto/criu_core_task.proto).

CRIU 4.2's messages are never extended (DESIGN.md, promise 1). What a task has beyond them goes here, in one
file per task, written only for a task that has some of it, so that a dump of ordinary state holds CRIU's files
exactly as CRIU writes them:

* ``exit_signal``: the signal its parent gets when it ends, when that is not SIGCHLD (clone's exit_signal);
* ``vma_names``: ``[anon:NAME]`` names of anonymous VMAs (prctl PR_SET_VMA_ANON_NAME), by VMA start;
* ``parent_pages``: ``dump --dedup-cow-pages`` ranges a child leaves to its parent (same physical pages at
  dump); they are not in the child's pagemap, and the inventory then names :data:`COW_PAGES_INVENTORY_NAME`.

CRIU 4.2 restores a dump with only exit signals or names as it restores any other (SIGCHLD, unnamed VMAs);
crit refuses the file (unknown magic) and decodes every other one. ``criu-py show`` decodes it.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable
from typing import Any

from criu_core.images.messages import new

__all__ = ["COW_PAGES_INVENTORY_NAME", "EXIT_SIGNAL_MAX", "IMAGE", "task_entry"]

IMAGE = "CRIU_CORE_TASK"  # magic.py; file criu-core-PID.img
EXIT_SIGNAL_MAX = 64  # _NSIG: clone3 refuses a larger exit_signal (valid_signal)
# Named in inventory.plugins_entry by a dump that left pages to parent tasks (--dedup-cow-pages): CRIU 4.2 stops
# at a plugin name it has no plugin for ("Missing plugins") instead of restoring such pages as zeros;
# criu-core's built-in memory restore answers to it.
COW_PAGES_INVENTORY_NAME = "criu-core-cow-pages"


def task_entry(
    exit_signal: int = int(signal.SIGCHLD),
    vma_names: Iterable[tuple[int, str]] = (),
    parent_pages: Iterable[tuple[int, int]] = (),
) -> Any | None:
    """The ``criu_core_task_entry`` of one task, or None when it has nothing beyond CRIU's images (SIGCHLD,
    no named VMA, no page left to its parent): then no file is written."""
    msg = new("criu_core_task.criu_core_task_entry")
    if exit_signal != signal.SIGCHLD:
        msg.exit_signal = exit_signal
    for start, name in vma_names:
        msg.vma_names.add(start=start, name=name)
    for vaddr, nr in parent_pages:
        msg.parent_pages.add(vaddr=vaddr, nr_pages=nr)
    if not msg.HasField("exit_signal") and not msg.vma_names and not msg.parent_pages:
        return None
    return msg
