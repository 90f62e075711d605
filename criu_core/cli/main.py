"""Entry point of ``criu-py`` (and ``python -m criu_core.cli``).

Kept light on purpose: ``--version`` answers from here without importing pluggy, logging or the option
table, and the commands that take their own arguments (``show``, ``decode``, ``encode``, ``demo``) are handed
over before any plugin is loaded. Everything else goes to :mod:`criu_core.cli.app`.

Exit codes are CRIU's: 0 success, 1 failure. A :class:`~criu_core.errors.CriuError` becomes one line
``criu-py: <message>`` on stderr; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import gc
import os
import sys

from criu_core.errors import CriuError

__all__ = ["CRIU_VERSION", "entry", "main", "version_text"]

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
        from criu_core.images import pbruntime
        from criu_core.lazymod import defer

        # pathlib imports them (through urllib.parse) for Windows paths and URL hosts: never used here.
        defer("ipaddress", "ntpath")
        # Only the command asks for it (a library user of criu_core keeps its sys.modules as they are): when the
        # generated modules are first loaded, protobuf's pure-Python runtime (unused with upb) is made lazy.
        pbruntime.WANTED = True
        from criu_core.cli.app import run

        return run(args)
    except CriuError as err:
        sys.stdout.flush()
        sys.stderr.write(f"{PROG}: {err}\n")
        return err.exit_code
    except BrokenPipeError:  # `criu-py --help | head`
        return 1


def entry() -> None:
    """The ``criu-py`` console script and ``python -m criu_core.cli``: :func:`main`, then a quick exit.

    After a dump or a restore the interpreter would tear down some 300 modules (protobuf's among them): 10 to 20
    ms, a tenth of the fixed cost of a command. So the parts of finalization that matter are done here, in
    CPython's order (wait for non-daemon threads, atexit handlers: logging closes its files, flush stdout and
    stderr), and the process ends with ``os._exit``. An exception, or a flush that fails, takes the normal exit.

    The cyclic garbage collector is off for the command: start-up alone allocates enough objects to run it
    some 50 times, and it finds next to nothing (a whole dump or restore of a 100-process tree or of a
    200-thread process leaves under 2,000 objects in cycles); that is 8 ms of a trivial dump. The commands
    that keep running (``swrk``, ``service``) turn it back on (:mod:`criu_core.cli.swrk`).
    """
    gc.disable()
    rc = main()
    threading = sys.modules.get("threading")
    if threading is not None:
        for thread in threading.enumerate():
            if thread is not threading.main_thread() and not thread.daemon:
                thread.join()
    import atexit

    atexit._run_exitfuncs()  # what Py_Finalize runs; no public equivalent
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:
        sys.exit(rc)
    os._exit(rc)
