"""Deferred standard-library modules: imported as usual, their code runs at the first use.

A one-shot ``criu-py`` command pays for every module an import statement names, even one it never uses:
``pathlib`` imports ``urllib.parse``, which imports ``ipaddress`` (about 1 ms) for bracketed URL hosts;
protobuf's ``well_known_types`` imports ``calendar`` (with ``locale``, about 2 ms) for ``Timestamp``'s
methods. :func:`defer` puts a placeholder in ``sys.modules`` that runs the module's code into itself at the
first access to an attribute it does not have yet, so behaviour is unchanged, only when the cost is paid.

Unlike :class:`importlib.util.LazyLoader`'s modules, reading ``__spec__`` does not run the code: ``import X``
reads it (to see whether X is still initializing) and would load a LazyLoader module at once. Caveat, as for
LazyLoader: two threads touching a deferred module for the very first time at the same moment may race.
Only top-level modules without submodules are deferred. No ``typing`` here: this runs before pluggy loads it.
"""

from __future__ import annotations

import sys
import types

__all__ = ["DeferredModule", "defer"]


class DeferredModule(types.ModuleType):
    """A module placeholder whose code runs at the first access to an attribute it does not have yet."""

    def __getattr__(self, attr: str) -> object:
        self.__class__ = types.ModuleType  # from now on an ordinary module (and no recursion while it runs)
        self.__spec__.loader.exec_module(self)  # type: ignore[union-attr]
        return getattr(self, attr)


def defer(*names: str) -> None:
    """Install a :class:`DeferredModule` for each top-level module of ``names`` not imported yet."""
    from importlib.util import find_spec, module_from_spec

    for name in names:
        if name in sys.modules or "." in name:
            continue
        spec = find_spec(name)
        if spec is None or spec.loader is None:
            continue
        module = module_from_spec(spec)
        module.__class__ = DeferredModule
        sys.modules[name] = module
