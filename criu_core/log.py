"""CRIU-style logging for the logger ``"criu"`` (plugins log through ``ctx.log``, a child of it or itself).

Levels follow ``-v``: 0 nothing, 1 errors, 2 +warnings (default), 3 +info, 4 +debug. Lines look like CRIU's
(``criu/log.c``): from level 3 on each line starts with the seconds since logging started,
``(00.012345) ``; errors read ``Error (criu_core/dump.py:123): message`` and warnings
``Warn  (criu_core/dump.py:123): message``; ``--log-pid`` puts the process id after the timestamp.
Without a log file, lines go to stderr.

:mod:`logging` (with ``traceback``, ``string``, ``threading``: some 4 ms) is imported only once something is
to be logged: a quiet command (no log file, ``-v2`` or less) gets a :class:`DeferredLogger` from
:func:`open_run_log`, which sets the real logger up at its first record that passes the level.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import logging

__all__ = [
    "LOGGER_NAME",
    "CriuFormatter",  # noqa: F822 - made at first use, by the module __getattr__
    "DeferredLogger",
    "close_logging",
    "level_for_verbosity",
    "log_file_path",
    "open_run_log",
    "setup_logging",
]

LOGGER_NAME = "criu"
DEFAULT_VERBOSITY = 2
TIMESTAMP_VERBOSITY = 3  # CRIU's LOG_TIMESTAMP = DEFAULT_LOGLEVEL + 1

# logging's level numbers, without importing it
CRITICAL, ERROR, WARNING, INFO, DEBUG = 50, 40, 30, 20, 10
_LEVELS = {0: CRITICAL + 10, 1: ERROR, 2: WARNING, 3: INFO}


def level_for_verbosity(verbosity: int) -> int:
    """The :mod:`logging` level that ``-v<verbosity>`` lets through."""
    if verbosity <= 0:
        return _LEVELS[0]
    return _LEVELS.get(verbosity, DEBUG)


def _where(record: logging.LogRecord) -> str:
    path = record.pathname.replace(os.sep, "/")
    cut = path.rfind("criu_core/")
    if cut < 0:
        cut = path.rfind("/", 0, path.rfind("/")) + 1  # a plugin: "criu_uprobes/plugin.py"
    return f"{path[cut:]}:{record.lineno}"


_FORMATTER: type[logging.Formatter] | None = None


def __getattr__(name: str) -> Any:
    if name == "CriuFormatter":
        return _formatter_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _formatter_class() -> type[logging.Formatter]:
    global _FORMATTER
    if _FORMATTER is None:
        import logging

        class CriuFormatter(logging.Formatter):
            """Format records as CRIU's log lines; ``start`` is the wall-clock time logging started."""

            def __init__(self, start: float, *, timestamps: bool, log_pid: bool) -> None:
                super().__init__()
                self.start = start
                self.timestamps = timestamps
                self.log_pid = log_pid

            format = _format

        CriuFormatter.__module__ = __name__
        _FORMATTER = CriuFormatter
    return _FORMATTER


def _format(self: Any, record: logging.LogRecord) -> str:
    """CriuFormatter.format."""
    msg = record.getMessage()
    if record.exc_info and record.levelno >= ERROR:
        msg += "\n" + self.formatException(record.exc_info)
    if record.levelno >= ERROR:
        msg = f"Error ({_where(record)}): {msg}"
    elif record.levelno >= WARNING:
        msg = f"Warn  ({_where(record)}): {msg}"
    prefix = ""
    if self.timestamps:
        elapsed = max(0.0, record.created - self.start)
        secs = int(elapsed)
        prefix = f"({secs:02d}.{int((elapsed - secs) * 1e6):06d}) "
    if self.log_pid:
        prefix += f"{record.process:6d}: "
    return prefix + msg


def log_file_path(log_file: str | None, work_dir: Path) -> Path | None:
    """``-o FILE`` is relative to the work dir (which defaults to the images dir), as in CRIU."""
    if not log_file:
        return None
    return Path(work_dir) / log_file


def setup_logging(
    verbosity: int = DEFAULT_VERBOSITY,
    log_file: Path | None = None,
    *,
    log_pid: bool = False,
    stream: IO[str] | None = None,
    start: float | None = None,
) -> logging.Logger:
    """(Re)configure the ``"criu"`` logger for one run and return it.

    Replaces any handler left by an earlier run in this process. ``log_file`` is truncated, as CRIU does.
    Raises ``OSError`` when the file cannot be created.
    """
    close_logging()
    return _add_run_handler(verbosity, log_file, log_pid=log_pid, stream=stream, start=start)


def _add_run_handler(
    verbosity: int, log_file: Path | None, *, log_pid: bool, stream: IO[str] | None = None, start: float | None = None
) -> logging.Logger:
    """Add this run's handler to the ``"criu"`` logger (next to any other, e.g. the RPC's error capture)."""
    import logging

    logger = logging.getLogger(LOGGER_NAME)
    if log_file is not None:
        handler: logging.Handler = logging.FileHandler(log_file, mode="w", encoding="utf-8")
    else:
        handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    # time.time() base: LogRecord.created is wall-clock seconds.
    base = start if start is not None else time.time()
    handler.setFormatter(_formatter_class()(base, timestamps=verbosity >= TIMESTAMP_VERBOSITY, log_pid=log_pid))
    logger.addHandler(handler)
    logger.setLevel(level_for_verbosity(verbosity))
    logger.propagate = False
    return logger


def close_logging() -> None:
    """Remove and close the handlers of the ``"criu"`` logger (end of a run, or before a new one)."""
    logging = sys.modules.get("logging")
    if logging is None:
        return  # no handler was ever added
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


def logs_to_file() -> bool:
    """Whether the ``"criu"`` logger currently writes to a file (not stderr)."""
    logging = sys.modules.get("logging")
    if logging is None:
        return False
    return any(isinstance(h, logging.FileHandler) for h in logging.getLogger(LOGGER_NAME).handlers)


def open_run_log(verbosity: int, log_file: Path | None = None, *, log_pid: bool = False) -> logging.Logger:
    """The logger of one command run: :func:`setup_logging` now when there is a log file to create or the
    level lets info through (the run logs its version at once), else a :class:`DeferredLogger` that does it
    at the first record that passes the level."""
    if log_file is not None or level_for_verbosity(verbosity) <= INFO:
        return setup_logging(verbosity, log_file, log_pid=log_pid)
    close_logging()  # now, as setup_logging would: a handler added during the run stays
    start = time.time()
    deferred = DeferredLogger(
        level_for_verbosity(verbosity), lambda: _add_run_handler(verbosity, None, log_pid=log_pid, start=start)
    )
    return deferred  # type: ignore[return-value]  # duck-typed logging.Logger


class DeferredLogger:
    """Stands for the configured ``"criu"`` logger until a record passes ``level``: records below it are
    dropped without importing :mod:`logging`; the first one at or above it calls ``setup`` (which must
    return the configured logger) and everything from then on goes to that logger. Any other attribute
    (``handlers``, ``getChild``...) sets the logger up too and is taken from it."""

    def __init__(self, level: int, setup: Any) -> None:
        self._level = level
        self._setup = setup
        self._logger: logging.Logger | None = None

    def _real(self) -> logging.Logger:
        if self._logger is None:
            self._logger = self._setup()
        return self._logger

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real(), name)

    def isEnabledFor(self, level: int) -> bool:
        if self._logger is not None:
            return self._logger.isEnabledFor(level)
        return level >= self._level

    def getEffectiveLevel(self) -> int:
        return self._level if self._logger is None else self._logger.getEffectiveLevel()

    # stacklevel + 1: the caller's file and line, not this module's, go into the record.
    def log(self, level: int, msg: object, *args: object, **kw: Any) -> None:
        if self._logger is not None or level >= self._level:
            kw["stacklevel"] = kw.get("stacklevel", 1) + 1
            self._real().log(level, msg, *args, **kw)

    def debug(self, msg: object, *args: object, **kw: Any) -> None:
        if self._logger is not None or DEBUG >= self._level:
            kw["stacklevel"] = kw.get("stacklevel", 1) + 1
            self._real().log(DEBUG, msg, *args, **kw)

    def info(self, msg: object, *args: object, **kw: Any) -> None:
        if self._logger is not None or INFO >= self._level:
            kw["stacklevel"] = kw.get("stacklevel", 1) + 1
            self._real().log(INFO, msg, *args, **kw)

    def warning(self, msg: object, *args: object, **kw: Any) -> None:
        if self._logger is not None or WARNING >= self._level:
            kw["stacklevel"] = kw.get("stacklevel", 1) + 1
            self._real().log(WARNING, msg, *args, **kw)

    def error(self, msg: object, *args: object, **kw: Any) -> None:
        if self._logger is not None or ERROR >= self._level:
            kw["stacklevel"] = kw.get("stacklevel", 1) + 1
            self._real().log(ERROR, msg, *args, **kw)

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kw: Any) -> None:
        if self._logger is not None or ERROR >= self._level:
            kw["stacklevel"] = kw.get("stacklevel", 1) + 1
            self._real().log(ERROR, msg, *args, exc_info=exc_info, **kw)

    def critical(self, msg: object, *args: object, **kw: Any) -> None:
        if self._logger is not None or CRITICAL >= self._level:
            kw["stacklevel"] = kw.get("stacklevel", 1) + 1
            self._real().log(CRITICAL, msg, *args, **kw)

    warn = warning
    fatal = critical
