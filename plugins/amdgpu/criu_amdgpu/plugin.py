"""Hook implementations of the amdgpu plugin (the mechanics live beside this module)."""

from __future__ import annotations

from typing import Any

from criu_core.hookspecs import hookimpl

__all__ = ["CRIU_INVENTORY_NAME", "criu_init"]

CRIU_INVENTORY_NAME = "amdgpu_plugin"  # the name CRIU's own amdgpu plugin records in the inventory


@hookimpl
def criu_init(ctx: Any, stage: str) -> None:
    ctx.log.debug("amdgpu: initialised for %s", stage)
