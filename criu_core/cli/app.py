"""From a command line to a running command: configuration files, plugins, options, checks, logging.

:func:`parse_command_line` does everything that needs no side effect and is what tests call; :func:`run`
adds logging and dispatch. Order (CRIU's, plus plugins): collect the configuration sources, find
``--disable-plugin`` in them, build the :class:`~criu_core.plugins.PluginHost` (cheap: no protobuf, no
engine), put CRIU's table into the host's option registry next to the plugins' options, then parse every
source in order into one :class:`~criu_core.options.Options`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from criu_core.cli.config import config_sources
from criu_core.cli.parser import GetoptParser, Given
from criu_core.cli.table import COMMANDS, DEPRECATED, IMPLEMENTED_COMMANDS, add_criu_options
from criu_core.errors import NotImplementedOption, UsageError
from criu_core.records import dataclass, field

if TYPE_CHECKING:
    from criu_core.options import OptionRegistry, Options
    from criu_core.plugins import PluginHost

__all__ = ["REFUSING_STAGES", "Invocation", "install_table", "parse_command_line", "run"]

# Commands that would act on an option they do not honour; swrk/service/check only carry config-file
# options along (runc's /etc/criu/runc.conf says tcp-established for every command), so they never refuse.
REFUSING_STAGES = frozenset({"dump", "pre-dump", "restore", "page-server", "lazy-pages", "dedup", "cpuinfo"})
# Commands that open the images directory first, as CRIU's main() does (all but service).
_NEEDS_IMAGES_DIR = frozenset(
    {"dump", "pre-dump", "restore", "check", "swrk", "page-server", "lazy-pages", "dedup", "cpuinfo"}
)


@dataclass
class Invocation:
    """A parsed command line: what a command function receives."""

    command: str
    args: list[str]
    options: Options
    host: PluginHost
    registry: OptionRegistry
    given: dict[str, Given] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)  # config files read, in order, then "argv"

    @property
    def images_dir(self) -> Path:
        return Path(os.path.abspath(self.options.images_dir or "."))

    @property
    def work_dir(self) -> Path:
        return Path(os.path.abspath(self.options.work_dir or self.options.images_dir or "."))


def install_table(registry: OptionRegistry) -> OptionRegistry:
    """Add CRIU's option table to ``registry`` once (idempotent); return it."""
    if "tree" not in registry.specs:
        add_criu_options(registry)
    return registry


def _disabled_plugins(sources: list[tuple[str, list[str]]]) -> list[str]:
    # Needed before the host exists, so before the real parse: exact spellings only.
    names: list[str] = []
    for _, tokens in sources:
        for i, tok in enumerate(tokens):
            if tok == "--":
                break
            if tok == "--disable-plugin" and i + 1 < len(tokens):
                names.append(tokens[i + 1])
            elif tok.startswith("--disable-plugin="):
                names.append(tok.split("=", 1)[1])
    return names


def parse_command_line(
    argv: list[str], env: Mapping[str, str] | None = None, host: PluginHost | None = None
) -> Invocation:
    """Parse ``argv`` (without the program name) with the configuration files ``env`` points at.

    Validates the command, its operands, option combinations and refuses options that are set but not
    implemented for the command; raises :class:`UsageError` (or :class:`NotImplementedOption`). Touches no
    file but the configuration files. ``host`` may be given by tests; otherwise one is built honouring
    ``--disable-plugin``.
    """
    sources = config_sources(argv, env)
    if host is None:
        from criu_core.plugins import PluginHost

        host = PluginHost(disabled=_disabled_plugins(sources))
    registry = install_table(host.options)
    parser = GetoptParser(registry)
    options = parser.defaults()
    operands: list[str] = []
    for source, tokens in sources:
        found = parser.parse(tokens, options, source)
        if source == "argv":
            operands = found
        # Operands in a config file ("tcp-established yes") are ignored by CRIU too.
    inv = Invocation(
        command=operands[0] if operands else "",
        args=operands[1:],
        options=options,
        host=host,
        registry=registry,
        given=parser.given,
        sources=[s for s, _ in sources],
    )
    if options.help:
        return inv
    _validate(inv)
    return inv


def _validate(inv: Invocation) -> None:
    opts, cmd = inv.options, inv.command
    for name, msg in DEPRECATED.items():
        if getattr(opts, name.replace("-", "_")):
            raise UsageError(msg)
    if opts.version:
        return
    if not cmd:
        raise UsageError("command is required")
    if cmd not in COMMANDS:
        raise UsageError(f"unknown command: {cmd}")
    if cmd == "exec":
        err = UsageError('The "exec" action is deprecated by the Compel library.')
        err.exit_code = 255  # CRIU's main() returns -1 here
        raise err
    if opts.exec_cmd:
        if cmd != "restore":
            raise UsageError("--exec-cmd is available for the restore command only")
        if not inv.args:
            raise UsageError("--exec-cmd requires a command")
        if opts.restore_detached:
            raise UsageError("--restore-detached and --exec-cmd cannot be used together")
    elif cmd == "cpuinfo":
        if len(inv.args) != 1 or inv.args[0] not in ("dump", "check"):
            raise UsageError("cpuinfo requires an action: dump or check")
    elif cmd == "swrk":
        if len(inv.args) != 1:
            raise UsageError("Usage: criu swrk <fd>")
        if not inv.args[0].isdigit():
            raise UsageError(f"swrk: bad file descriptor {inv.args[0]!r}")
    elif inv.args:
        s = "s" if len(inv.args) > 1 else ""
        raise UsageError(f"excessive parameter{s} for command {cmd}")
    if cmd not in IMPLEMENTED_COMMANDS:
        raise NotImplementedOption(cmd, "command")
    if cmd in REFUSING_STAGES:
        _refuse_unimplemented(inv)
    if opts.leave_running and opts.leave_stopped:
        raise UsageError("--leave-running and --leave-stopped cannot be used together")
    if opts.restore_sibling and not opts.restore_detached:
        raise UsageError("--restore-sibling only makes sense with --restore-detached")
    if cmd in ("dump", "pre-dump") and not opts.tree:
        raise UsageError("pid not specified: -t/--tree PID is required")


def _refuse_unimplemented(inv: Invocation) -> None:
    defaults = inv.registry.defaults()
    for spec in inv.registry.specs.values():
        if spec.implemented or inv.command not in spec.stages:
            continue
        value = getattr(inv.options, spec.dest)
        if value == getattr(defaults, spec.dest):
            continue
        given = inv.given.get(spec.name)
        where = f" (set in {given.source})" if given and given.source != "argv" else ""
        raise NotImplementedOption(f"--{spec.name}{where}")


# ----------------------------------------------------------------------------------------------------------


def run(argv: list[str]) -> int:
    """Parse, set up logging, run the command; CriuErrors propagate (main prints them)."""
    head = argv[: argv.index("--")] if "--" in argv else argv
    if "-h" in head or "--help" in head:
        # CRIU's pre_parse(): help wins before any config file or option is looked at.
        from criu_core.cli.help import usage_text
        from criu_core.plugins import PluginHost

        host = PluginHost(disabled=_disabled_plugins([("argv", argv)]))
        sys.stdout.write(usage_text(install_table(host.options)))
        return 0
    inv = parse_command_line(argv)
    if inv.options.help:
        from criu_core.cli.help import usage_text

        sys.stdout.write(usage_text(inv.registry))
        return 0
    if inv.options.version:
        from criu_core.cli.main import version_text

        sys.stdout.write(version_text())
        return 0
    from criu_core.cli.commands import dispatch

    return dispatch(inv)
