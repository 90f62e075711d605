"""Testing support for criu-core and plugin authors.

Installed as a pytest plugin (entry point ``pytest11``: ``criu_core``). Fixtures:

* ``plugin_host``: a fresh :class:`~criu_core.plugins.PluginHost` with the built-ins only; register the
  plugin under test with ``plugin_host.register(module, "name")``.
* ``installed_plugin_host``: a host with every installed plugin distribution loaded.
* ``hook_recorder``: records every hook call made through a host (``hook_recorder(host)``).
* ``image_dir``: an empty image directory (a ``pathlib.Path``).
* ``recorded_proc``: a factory building a fake /proc tree from a dict of relative paths to contents.
* ``subreaper``: makes the test process a child subreaper (restored tasks reparent to it) and kills and
  reaps what is left at the end.

Helpers: :func:`missing_engines` (why ``criu-py dump``/``restore`` cannot run in this build, or ``None``).

Markers: ``root`` (needs root and the real kernel interfaces; skipped otherwise, with the reason),
``device(path)`` (needs a device node, e.g. ``/dev/kfd``; skipped where it is absent), ``slow``.
"""

from __future__ import annotations

__all__ = ["HookRecorder", "missing_engines"]

from criu_core.testing.engines import missing_engines
from criu_core.testing.recorder import HookRecorder
