"""``criu-py swrk FD``: a thin entry into :mod:`criu_core.service`, which speaks CRIU's RPC protocol."""

from __future__ import annotations

import gc
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from criu_core.cli.app import Invocation

__all__ = ["serve_one", "serve_service"]


def serve_one(fd: int, inv: Invocation, log: logging.Logger) -> int:
    """Serve requests on the inherited socket ``fd``; return the exit code (CRIU's: 0, 1 or 255)."""
    from criu_core.service import serve_swrk

    gc.enable()  # a server: criu_core.cli.main.entry turned the collector off for one-shot commands

    return serve_swrk(fd, inv, log)


def serve_service(inv: Invocation, log: logging.Logger) -> int:
    """``criu-py service``: accept RPC connections at ``--address`` until killed."""
    from criu_core.service import run_service

    gc.enable()  # a server: criu_core.cli.main.entry turned the collector off for one-shot commands

    return run_service(inv, log)
