"""Option declarations shared by the command line, configuration files, RPC and plugins.

The command line (``criu_core.cli``) owns CRIU's table; plugins add their own through the
``criu_addoption`` hook, which receives an :class:`OptionRegistry`. Parsed values land in an
:class:`Options` namespace: attribute names are the long option names with ``-`` replaced by ``_``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import SimpleNamespace
from typing import Any

from criu_core.records import dataclass, field

__all__ = ["OptionRegistry", "OptionSpec", "Options"]

ALL_STAGES = ("dump", "pre-dump", "restore", "check", "page-server", "lazy-pages", "swrk", "service", "cpuinfo")


@dataclass(frozen=True)
class OptionSpec:
    """One long option (``--leave-running``) and how it is parsed.

    ``kind`` is ``"flag"`` (a boolean; ``--no-NAME`` is accepted too, as CRIU's BOOL_OPT), ``"value"`` (takes one
    argument), ``"list"`` (repeatable, values accumulate) or ``"count"`` (``-v`` repeats).
    ``implemented`` False means the option is recognised and refused with a clear message.
    """

    name: str
    kind: str = "flag"
    short: str | None = None
    stages: tuple[str, ...] = ALL_STAGES
    help: str = ""
    default: Any = None
    convert: Callable[[str], Any] | None = None
    implemented: bool = True
    optional_arg: bool = False  # --manage-cgroups[=MODE], -v[N]
    owner: str = "criu"

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")


@dataclass
class OptionRegistry:
    """The table of known options; plugins add to it in ``criu_addoption``."""

    specs: dict[str, OptionSpec] = field(default_factory=dict)
    _owner: str = "criu"

    def add(self, spec: OptionSpec) -> OptionSpec:
        if spec.name in self.specs:
            raise ValueError(f"option --{spec.name} is declared twice ({self.specs[spec.name].owner}, {spec.owner})")
        self.specs[spec.name] = spec
        return spec

    def add_flag(self, name: str, *, stages: Iterable[str] = ALL_STAGES, help: str = "", short: str | None = None,
                 default: bool = False, implemented: bool = True) -> OptionSpec:
        """Declare a boolean option ``--NAME`` (and ``--no-NAME``)."""
        return self.add(OptionSpec(name.lstrip("-"), "flag", short, tuple(stages), help, default, None,
                                   implemented, False, self._owner))

    def add_option(self, name: str, *, stages: Iterable[str] = ALL_STAGES, help: str = "", short: str | None = None,
                   default: Any = None, convert: Callable[[str], Any] | None = None, repeat: bool = False,
                   implemented: bool = True, optional_arg: bool = False) -> OptionSpec:
        """Declare an option that takes a value (``repeat=True``: may be given many times, values are a list)."""
        kind = "list" if repeat else "value"
        dflt = [] if repeat and default is None else default
        return self.add(OptionSpec(name.lstrip("-"), kind, short, tuple(stages), help, dflt, convert,
                                   implemented, optional_arg, self._owner))

    def owned_by(self, owner: str) -> OptionRegistry:
        """A view whose additions are attributed to ``owner`` (a plugin's name)."""
        view = OptionRegistry(self.specs)
        view._owner = owner
        return view

    def defaults(self) -> Options:
        opts = Options()
        for spec in self.specs.values():
            value = spec.default
            if isinstance(value, list):
                value = list(value)
            setattr(opts, spec.dest, value)
        return opts


class Options(SimpleNamespace):
    """Parsed option values; unknown names read as ``None`` so plugins may probe options of other plugins."""

    def __getattr__(self, name: str) -> Any:  # only called when the attribute is missing
        if name.startswith("__"):
            raise AttributeError(name)
        return None

    def get(self, name: str, default: Any = None) -> Any:
        value = self.__dict__.get(name.replace("-", "_"))
        return default if value is None else value
