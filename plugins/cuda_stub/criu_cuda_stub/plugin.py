"""Hook implementations of the cuda_stub plugin (CRIU 4.2's ``cuda_plugin``); the mechanics are in
:mod:`criu_cuda_stub.session` and :mod:`criu_cuda_stub.cuda_checkpoint`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from criu_core.hookspecs import hookimpl
from criu_cuda_stub import session

if TYPE_CHECKING:
    from criu_core.context import BaseContext, DumpContext, RestoreContext
    from criu_core.options import OptionRegistry
    from criu_core.resources import Task

__all__ = [
    "CRIU_INVENTORY_NAME",
    "criu_addoption",
    "criu_devices_checkpoint",
    "criu_devices_pause",
    "criu_devices_resume_late",
    "criu_fini",
    "criu_init",
    "criu_inventory_check",
]

CRIU_INVENTORY_NAME = session.INVENTORY_NAME  # the name CRIU 4.2's CUDA plugin records in the inventory


@hookimpl
def criu_addoption(parser: OptionRegistry) -> None:
    parser.add_option("--cuda-proc-root", stages=("dump", "pre-dump", "restore"),
                      help=f"procfs root where the NVIDIA driver is looked for (default /proc, or "
                           f"${session.PROC_ROOT_ENV}); for tests")
    parser.add_option("--cuda-action-timeout", stages=("dump", "restore"), convert=float,
                      default=session.DEFAULT_ACTION_TIMEOUT_S,
                      help="seconds a cuda-checkpoint checkpoint, restore or unlock may take before it is killed")


@hookimpl
def criu_init(ctx: BaseContext, stage: str) -> None:
    session.start(ctx, stage)


@hookimpl
def criu_inventory_check(ctx: RestoreContext, inventory: Any) -> None:
    # The restore's gate needs the inventory; criu_init may have run before it was read.
    if session.SESSION not in ctx.stash:
        session.start(ctx, "restore", inventory)


@hookimpl
def criu_devices_pause(ctx: DumpContext, task: Task) -> None:
    session.pause_task(ctx, task.pid)


@hookimpl
def criu_devices_checkpoint(ctx: DumpContext, task: Task) -> None:
    session.checkpoint_task(ctx, task.pid)


@hookimpl
def criu_devices_resume_late(ctx: RestoreContext, task: Task) -> None:
    session.resume_task(ctx, task.pid)


@hookimpl
def criu_fini(ctx: BaseContext, stage: str, success: bool) -> None:
    session.finish(ctx, stage, success)
