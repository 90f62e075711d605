"""Lazy access to the generated protobuf classes.

``criu_core.images`` must import in a few milliseconds, so nothing here touches google.protobuf until a class
is asked for. ``message_class("core.core_entry")`` imports ``criu_core.images.pb.core_pb2`` on first use.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

__all__ = ["message_class", "new", "pb_module"]


@cache
def pb_module(module: str) -> Any:
    """The generated module for proto file ``module`` (``"core"`` gives ``criu_core.images.pb.core_pb2``)."""
    if not module.replace("_", "").isalnum():
        raise ValueError(f"bad proto module name {module!r}")
    return importlib.import_module(f"criu_core.images.pb.{module}_pb2")


@cache
def message_class(qualname: str) -> Any:
    """The message class for ``"<proto module>.<message>"``; raises KeyError if there is no such message."""
    module, _, name = qualname.partition(".")
    try:
        return getattr(pb_module(module), name)
    except (AttributeError, ModuleNotFoundError, ValueError):
        raise KeyError(qualname) from None


def new(qualname: str, **fields: Any) -> Any:
    """A new message of type ``qualname`` with ``fields`` set (protobuf's keyword constructor)."""
    return message_class(qualname)(**fields)
