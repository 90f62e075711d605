"""The one error tree of criu-core.

Every failure a user can cause or meet (a bad option, a task that vanished, a corrupt image, a kernel without
a feature) is a :class:`CriuError`. The command line prints ``str(err)`` as one line and exits non-zero; any
other exception is a bug and keeps its traceback. Errors carry structured fields, print well and pickle
(``__reduce__`` keeps the fields), following psutil's exceptions.
"""

from __future__ import annotations

import errno as _errno
import os

__all__ = [
    "AccessDenied",
    "CriuError",
    "DumpFailed",
    "ImageFormatError",
    "KernelFeatureMissing",
    "MissingPluginError",
    "NoSuchProcess",
    "NotImplementedOption",
    "PidInUse",
    "PluginFailed",
    "RestoreFailed",
    "SyscallError",
    "UnsupportedResource",
    "UsageError",
]


class CriuError(Exception):
    """Root of every error criu-core reports to users; ``str()`` is the one line a user sees."""

    exit_code = 1

    def __init__(self, msg: str = "", **fields: object) -> None:
        super().__init__(msg)
        self.msg = msg
        self.fields = fields
        for key, value in fields.items():
            setattr(self, key, value)

    def __str__(self) -> str:
        return self.msg

    def __reduce__(self):  # keep structured fields across pickling (RPC workers, thread pools)
        return (_rebuild, (type(self), self.msg, self.fields))


def _rebuild(cls, msg, fields):
    obj = cls.__new__(cls)
    CriuError.__init__(obj, msg, **fields)
    return obj


class UsageError(CriuError):
    """Bad command line, configuration file or RPC options."""


class NotImplementedOption(UsageError):
    """A CRIU option or command that criu-core recognises but does not implement yet."""

    def __init__(self, option: str, what: str = "option") -> None:
        super().__init__(f"{what} {option} is recognised but not supported by criu-py yet", option=option)


class NoSuchProcess(CriuError):
    """The task does not exist (any more)."""

    def __init__(self, pid: int, msg: str = "") -> None:
        super().__init__(msg or f"No such process: {pid}", pid=pid)


class AccessDenied(CriuError):
    """The kernel refused access to a task or resource."""

    def __init__(self, pid: int | None = None, msg: str = "") -> None:
        super().__init__(msg or f"Access denied to task {pid}", pid=pid)


class SyscallError(CriuError):
    """A system call failed; carries the errno, the call's name and the task it concerned (if any)."""

    def __init__(self, err: int, syscall: str, pid: int | None = None, detail: str = "") -> None:
        where = f" on task {pid}" if pid is not None else ""
        extra = f" ({detail})" if detail else ""
        name = _errno.errorcode.get(err, str(err))
        super().__init__(
            f"{syscall}{where} failed: {name}: {os.strerror(err)}{extra}", errno=err, syscall=syscall, pid=pid
        )


class KernelFeatureMissing(CriuError):
    """This kernel lacks an interface criu-core needs."""

    def __init__(self, feature: str, msg: str = "") -> None:
        super().__init__(msg or f"kernel feature {feature} is not available", feature=feature)


class ImageFormatError(CriuError):
    """An image file is corrupt, truncated or not what its name says; names the file and the offset."""

    def __init__(self, path: str, offset: int, reason: str) -> None:
        super().__init__(f"{path}: at offset {offset}: {reason}", path=str(path), offset=offset, reason=reason)


class MissingPluginError(CriuError):
    """The images need a plugin that is not installed (or was disabled)."""

    def __init__(self, plugin: str, distribution: str | None = None) -> None:
        dist = distribution or f"criu-plugin-{plugin.replace('_', '-')}"
        super().__init__(
            f"the images were dumped with plugin {plugin!r}, which is not loaded: install {dist} (or do not disable it)",
            plugin=plugin,
            distribution=dist,
        )


class PluginFailed(CriuError):
    """A plugin raised something that is not a CriuError; wraps it with the plugin's name."""

    def __init__(self, plugin: str, hook: str, cause: BaseException) -> None:
        super().__init__(f"plugin {plugin} failed in {hook}: {cause}", plugin=plugin, hook=hook)


class UnsupportedResource(CriuError):
    """Nobody can dump or restore this resource (a mapping, a descriptor, a socket)."""

    def __init__(self, what: object, hint: str = "", msg: str = "") -> None:
        text = msg or f"Unsupported resource: {what}"
        if hint:
            text += f" ({hint})"
        super().__init__(text, what=str(what), hint=hint)


class PidInUse(CriuError):
    """Restore needs a PID that another task holds."""

    def __init__(self, pid: int) -> None:
        super().__init__(f"PID {pid} is in use", pid=pid)


class DumpFailed(CriuError):
    """A dump step failed; the tasks were released unchanged."""


class RestoreFailed(CriuError):
    """A restore step failed; every task created was killed, the images are intact."""
