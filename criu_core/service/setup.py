"""From one RPC request to a ready run: options, images and work directories, log file.

The order is CRIU 4.2's (``cr-service.c:setup_opts_from_req`` and ``criu.txt`` "CONFIGURATION FILES"):

1. the worker's own options (the swrk/service process's default config files and command line);
2. the request's ``criu_opts`` (:mod:`criu_core.service.rpcopts`);
3. the RPC configuration file (``config_file``, field 51), which overrides everything the request set; its
   ``log-file``, ``work-dir`` and ``images-dir`` win over the request's ``log_file``, ``work_dir_fd`` and
   ``images_dir_fd``;
4. the images directory: the config file's, else ``/proc/<peer>/fd/<images_dir_fd>``, else ``images_dir``;
   the work directory: the config file's, else ``/proc/<peer>/fd/<work_dir_fd>``, else the worker's
   ``--work-dir``, else the images directory;
5. the log: the request's ``log_file`` (a bare name) in the work directory, else stderr with
   ``log_to_stderr``, else the config's ``log-file``, else ``criu.log``; the level is the request's
   ``log_level`` unless the RPC config file sets ``verbosity`` (CRIU lets the request win there; a file
   meant to override the request should, so ours does).

Options that are set but not implemented for the stage are refused, naming where they came from, as the
command line refuses them. Every failure here is a :class:`~criu_core.service.rpcopts.BadRequest`
(``cr_errno`` EBADRQC, as CRIU answers any setup failure).
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from criu_core.errors import CriuError
from criu_core.service.rpcopts import BadRequest, apply_rpc_opts

if TYPE_CHECKING:
    from criu_core.options import OptionRegistry, Options

__all__ = ["DEFAULT_LOG_FILENAME", "Prepared", "prepare"]

DEFAULT_LOG_FILENAME = "criu.log"  # CRIU's DEFAULT_LOG_FILENAME, used in RPC mode when nothing else is set


@dataclass
class Prepared:
    """What a handler needs to build a context; :meth:`close` releases the directory descriptors."""

    options: Options
    images_dir: Path | None
    work_dir: Path | None
    log_path: Path | None  # None: stderr
    verbosity: int
    fds: list[int] = field(default_factory=list)

    def close(self) -> None:
        while self.fds:
            try:
                os.close(self.fds.pop())
            except OSError:
                pass


def _open_dir(path: str, what: str, fds: list[int]) -> Path:
    """Open ``path`` (maybe a ``/proc/PID/fd/N`` link) and keep it open for the run.

    Returns the directory's real path when it names the same directory (clean log lines), else a
    ``/proc/<ours>/fd/<n>`` path that stays valid as long as we hold the descriptor, whatever the client does.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise BadRequest(f"Can't open {what} {path}: {exc.strerror}") from None
    fds.append(fd)
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
        st, ours = os.stat(real), os.fstat(fd)
        if real.startswith("/") and (st.st_dev, st.st_ino) == (ours.st_dev, ours.st_ino):
            return Path(real)
    except OSError:
        pass
    return Path(f"/proc/{os.getpid()}/fd/{fd}")


def refuse_unimplemented(options: Options, registry: OptionRegistry, stage: str, where: dict[str, str]) -> None:
    """Raise :class:`BadRequest` for the first option set for ``stage`` that the engines do not honour."""
    defaults = registry.defaults()
    for spec in registry.specs.values():
        if spec.implemented or stage not in spec.stages:
            continue
        value, default = getattr(options, spec.dest), getattr(defaults, spec.dest)
        # An RPC bool set to false, or an empty list, over an empty default asks for nothing.
        if value == default or (value in (None, False, []) and not default):
            continue
        source = where.get(spec.name)
        suffix = f" ({source})" if source else ""
        raise BadRequest(f"option --{spec.name}{suffix} is recognised but not supported by criu-py yet")


def prepare(
    msg: Any,
    *,
    stage: str,
    base: Options,
    base_given: dict[str, str],
    registry: OptionRegistry,
    peer: int,
    swrk: bool,
) -> Prepared:
    """Build the run for a request of ``stage`` (``dump``, ``restore`` or ``check``) from ``msg`` (criu_opts).

    ``base`` are the worker's own options (copied, never changed); ``base_given`` maps option names to the
    config file that set them. Raises :class:`BadRequest`.
    """
    options = copy.deepcopy(base)
    try:
        return _prepare(msg, options, stage, base_given, registry, peer, swrk)
    except BadRequest:
        raise
    except CriuError as err:  # a bad RPC config file: UsageError from the parser
        raise BadRequest(str(err)) from None


def _prepare(
    msg: Any,
    options: Options,
    stage: str,
    base_given: dict[str, str],
    registry: OptionRegistry,
    peer: int,
    swrk: bool,
) -> Prepared:
    where = dict(base_given)
    for option, rpc_field in apply_rpc_opts(msg, options, swrk=swrk).items():
        where[option] = f"RPC field {rpc_field}"
    log_file_before, work_dir_before = options.log_file, options.work_dir
    from_conf: frozenset[str] = frozenset()
    if msg.HasField("config_file") and msg.config_file:
        from criu_core.cli.config import apply_rpc_config_file

        options.log_file = options.work_dir = None
        from_conf = apply_rpc_config_file(options, msg.config_file, registry)
        for option in from_conf:
            where[option] = f"set in RPC config file {msg.config_file}"
        if "log-file" not in from_conf:
            options.log_file = log_file_before
        if "work-dir" not in from_conf:
            options.work_dir = work_dir_before

    if stage in ("dump", "pre-dump", "restore"):
        refuse_unimplemented(options, registry, stage, where)

    check = stage == "check"
    log_file = msg.log_file if msg.HasField("log_file") else None
    to_stderr = msg.HasField("log_to_stderr") and msg.log_to_stderr
    # CHECK (CRIU 4.2, 9371c4a78): only the log options matter; directories only when a log file is wanted.
    needs_dirs = not check or (log_file is not None and not to_stderr)
    prepared = Prepared(options, None, None, None, _verbosity(msg, options, from_conf))
    try:
        if needs_dirs:
            _directories(msg, options, prepared, from_conf, peer, check)
        if log_file is not None and "log-file" not in from_conf:
            if "/" in log_file:
                raise BadRequest(f"No subdirs are allowed in log_file name: {log_file!r}")
            options.log_file = log_file
        elif to_stderr and "log-file" not in from_conf:
            options.log_file = None
        elif not options.log_file and not check:
            options.log_file = DEFAULT_LOG_FILENAME
        if needs_dirs and options.log_file and prepared.work_dir is not None:
            prepared.log_path = prepared.work_dir / options.log_file
            options.log_file = str(prepared.log_path)
        if options.pidfile and prepared.work_dir is not None:
            options.pidfile = str(prepared.work_dir / options.pidfile)
    except BaseException:
        prepared.close()
        raise
    return prepared


def _verbosity(msg: Any, options: Options, from_conf: frozenset[str]) -> int:
    if "verbosity" in from_conf:
        return int(options.verbosity or 0)
    level = int(msg.log_level)  # default 2 when the field is absent, as CRIU's
    options.verbosity = level
    return level


def _directories(
    msg: Any, options: Options, prepared: Prepared, from_conf: frozenset[str], peer: int, check: bool
) -> None:
    if "images-dir" in from_conf:
        images: str | None = options.images_dir
    elif msg.images_dir_fd != -1:
        images = f"/proc/{peer}/fd/{msg.images_dir_fd}"
    elif msg.HasField("images_dir"):
        images = msg.images_dir
    elif check:
        images = None
    else:
        raise BadRequest("Neither images_dir_fd nor images_dir was passed by RPC client")
    if images is not None and not check:
        prepared.images_dir = _open_dir(images, "images directory", prepared.fds)
        options.images_dir = str(prepared.images_dir)
    if "work-dir" in from_conf:
        work: str | None = options.work_dir
    elif msg.HasField("work_dir_fd"):
        work = f"/proc/{peer}/fd/{msg.work_dir_fd}"
    elif options.work_dir:
        work = options.work_dir
    else:
        work = str(prepared.images_dir) if prepared.images_dir is not None else images
    if not work:
        raise BadRequest("images-dir or work-dir is required when using log file")
    prepared.work_dir = _open_dir(work, "work directory", prepared.fds)
    options.work_dir = str(prepared.work_dir)
