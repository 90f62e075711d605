"""One function per command. Engines are imported lazily, inside the command that needs them.

Calling convention for the engines (other modules of criu-core):

* ``criu_core.dump.run(ctx: DumpContext) -> int | None`` for ``dump`` and ``pre-dump`` (``ctx.stage`` says
  which); ``None`` means 0.
* ``criu_core.restore.run(ctx: RestoreContext) -> int``: with ``-d`` 0 once the tree runs, otherwise the
  root task's exit status, as CRIU does.

The CLI fills ``options`` (every option; ``pidfile`` and ``log_file`` already resolved against the work dir),
``host`` (plugins loaded, ``criu_configure`` called), ``images_dir`` and ``work_dir`` (absolute, existing),
``log`` (the configured ``"criu"`` logger), ``stage`` and, for dumps, ``root_pid`` (``-t``). Engines call
``host.init``/``host.fini`` and write the pidfile and stats themselves.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from criu_core.errors import CriuError, UsageError
from criu_core.log import close_logging, log_file_path, logs_to_file, open_run_log, setup_logging

if TYPE_CHECKING:
    import logging

    from criu_core.cli.app import Invocation

__all__ = ["NotAvailable", "dispatch", "run_passthrough"]


class NotAvailable(CriuError):
    """A command whose module is not part of this build (yet)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} is not available in this build", what=what)


def _import_or_unavailable(modname: str, what: str):
    import importlib

    try:
        return importlib.import_module(modname)
    except ModuleNotFoundError as exc:
        # Only the module itself (or its package) missing means "not in this build"; a missing import
        # inside it is a bug and keeps its traceback.
        if exc.name and (modname == exc.name or modname.startswith(exc.name + ".")):
            raise NotAvailable(what) from None
        raise


# ---------------------------------------------------------------------------------------------- passthrough


def run_passthrough(command: str, argv: list[str]) -> int:
    """``show``, ``decode``, ``encode`` (the image tool, argparse inside) and ``demo``."""
    if command == "demo":
        return _demo(argv)
    tool = _import_or_unavailable("criu_core.images.tool", command)
    return int(getattr(tool, f"main_{command}")(argv) or 0)


def _demo(argv: list[str]) -> int:
    try:
        demo = _import_or_unavailable("criu_core.demo", "demo")
    except NotAvailable:
        # Until the lead's demo lands: what `make demo` showed so far.
        from criu_core.cli.main import main

        sys.stdout.write("$ criu-py check\n")
        sys.stdout.flush()
        rc = main(["check"])
        sys.stdout.write("\n$ criu-py plugins\n")
        sys.stdout.flush()
        return main(["plugins"]) or rc
    return int(demo.main(argv) or 0)


# ---------------------------------------------------------------------------------------------- dispatch


def _prepare_dirs(inv: Invocation) -> None:
    if inv.command in ("plugins", "service"):
        return
    images, work = inv.images_dir, inv.work_dir
    if not images.is_dir():
        why = "Not a directory" if images.exists() else "No such file or directory"
        raise UsageError(f"Couldn't open image dir {inv.options.images_dir}: {why}")
    if not work.is_dir():
        why = "Not a directory" if work.exists() else "No such file or directory"
        raise UsageError(f"Can't change directory to {inv.options.work_dir}: {why}")
    # CRIU chdir()s into the work dir, so relative --pidfile and -o land there; we resolve them instead.
    if inv.options.pidfile:
        inv.options.pidfile = str(work / inv.options.pidfile)


def _close_fds(inv: Invocation) -> None:
    for fd in inv.options.close or ():
        try:
            os.close(fd)
        except OSError:
            pass  # CRIU ignores close() errors here too


def dispatch(inv: Invocation) -> int:
    """Run ``inv.command``; logging is set up for the run and torn down after it."""
    _close_fds(inv)
    _prepare_dirs(inv)
    inv.host.configure(inv.options)
    log_path = None if inv.command in ("plugins",) else log_file_path(inv.options.log_file, inv.work_dir)
    try:
        # The servers set logging up at once: they log every request, and the RPC attaches handlers of its own.
        setup = setup_logging if inv.command in ("swrk", "service") else open_run_log
        logger = setup(inv.options.verbosity, log_path, log_pid=bool(inv.options.log_pid))
    except OSError as exc:
        raise UsageError(f"Can't create log file {log_path}: {exc.strerror}") from None
    if log_path is not None:
        inv.options.log_file = str(log_path)
    for source in inv.sources[:-1]:
        logger.info("Parsing config file %s", source)
    from criu_core.cli.main import CRIU_VERSION

    logger.info("Version: %s (criu-py)", CRIU_VERSION)
    handler = _COMMANDS[inv.command]
    try:
        return handler(inv, logger)
    except CriuError as err:
        if logs_to_file():
            logger.error("%s", err)
        raise
    finally:
        close_logging()


# ---------------------------------------------------------------------------------------------- commands


def _dump(inv: Invocation, log: logging.Logger) -> int:
    from criu_core.context import DumpContext

    engine = _import_or_unavailable("criu_core.dump", inv.command)
    ctx = DumpContext(
        options=inv.options,
        host=inv.host,
        images_dir=inv.images_dir,
        work_dir=inv.work_dir,
        log=log,
        stage=inv.command,
        root_pid=int(inv.options.tree),
    )
    try:
        return int(engine.run(ctx) or 0)
    finally:
        ctx.close()


def _restore(inv: Invocation, log: logging.Logger) -> int:
    from criu_core.context import RestoreContext

    engine = _import_or_unavailable("criu_core.restore", "restore")
    ctx = RestoreContext(
        options=inv.options, host=inv.host, images_dir=inv.images_dir, work_dir=inv.work_dir, log=log, stage="restore"
    )
    try:
        return int(engine.run(ctx) or 0)
    finally:
        ctx.close()


def _check(inv: Invocation, log: logging.Logger) -> int:
    from criu_core.context import CheckContext
    from criu_core.kerndat import run_check

    ctx = CheckContext(
        options=inv.options, host=inv.host, images_dir=inv.images_dir, work_dir=inv.work_dir, log=log, stage="check"
    )
    try:
        return run_check(
            ctx,
            features=list(inv.options.feature or ()),
            extra=bool(inv.options.all or inv.options.extra),
            experimental=bool(inv.options.all or inv.options.experimental),
        )
    finally:
        ctx.close()


def _plugins(inv: Invocation, log: logging.Logger) -> int:
    sys.stdout.write(inv.host.describe() + "\n")
    return 0


def _swrk(inv: Invocation, log: logging.Logger) -> int:
    from criu_core.cli.swrk import serve_one

    return serve_one(int(inv.args[0]), inv, log)


def _service(inv: Invocation, log: logging.Logger) -> int:
    from criu_core.cli.swrk import serve_service

    return serve_service(inv, log)


_COMMANDS: dict[str, Callable[[Invocation, logging.Logger], int]] = {
    "dump": _dump,
    "pre-dump": _dump,
    "restore": _restore,
    "check": _check,
    "plugins": _plugins,
    "swrk": _swrk,
    "service": _service,
}
