"""Whether the core engines a real ``criu-py dump``/``restore`` needs are importable in this build."""

from __future__ import annotations

import importlib.util

__all__ = ["ENGINE_MODULES", "missing_engines"]

ENGINE_MODULES = ("criu_core.dump", "criu_core.restore", "criu_core.cli.main")


def missing_engines() -> str | None:
    """Why a real ``criu-py dump``/``restore`` cannot run here, or ``None`` (for a ``skipif`` reason)."""
    for name in ENGINE_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            return f"{name} is not importable: the core dump/restore engines are not on this branch yet"
    return None
