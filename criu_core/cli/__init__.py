"""The CRIU-compatible command line, ``criu-py``.

Modules:

* :mod:`.main` - the entry point; ``--version`` and the pass-through commands answer without loading plugins;
* :mod:`.table` - CRIU 4.2's option table as data, and ``IMPLEMENTED``: the one list of options the engines
  honour (an engine that starts honouring an option adds its long name there; nothing else changes);
* :mod:`.parser` - a ``getopt_long`` work-alike over the option registry;
* :mod:`.config` - configuration files and their precedence, ``apply_rpc_config_file`` for the RPC layer;
* :mod:`.app` - :func:`~criu_core.cli.app.parse_command_line` (what tests call) and ``run``;
* :mod:`.commands` - one function per command; engines are imported lazily;
* :mod:`.help` - the ``--help`` text; :mod:`.swrk` - hands `swrk` and `service` to :mod:`criu_core.service`.

Environment: ``CRIU_CONFIG_FILE`` (as CRIU), ``CRIU_PY_DISABLE_PLUGINS`` (comma-separated plugin names, read
by the PluginHost), ``CRIU_PY_GLOBAL_CONFIG_DIR`` (tests only: replaces ``/etc/criu/``).
"""

from __future__ import annotations

__all__: list[str] = []
