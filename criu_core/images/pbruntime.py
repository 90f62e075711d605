"""Keeps protobuf's pure-Python message implementation off the import path when the upb backend is in use.

``google.protobuf.descriptor_pool`` and ``internal.builder`` import ``internal.python_message`` (and with it
``text_format``, ``decoder``, ``encoder``, ``containers``...) unconditionally, although with the upb
backend (protobuf's default since 4.21) nothing on the paths the generated ``*_pb2`` modules take calls into
it: only pure-Python descriptor pools do. Importing it costs several milliseconds per ``criu-py`` command.
:func:`defer_pure_python_runtime` registers those two modules as lazy modules (:class:`importlib.util.LazyLoader`):
the import statements bind them as before, and the first attribute access loads them for real (``print(msg)``
reaches ``text_format`` that way, from upb's C code), so behaviour does not change, only when the cost is paid.

``calendar`` (with ``locale``, about 2 ms) is deferred too (:func:`criu_core.lazymod.defer`): upb imports
``internal.well_known_types`` itself when it creates the first message class (for the mixins of
``Timestamp``, ``Duration``...), and that module imports ``calendar`` only for ``Timestamp``'s methods.

With the pure-Python backend (``PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python``) nothing is deferred. Caveat of
LazyLoader before Python 3.13: two threads touching a deferred module for the very first time at the same
moment may race; nothing in criu-core formats messages as text from worker threads.
"""

from __future__ import annotations

import sys

from criu_core.lazymod import defer

__all__ = ["DEFERRED", "DEFERRED_STDLIB", "WANTED", "defer_if_wanted", "defer_pure_python_runtime"]

# Leaf first: python_message imports text_format.
DEFERRED = ("google.protobuf.text_format", "google.protobuf.internal.python_message")
# Imported by google.protobuf.internal.well_known_types, used there only inside methods.
DEFERRED_STDLIB = ("calendar",)


# Set by the criu-py command (criu_core.cli.main) before anything loads protobuf; a library user of criu_core
# (a plugin's tests, an in-process client) keeps its sys.modules untouched.
WANTED = False


def defer_if_wanted() -> None:
    """:func:`defer_pure_python_runtime` if the ``criu-py`` command asked for it (:data:`WANTED`)."""
    if WANTED:
        defer_pure_python_runtime()


def defer_pure_python_runtime() -> None:
    """Install lazy modules for :data:`DEFERRED` unless they are loaded already or the backend is not upb, and
    for :data:`DEFERRED_STDLIB` unless loaded already."""
    if all(name in sys.modules for name in DEFERRED + DEFERRED_STDLIB):
        return
    import importlib.util

    from google.protobuf.internal import api_implementation

    defer(*DEFERRED_STDLIB)
    if api_implementation.Type() != "upb":
        return
    for name in DEFERRED:
        if name in sys.modules:
            continue
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            continue
        loader = importlib.util.LazyLoader(spec.loader)
        spec.loader = loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        loader.exec_module(module)
        parent, _, child = name.rpartition(".")
        setattr(sys.modules[parent], child, module)
