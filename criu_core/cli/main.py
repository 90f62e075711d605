"""Entry point of ``criu-py`` (and ``python -m criu_core.cli``).

Kept light on purpose: ``--version`` answers from here without importing pluggy, logging or the option
table, and the commands that take their own arguments (``show``, ``decode``, ``encode``, ``demo``) are handed
over before any plugin is loaded. Everything else goes to :mod:`criu_core.cli.app`.

Exit codes are CRIU's: 0 success, 1 failure. A :class:`~criu_core.errors.CriuError` becomes one line
``criu-py: <message>`` on stderr; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

from criu_core.errors import CriuError

__all__ = ["CRIU_VERSION", "main", "version_text"]

CRIU_VERSION = "4.2"  # the CRIU release whose command line, images and RPC criu-core follows
PROG = "criu-py"
# Commands whose arguments are not CRIU options: argv after the command goes to them unparsed.
PASSTHROUGH = frozenset({"show", "decode", "encode", "demo"})


def version_text() -> str:
    """What ``-V/--version`` prints: CRIU's ``Version: 4.2`` line, then criu-core's own version."""
    from criu_core import __version__

    return f"Version: {CRIU_VERSION}\ncriu-core: {__version__}\n"


def main(argv: list[str] | None = None) -> int:
    """Run one ``criu-py`` command line (``argv`` without the program name) and return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    head = args[: args.index("--")] if "--" in args else args
    try:
        if args and args[0] in PASSTHROUGH:
            from criu_core.cli.commands import run_passthrough

            return run_passthrough(args[0], args[1:])
        # CRIU's pre_parse(): -h/--help anywhere wins over everything, even a broken config file.
        if "-h" not in head and "--help" not in head and ("-V" in head or "--version" in head):
            sys.stdout.write(version_text())
            return 0
        from criu_core.cli.app import run

        return run(args)
    except CriuError as err:
        sys.stdout.flush()
        sys.stderr.write(f"{PROG}: {err}\n")
        return err.exit_code
    except BrokenPipeError:  # `criu-py --help | head`
        return 1
