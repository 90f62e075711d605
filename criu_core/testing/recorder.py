"""HookRecorder: what hooks a host called, with which arguments, in which order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["HookCall", "HookRecorder"]


@dataclass
class HookCall:
    name: str
    kwargs: dict[str, Any]


@dataclass
class HookRecorder:
    """Attach to a PluginHost with :meth:`attach`; every hook call is appended to :attr:`calls`."""

    calls: list[HookCall] = field(default_factory=list)
    _undo: Any = None

    def attach(self, host: Any) -> HookRecorder:
        def before(hook_name: str, hook_impls: Any, kwargs: dict[str, Any]) -> None:
            if not self.calls or self.calls[-1].name != hook_name or self.calls[-1].kwargs is not kwargs:
                self.calls.append(HookCall(hook_name, kwargs))

        def after(outcome: Any, hook_name: str, hook_impls: Any, kwargs: dict[str, Any]) -> None:
            return None

        self._undo = host.pm.add_hookcall_monitoring(before, after)
        return self

    def detach(self) -> None:
        if self._undo is not None:
            self._undo()
            self._undo = None

    def names(self) -> list[str]:
        return [c.name for c in self.calls]

    def get(self, name: str) -> list[HookCall]:
        return [c for c in self.calls if c.name == name]
