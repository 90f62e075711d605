"""A getopt_long work-alike over an :class:`~criu_core.options.OptionRegistry`.

CRIU parses its command line and its configuration files with glibc's ``getopt_long``; scripts rely on its
quirks, so this parser keeps them: options and operands may be mixed (GNU permutation), ``--`` ends options,
short options bundle (``-jR``, ``-t123``, ``-vvv``), a long option may be abbreviated to any unambiguous
prefix, an optional argument must be attached (``--manage-cgroups=full``, ``-v4``), ``--name=value`` and
``--name value`` are the same, and every boolean has a ``--no-NAME`` twin. Errors read like glibc's
(``unrecognized option '--bogus'``) and are :class:`~criu_core.errors.UsageError`.
"""

from __future__ import annotations

from typing import Any

from criu_core.cli.table import ALIASES, OPTIONAL_CONST
from criu_core.errors import UsageError
from criu_core.options import OptionRegistry, Options, OptionSpec
from criu_core.records import dataclass

__all__ = ["GetoptParser", "Given"]


@dataclass(frozen=True)
class Given:
    """Where an option was last set: ``source`` is ``"argv"``, a config file's path, or ``"rpc"``."""

    source: str
    spelled: str  # as written: "-t", "--tree", "--no-tcp-established"


class GetoptParser:
    """Parse token lists into an :class:`Options` namespace, one source after the other (later wins)."""

    def __init__(self, registry: OptionRegistry) -> None:
        self.registry = registry
        self.long: dict[str, tuple[OptionSpec, bool]] = {}
        self.short: dict[str, OptionSpec] = {}
        for spec in registry.specs.values():
            self.long[spec.name] = (spec, True)
            if spec.kind == "flag" and not spec.name.startswith("no-"):
                self.long.setdefault("no-" + spec.name, (spec, False))
            if spec.short:
                self.short[spec.short] = spec
        for alias, target in ALIASES.items():
            if target in registry.specs:
                self.long.setdefault(alias, (registry.specs[target], True))
                self.long.setdefault("no-" + alias, (registry.specs[target], False))
        self.given: dict[str, Given] = {}

    def defaults(self) -> Options:
        return self.registry.defaults()

    # ------------------------------------------------------------------------------------------------------

    def parse(self, tokens: list[str], opts: Options, source: str = "argv") -> list[str]:
        """Apply ``tokens`` to ``opts``; return the operands (non-option words) in order."""
        operands: list[str] = []
        i = 0
        while i < len(tokens):
            tok = tokens[i]
            i += 1
            if tok == "--":
                operands.extend(tokens[i:])
                break
            if tok.startswith("--"):
                i = self._long(tok, tokens, i, opts, source)
            elif tok.startswith("-") and tok != "-":
                i = self._short(tok, tokens, i, opts, source)
            else:
                operands.append(tok)
        return operands

    def _lookup_long(self, name: str) -> tuple[OptionSpec, bool]:
        if name in self.long:
            return self.long[name]
        matches = {n: v for n, v in self.long.items() if n.startswith(name)}
        targets = {(v[0].name, v[1]) for v in matches.values()}
        if len(targets) == 1:
            return next(iter(matches.values()))
        if not matches:
            raise UsageError(f"unrecognized option '--{name}'", option=name)
        possible = " ".join(f"'--{n}'" for n in sorted(matches))
        raise UsageError(f"option '--{name}' is ambiguous; possibilities: {possible}", option=name)

    def _long(self, tok: str, tokens: list[str], i: int, opts: Options, source: str) -> int:
        body = tok[2:]
        name, eq, value = body.partition("=")
        spec, positive = self._lookup_long(name)
        spelled = "--" + (name if name in self.long else (spec.name if positive else "no-" + spec.name))
        if spec.kind == "flag":
            if eq:
                raise UsageError(f"option '{spelled}' doesn't allow an argument", option=spec.name)
            self._set(spec, positive, opts, source, spelled)
            return i
        if eq:
            self._store(spec, value, opts, source, spelled)
        elif spec.optional_arg:
            self._store(spec, None, opts, source, spelled)
        elif i < len(tokens):
            self._store(spec, tokens[i], opts, source, spelled)
            i += 1
        else:
            raise UsageError(f"option '{spelled}' requires an argument", option=spec.name)
        return i

    def _short(self, tok: str, tokens: list[str], i: int, opts: Options, source: str) -> int:
        pos = 1
        while pos < len(tok):
            ch = tok[pos]
            pos += 1
            spec = self.short.get(ch)
            if spec is None:
                raise UsageError(f"invalid option -- '{ch}'", option=ch)
            spelled = "-" + ch
            if spec.kind == "flag":
                self._set(spec, True, opts, source, spelled)
                continue
            rest = tok[pos:]
            if rest:
                self._store(spec, rest, opts, source, spelled)
            elif spec.optional_arg:
                self._store(spec, None, opts, source, spelled)
            elif i < len(tokens):
                self._store(spec, tokens[i], opts, source, spelled)
                i += 1
            else:
                raise UsageError(f"option requires an argument -- '{ch}'", option=spec.name)
            break
        return i

    # ------------------------------------------------------------------------------------------------------

    def _set(self, spec: OptionSpec, value: Any, opts: Options, source: str, spelled: str) -> None:
        setattr(opts, spec.dest, value)
        self.given[spec.name] = Given(source, spelled)

    def _store(self, spec: OptionSpec, raw: str | None, opts: Options, source: str, spelled: str) -> None:
        if spec.name == "verbosity":
            # CRIU: -v adds one, -vv... adds the count (the optarg is "v..."), -vN and --verbosity=N set N.
            current = getattr(opts, "verbosity", None) or 0
            if raw is None:
                value: Any = current + 1
            elif raw.startswith("v"):
                value = current + len(raw) + 1
            else:
                value = self._convert(spec, raw, spelled)
        elif raw is None:
            value = OPTIONAL_CONST.get(spec.name, True)
        else:
            value = self._convert(spec, raw, spelled)
        if spec.kind == "list":
            current_list = getattr(opts, spec.dest, None)
            current_list = list(current_list) if current_list else []
            current_list.append(value)
            value = current_list
        self._set(spec, value, opts, source, spelled)

    @staticmethod
    def _convert(spec: OptionSpec, raw: str, spelled: str) -> Any:
        if spec.convert is None:
            return raw
        try:
            return spec.convert(raw)
        except UsageError:
            raise
        except (ValueError, TypeError):
            raise UsageError(f"invalid argument for {spelled}: {raw}", option=spec.name) from None
