"""Hook implementations of the cuda_stub plugin."""

from __future__ import annotations

from typing import Any

from criu_core.hookspecs import hookimpl

__all__ = ["criu_init", "CRIU_INVENTORY_NAME"]

CRIU_INVENTORY_NAME = "cuda_plugin"  # the name CRIU 4.2's CUDA plugin records in the inventory


@hookimpl
def criu_init(ctx: Any, stage: str) -> None:
    ctx.log.debug("cuda_stub: initialised for %s", stage)
