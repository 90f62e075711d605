"""``criu-py --help``: the usage text, generated from the option table (plugin options included)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from criu_core.cli.table import COMMANDS

if TYPE_CHECKING:
    from criu_core.options import OptionRegistry, OptionSpec

__all__ = ["short_usage", "usage_text"]

_USAGE = """\
Usage:
  criu-py dump|pre-dump -t PID [<options>]
  criu-py restore [<options>]
  criu-py check [--feature FEAT] [--all]
  criu-py page-server
  criu-py service [<options>]
  criu-py swrk FD
  criu-py cpuinfo dump|check
  criu-py dedup
  criu-py lazy-pages -D DIR [<options>]
  criu-py show DIR | decode -i FILE [-o OUT] [--pretty] | encode -i FILE [-o OUT]
  criu-py plugins | demo
"""


def short_usage() -> str:
    return _USAGE + "\nTry -h|--help for more info\n"


def _spell(spec: OptionSpec) -> str:
    short = f"-{spec.short}|" if spec.short else ""
    if spec.kind == "flag":
        arg = ""
    elif spec.optional_arg:
        arg = "[=ARG]" if not spec.short else "[ARG]"
    else:
        arg = " ARG"
    return f"  {short}--{spec.name}{arg}"


def usage_text(registry: OptionRegistry) -> str:
    """The full help: usage, commands, CRIU's options, then each plugin's options under its name."""
    lines = [_USAGE, "Commands:"]
    for name, summary in COMMANDS.items():
        lines.append(f"  {name:<12} {summary}")
    lines += ["", "Options (booleans also accept --no-NAME; '*' marks options criu-py does not support yet):"]
    plugin_specs: dict[str, list[OptionSpec]] = {}
    for spec in registry.specs.values():
        if spec.owner != "criu":
            plugin_specs.setdefault(spec.owner, []).append(spec)
            continue
        mark = " " if spec.implemented else "*"
        lines.append(f"{mark}{_spell(spec)[1:]:<36} {spec.help}")
    for owner, specs in plugin_specs.items():
        lines += ["", f"Options of plugin {owner}:"]
        for spec in specs:
            lines.append(f"{_spell(spec):<37} {spec.help}")
    lines += ["", "Environment: CRIU_CONFIG_FILE (extra config file), CRIU_PY_DISABLE_PLUGINS (comma-separated)."]
    return "\n".join(lines) + "\n"
