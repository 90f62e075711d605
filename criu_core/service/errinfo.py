"""``cr_errno`` and ``cr_errmsg`` of a failed request, as CRIU fills them (``set_resp_err``).

``cr_errmsg`` is the first error line logged during the request (CRIU's ``log_first_err``), formatted like
a log line without its timestamp: ``Error (criu_core/dump.py:123): message``. ``cr_errno`` is set only when
it says something: EBADRQC (56) for bad options, ESRCH (3) for a missing task, EEXIST (17) for a PID
already taken on restore, or the ``cr_errno`` an error carries.
"""

from __future__ import annotations

import errno
import logging
from typing import Self

from criu_core.errors import NoSuchProcess, PidInUse, UsageError
from criu_core.log import LOGGER_NAME, CriuFormatter

__all__ = ["MAX_ERRMSG", "FirstError", "cr_errno_of"]

MAX_ERRMSG = 1024  # keeps every response far below what go-criu and runc read in one go


class FirstError(logging.Handler):
    """A handler on the ``"criu"`` logger that remembers the first error record (child loggers included).

    Each run replaces the logger's handlers (``setup_logging``): call :meth:`attach` again after that.
    """

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.text: str | None = None
        self._fmt = CriuFormatter(0.0, timestamps=False, log_pid=False)

    def emit(self, record: logging.LogRecord) -> None:
        if self.text is not None:
            return
        saved, record.exc_info = record.exc_info, None
        try:
            self.text = self._fmt.format(record).split("\n", 1)[0][:MAX_ERRMSG]
        finally:
            record.exc_info = saved

    def attach(self) -> Self:
        logger = logging.getLogger(LOGGER_NAME)
        if self not in logger.handlers:
            logger.addHandler(self)
        return self

    def __enter__(self) -> Self:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        logging.getLogger(LOGGER_NAME).removeHandler(self)


def cr_errno_of(err: BaseException) -> int:
    """The ``cr_errno`` to answer for ``err``; 0 means "leave the field out"."""
    explicit = getattr(err, "cr_errno", None)
    if isinstance(explicit, int) and explicit:
        return explicit
    if isinstance(err, UsageError):
        return errno.EBADRQC
    if isinstance(err, NoSuchProcess):
        return errno.ESRCH
    if isinstance(err, PidInUse):
        return errno.EEXIST
    code = getattr(err, "errno", None)
    if code in (errno.ESRCH, errno.EEXIST):
        return int(code)
    return 0
