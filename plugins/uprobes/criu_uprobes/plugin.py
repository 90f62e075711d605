"""Hook implementations of the uprobes plugin."""

from __future__ import annotations

from criu_core.hookspecs import hookimpl
from criu_core.options import OptionRegistry

__all__ = ["criu_addoption"]


@hookimpl
def criu_addoption(parser: OptionRegistry) -> None:
    parser.add_flag("allow-uprobes", stages=("dump", "restore"), help="allow dump/restore with uprobes vma")
