"""Hook implementations of the netns plugin."""

from __future__ import annotations

from typing import Any

from criu_core.hookspecs import hookimpl

__all__ = ["criu_init"]


@hookimpl
def criu_init(ctx: Any, stage: str) -> None:
    ctx.log.debug("netns: initialised for %s", stage)
