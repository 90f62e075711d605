"""CRIU-style logging for the logger ``"criu"`` (plugins log through ``ctx.log``, a child of it or itself).

Levels follow ``-v``: 0 nothing, 1 errors, 2 +warnings (default), 3 +info, 4 +debug. Lines look like CRIU's
(``criu/log.c``): from level 3 on each line starts with the seconds since logging started,
``(00.012345) ``; errors read ``Error (criu_core/dump.py:123): message`` and warnings
``Warn  (criu_core/dump.py:123): message``; ``--log-pid`` puts the process id after the timestamp.
Without a log file, lines go to stderr.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import IO

__all__ = [
    "LOGGER_NAME",
    "CriuFormatter",
    "close_logging",
    "level_for_verbosity",
    "log_file_path",
    "setup_logging",
]

LOGGER_NAME = "criu"
DEFAULT_VERBOSITY = 2
TIMESTAMP_VERBOSITY = 3  # CRIU's LOG_TIMESTAMP = DEFAULT_LOGLEVEL + 1

_LEVELS = {0: logging.CRITICAL + 10, 1: logging.ERROR, 2: logging.WARNING, 3: logging.INFO}


def level_for_verbosity(verbosity: int) -> int:
    """The :mod:`logging` level that ``-v<verbosity>`` lets through."""
    if verbosity <= 0:
        return _LEVELS[0]
    return _LEVELS.get(verbosity, logging.DEBUG)


def _where(record: logging.LogRecord) -> str:
    path = record.pathname.replace(os.sep, "/")
    cut = path.rfind("criu_core/")
    if cut < 0:
        cut = path.rfind("/", 0, path.rfind("/")) + 1  # a plugin: "criu_uprobes/plugin.py"
    return f"{path[cut:]}:{record.lineno}"


class CriuFormatter(logging.Formatter):
    """Format records as CRIU's log lines; ``start`` is the monotonic time logging started."""

    def __init__(self, start: float, *, timestamps: bool, log_pid: bool) -> None:
        super().__init__()
        self.start = start
        self.timestamps = timestamps
        self.log_pid = log_pid

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.exc_info and record.levelno >= logging.ERROR:
            msg += "\n" + self.formatException(record.exc_info)
        if record.levelno >= logging.ERROR:
            msg = f"Error ({_where(record)}): {msg}"
        elif record.levelno >= logging.WARNING:
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
    logger = logging.getLogger(LOGGER_NAME)
    close_logging()
    if log_file is not None:
        handler: logging.Handler = logging.FileHandler(log_file, mode="w", encoding="utf-8")
    else:
        handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    # time.time() base: LogRecord.created is wall-clock seconds.
    base = start if start is not None else time.time()
    handler.setFormatter(CriuFormatter(base, timestamps=verbosity >= TIMESTAMP_VERBOSITY, log_pid=log_pid))
    logger.addHandler(handler)
    logger.setLevel(level_for_verbosity(verbosity))
    logger.propagate = False
    return logger


def close_logging() -> None:
    """Remove and close the handlers of the ``"criu"`` logger (end of a run, or before a new one)."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


def logs_to_file() -> bool:
    """Whether the ``"criu"`` logger currently writes to a file (not stderr)."""
    return any(isinstance(h, logging.FileHandler) for h in logging.getLogger(LOGGER_NAME).handlers)
