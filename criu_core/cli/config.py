"""CRIU configuration files (criu.txt "CONFIGURATION FILES", ``criu/config.c``).

Sources, in order, later wins:

1. ``/etc/criu/default.conf``      (the directory can be moved with ``CRIU_PY_GLOBAL_CONFIG_DIR``: tests only)
2. ``$HOME/.criu/default.conf``    (skipped when ``$HOME`` is unset)
3. ``$CRIU_CONFIG_FILE``
4. ``--config FILE``               (its presence also skips 1 and 2)
5. the command line                (or, in RPC mode, the request's options)
6. the RPC configuration file      (``criu_opts.config_file``; see :func:`apply_rpc_config_file`)

``--no-default-config`` skips 1 and 2 but not 3. A file that cannot be opened is ignored silently (runtimes
always pass ``/etc/criu/runc.conf``). ``--config`` and ``--no-default-config`` are found by a pre-scan of the
command line, exactly spelled, as CRIU's ``pre_parse()`` does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from criu_core.errors import UsageError

if TYPE_CHECKING:
    from criu_core.options import OptionRegistry, Options

__all__ = [
    "DEFAULT_CONFIG_FILENAME",
    "GLOBAL_CONFIG_DIR_ENV",
    "apply_rpc_config_file",
    "config_sources",
    "parse_config_text",
    "read_config_file",
]

GLOBAL_CONFIG_DIR = "/etc/criu/"
USER_CONFIG_DIR = ".criu/"
DEFAULT_CONFIG_FILENAME = "default.conf"
# Only for tests: where the "global" default.conf lives, so a test never reads or writes /etc/criu.
GLOBAL_CONFIG_DIR_ENV = "CRIU_PY_GLOBAL_CONFIG_DIR"

_BAD_FORMAT = "Unsupported configuration file format. Please consult man page criu(8)"


def _words(line: str) -> list[str]:
    """Split one line as CRIU's ``parse_statement()``: whitespace-separated words, ``#`` starts a comment,
    a word that opens a double quote closed later on the line runs to that quote, ``\\"`` escapes a quote
    inside (other backslashes are literal)."""
    words: list[str] = []
    pos, n = 0, len(line)
    while True:
        while pos < n and line[pos] in " \t\r\f\v":
            pos += 1
        if pos >= n or line[pos] == "\n":
            return words
        if line[pos] == "#":
            return words
        if line[pos] == '"' and '"' in line[pos + 1 :]:
            out: list[str] = []
            j = pos + 1
            while j < n:
                ch = line[j]
                if ch == "\\" and j + 1 < n and line[j + 1] == '"':
                    out.append('"')
                    j += 2
                    continue
                if ch == '"':
                    break
                out.append(ch)
                j += 1
            else:
                # Only escaped quotes followed: the word is taken literally, as CRIU does.
                end = pos
                while end < n and line[end] not in " \t\n":
                    end += 1
                words.append(line[pos:end])
                pos = end
                continue
            words.append("".join(out))
            pos = j + 1
            continue
        end = pos
        while end < n and line[end] not in " \t\n\r\f\v":
            end += 1
        words.append(line[pos:end])
        pos = end


def parse_config_text(text: str, source: str) -> list[str]:
    """Turn a configuration file's text into command-line tokens.

    Each non-empty line is ``name``, ``name value`` or ``name=value`` (long option names without ``--``);
    the name gets ``--`` prepended. More than two words on a line raises :class:`UsageError` naming
    ``source`` and the line number.
    """
    tokens: list[str] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        words = _words(line)
        if not words:
            continue
        if len(words) > 2:
            raise UsageError(f"{source}:{lineno}: {_BAD_FORMAT}", source=source, line=lineno)
        tokens.append("--" + words[0])
        tokens.extend(words[1:])
    return tokens


def read_config_file(path: str | os.PathLike[str]) -> list[str] | None:
    """The tokens of the file at ``path``, or ``None`` when it cannot be opened (silently ignored)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return None
    return parse_config_text(text, str(path))


def _pre_parse(argv: list[str]) -> tuple[bool, str | None]:
    no_default, cfg = False, None
    for i, tok in enumerate(argv):
        if tok == "--":
            break
        if tok == "--no-default-config":
            no_default = True
        elif tok == "--config":
            cfg = argv[i + 1] if i + 1 < len(argv) else None
            no_default = True
        elif tok.startswith("--config="):
            cfg = tok[len("--config=") :]
            no_default = True
    return no_default, cfg


def config_sources(argv: list[str], env: Mapping[str, str] | None = None) -> list[tuple[str, list[str]]]:
    """Every configuration source that exists, in parse order, as ``(source, tokens)``; argv comes last.

    Raises :class:`UsageError` for a file with a bad format.
    """
    env = os.environ if env is None else env
    no_default, cfg = _pre_parse(argv)
    paths: list[str] = []
    if not no_default:
        paths.append(os.path.join(env.get(GLOBAL_CONFIG_DIR_ENV) or GLOBAL_CONFIG_DIR, DEFAULT_CONFIG_FILENAME))
        home = env.get("HOME")
        if home:
            paths.append(os.path.join(home, USER_CONFIG_DIR, DEFAULT_CONFIG_FILENAME))
    if env.get("CRIU_CONFIG_FILE"):
        paths.append(env["CRIU_CONFIG_FILE"])
    if cfg:
        paths.append(cfg)
    out: list[tuple[str, list[str]]] = []
    for path in paths:
        tokens = read_config_file(path)
        if tokens is not None:
            out.append((path, tokens))
    out.append(("argv", list(argv)))
    return out


def apply_rpc_config_file(options: Options, path: str, registry: OptionRegistry) -> frozenset[str]:
    """Parse the RPC configuration file (``criu_opts.config_file``) over ``options``, RPC values included.

    Called last, after the request's options are applied: what the file sets overrides them. Returns the
    long names of the options the file set, so the RPC layer lets ``log-file``, ``work-dir`` and
    ``images-dir`` from the file win over the request's (CRIU 4.2's ``*_changed_by_rpc_conf``). A missing
    file sets nothing. Operands in the file are ignored, as CRIU does. Raises :class:`UsageError` for a bad
    format or an unknown option.
    """
    from criu_core.cli.parser import GetoptParser

    tokens = read_config_file(path)
    if not tokens:
        return frozenset()
    parser = GetoptParser(registry)
    parser.parse(tokens, options, source=path)
    return frozenset(parser.given)
