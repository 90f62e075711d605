"""``dataclass`` without compiling: the same classes as :func:`dataclasses.dataclass`, made in microseconds.

The standard decorator writes the source of ``__init__``, ``__repr__``, ``__eq__``, ``__hash__`` (and for a
frozen class ``__setattr__``/``__delattr__``) and compiles it with ``exec`` when the class is defined: about
0.3 to 1.5 ms a class. A ``criu-py dump`` defines some 45 such classes before it does anything, 20 ms of a
command whose whole fixed cost should stay under 60 ms. The classes are the same in every run, but the
compiled methods are not cached anywhere (they are not in the module's ``.pyc``).

:func:`dataclass` here lets the standard decorator do everything except generate those methods (so
``__dataclass_fields__``, ``__dataclass_params__``, defaults, ``fields()``, ``replace()``, ``asdict()``,
``is_dataclass()`` and inheritance between dataclasses are exactly the standard ones), then installs
ordinary functions that read a per-class table instead. Behaviour is the standard one: the same positional
and keyword ``__init__`` (defaults, ``default_factory``, ``init=False`` fields, ``__post_init__``, the same
``TypeError`` messages), ``repr``, ``eq``, the same hash rule, ``FrozenInstanceError`` on assignment to a
frozen instance; methods the class body defines itself win, as with the standard decorator. A class it does
not cover (``order``, ``unsafe_hash``, ``slots``, ``kw_only``, ``match_args=False``, ``ClassVar``/``InitVar``
fields) goes to :func:`dataclasses.dataclass` unchanged.

Usage: ``from criu_core.records import dataclass, field`` in place of ``from dataclasses import ...``.
Like :mod:`criu_core.errors`, this module imports nothing from criu_core, so the bottom layers (``procfs/``,
``sys/``), which import nothing else from criu_core, may use it.
The per-instance cost of the generic ``__init__`` is a few microseconds more than the generated one; no
class built with it is created per page.
"""

from __future__ import annotations

import abc
import dataclasses
import inspect  # dataclasses imports it anyway
import types
from collections.abc import Callable
from dataclasses import MISSING, FrozenInstanceError, field
from reprlib import recursive_repr
from typing import Any, TypeVar, dataclass_transform, overload

__all__ = ["dataclass", "field"]

_T = TypeVar("_T", bound=type)
_SUPPORTED = frozenset({"init", "repr", "eq", "frozen"})
_FIELD = dataclasses._FIELD  # type: ignore[attr-defined]  # the marker of a regular (not ClassVar/InitVar) field
_PARAMS = dataclasses._DataclassParams  # type: ignore[attr-defined]  # init, repr, eq, order, unsafe_hash, frozen


class _Factory:
    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = getattr(dataclasses, "_HAS_DEFAULT_FACTORY", _Factory())  # shown as a default_factory's default


def _covered(cls: type, kwargs: dict[str, Any]) -> bool:
    if set(kwargs) - _SUPPORTED or not kwargs.get("init", True):
        return False
    for ann in cls.__dict__.get("__annotations__", {}).values():  # noqa: RUF063 (this class's own, unevaluated)
        if not isinstance(ann, str) or "ClassVar" in ann or "InitVar" in ann or "KW_ONLY" in ann:
            return False
    for value in cls.__dict__.values():
        if isinstance(value, dataclasses.Field) and value.kw_only is True:
            return False
    return True


def _writes_dict_directly(cls: type, flds: tuple[dataclasses.Field[Any], ...], frozen: bool) -> bool:
    """Whether setting the fields one by one would only store them in the instance ``__dict__``."""
    if any("__slots__" in base.__dict__ for base in cls.__mro__[:-1]):
        return False
    if not frozen and cls.__setattr__ is not object.__setattr__:
        return False
    return not any(hasattr(type(getattr(cls, f.name, None)), "__set__") for f in flds)


def _init_fn(cls: type, flds: tuple[dataclasses.Field[Any], ...], frozen: bool) -> Callable[..., None]:
    qual = f"{cls.__qualname__}.__init__()"
    init_names = tuple(f.name for f in flds if f.init)
    n_init = len(init_names)
    init_set = frozenset(init_names)
    # (name, is-init, default, factory) in field order.
    table = tuple((f.name, f.init, f.default, f.default_factory) for f in flds)
    required = tuple(f.name for f in flds if f.init and f.default is MISSING and f.default_factory is MISSING)
    required_set = frozenset(required)
    post_init = hasattr(cls, "__post_init__")
    direct = _writes_dict_directly(cls, flds, frozen)
    setter = object.__setattr__ if frozen else setattr
    # CPython's own wording for a call with too many positional arguments (self counted).
    if len(required) == n_init:
        takes = f"takes {n_init + 1} positional argument{'s' if init_names else ''}"
    else:
        takes = f"takes from {len(required) + 1} to {n_init + 1} positional arguments"

    def bad_keywords(given: dict[str, Any], kwargs: dict[str, Any]) -> TypeError:
        for key in kwargs:
            if key not in init_set:
                return TypeError(f"{qual} got an unexpected keyword argument '{key}'")
            if key in given:
                return TypeError(f"{qual} got multiple values for argument '{key}'")
        raise AssertionError("no bad keyword")

    def missing_error(given: dict[str, Any]) -> TypeError:
        quoted = [repr(name) for name in required if name not in given]
        names = ", ".join(quoted[:-1]) + ", and " + quoted[-1] if len(quoted) > 2 else " and ".join(quoted)
        plural = "s" if len(quoted) > 1 else ""
        return TypeError(f"{qual} missing {len(quoted)} required positional argument{plural}: {names}")

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if args:
            if len(args) > n_init:
                raise TypeError(f"{qual} {takes} but {len(args) + 1} were given")
            given = dict(zip(init_names, args))
            if kwargs:
                if not kwargs.keys() <= init_set or not kwargs.keys().isdisjoint(given):
                    raise bad_keywords(given, kwargs)
                given.update(kwargs)
        else:
            given = kwargs
            if not given.keys() <= init_set:
                raise bad_keywords({}, kwargs)
        if not required_set <= given.keys():
            raise missing_error(given)
        values = {}
        for name, in_init, default, factory in table:
            if in_init and name in given:
                values[name] = given[name]
            elif factory is not MISSING:
                values[name] = factory()
            elif in_init:
                values[name] = default
            # else: init=False with a plain default: the class attribute holds it, as with dataclasses
        if direct:
            self.__dict__.update(values)
        else:
            for name, value in values.items():
                setter(self, name, value)
        if post_init:
            self.__post_init__()

    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    # What inspect.signature (help(), the class docstring) shows for the generated __init__ of dataclasses.
    P = inspect.Parameter
    params = [P("self", P.POSITIONAL_OR_KEYWORD)]
    for f in flds:
        if f.init:
            default = _FACTORY if f.default_factory is not MISSING else f.default
            params.append(
                P(
                    f.name,
                    P.POSITIONAL_OR_KEYWORD,
                    default=P.empty if default is MISSING else default,
                    annotation=f.type,
                )
            )
    __init__.__signature__ = inspect.Signature(params, return_annotation=None)  # type: ignore[attr-defined]
    return __init__


def _install(cls: type, name: str, fn: Any) -> None:
    if name not in cls.__dict__:
        if callable(fn):
            fn.__qualname__ = f"{cls.__qualname__}.{name}"
        setattr(cls, name, fn)


def _collect_fields(cls: type) -> None:
    """What ``dataclasses.dataclass(cls, init=False, repr=False, eq=False)`` does to a class without dataclass
    bases whose own annotations are all strings naming neither ClassVar, InitVar nor KW_ONLY (``_covered``):
    the same ``Field`` objects, ``__dataclass_fields__``, ``__dataclass_params__``, class attributes and errors,
    without the standard decorator's parsing of each string annotation (three regex matches a field)."""
    annotations = cls.__dict__.get("__annotations__", {})  # noqa: RUF063 (own, unevaluated, as _covered)
    fields: dict[str, dataclasses.Field[Any]] = {}
    for name, type_ in annotations.items():
        default = cls.__dict__.get(name, MISSING)
        if isinstance(default, types.MemberDescriptorType):  # a __slots__ entry, not a default
            default = MISSING
        f = default if isinstance(default, dataclasses.Field) else field(default=default)
        f.name = name
        f.type = type_
        f._field_type = _FIELD  # type: ignore[attr-defined]
        if f.kw_only is MISSING:
            f.kw_only = False
        if f.default.__class__.__hash__ is None:  # list, dict, set...
            raise ValueError(f"mutable default {type(f.default)} for field {name} is not allowed: use default_factory")
        fields[name] = f
        if isinstance(default, dataclasses.Field):
            if f.default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, f.default)
    for name, value in cls.__dict__.items():
        if isinstance(value, dataclasses.Field) and name not in annotations:
            raise TypeError(f"{name!r} is a field but has no type annotation")
    cls.__dataclass_fields__ = fields  # type: ignore[attr-defined]
    cls.__dataclass_params__ = _PARAMS(False, False, False, False, False, False)  # type: ignore[attr-defined]
    abc.update_abstractmethods(cls)


def _build(cls: _T, init: bool = True, repr: bool = True, eq: bool = True, frozen: bool = False) -> _T:
    class_hash = cls.__dict__.get("__hash__", MISSING)
    has_explicit_hash = not (class_hash is MISSING or (class_hash is None and "__eq__" in cls.__dict__))
    if frozen and ("__setattr__" in cls.__dict__ or "__delattr__" in cls.__dict__):
        return dataclasses.dataclass(cls, init=init, repr=repr, eq=eq, frozen=frozen)  # raises its TypeError
    documented = bool(cls.__dict__.get("__doc__"))
    if not documented:
        # The standard decorator would write one from inspect.signature of the class, which (without our
        # __init__ yet) parses object's text signature with tokenize: 3 ms. It is written below instead.
        cls.__doc__ = cls.__name__
    # Below a dataclass base, the standard decorator checks frozen against the base's (and then writes the
    # frozen __setattr__/__delattr__ itself); otherwise ours are installed.
    dc_base = any("__dataclass_fields__" in base.__dict__ for base in cls.__mro__[1:])
    if dc_base:
        dataclasses.dataclass(cls, init=False, repr=False, eq=False, frozen=frozen and dc_base)
    else:
        _collect_fields(cls)
    flds = tuple(dataclasses.fields(cls))
    seen_default = ""
    for f in flds:
        if not f.init:
            continue
        if f.default is MISSING and f.default_factory is MISSING:
            if seen_default:
                raise TypeError(f"non-default argument {f.name!r} follows default argument")
        else:
            seen_default = f.name
    params = cls.__dataclass_params__  # type: ignore[attr-defined]
    params.init, params.repr, params.eq, params.frozen = init, repr, eq, frozen
    _install(cls, "__init__", _init_fn(cls, flds, frozen))
    if repr:
        shown = tuple(f.name for f in flds if f.repr)

        @recursive_repr()
        def __repr__(self: Any) -> str:
            inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in shown)
            return f"{self.__class__.__qualname__}({inner})"

        _install(cls, "__repr__", __repr__)
    compared = tuple(f.name for f in flds if f.compare)
    if eq:

        def __eq__(self: Any, other: Any) -> Any:
            if other.__class__ is self.__class__:
                return tuple([getattr(self, n) for n in compared]) == tuple([getattr(other, n) for n in compared])
            return NotImplemented

        _install(cls, "__eq__", __eq__)
    field_names = frozenset(f.name for f in flds)
    if frozen and not dc_base:

        def __setattr__(self: Any, name: str, value: Any) -> None:
            if type(self) is cls or name in field_names:
                raise FrozenInstanceError(f"cannot assign to field {name!r}")
            super(cls, self).__setattr__(name, value)

        def __delattr__(self: Any, name: str) -> None:
            if type(self) is cls or name in field_names:
                raise FrozenInstanceError(f"cannot delete field {name!r}")
            super(cls, self).__delattr__(name)

        cls.__setattr__ = __setattr__  # type: ignore[method-assign,assignment]
        cls.__delattr__ = __delattr__  # type: ignore[method-assign,assignment]
        __setattr__.__qualname__ = f"{cls.__qualname__}.__setattr__"
        __delattr__.__qualname__ = f"{cls.__qualname__}.__delattr__"
    if eq and not has_explicit_hash:
        if frozen:
            hashed = tuple(f.name for f in flds if (f.compare if f.hash is None else f.hash))

            def __hash__(self: Any) -> int:
                return hash(tuple(getattr(self, n) for n in hashed))

            __hash__.__qualname__ = f"{cls.__qualname__}.__hash__"
            cls.__hash__ = __hash__  # type: ignore[method-assign,assignment]
        else:
            cls.__hash__ = None  # type: ignore[assignment]
    _install(cls, "__match_args__", tuple(f.name for f in flds if f.init))
    if not documented:
        cls.__doc__ = cls.__name__ + str(inspect.signature(cls)).replace(" -> None", "")
    return cls


@overload
def dataclass(cls: _T, /) -> _T: ...
@overload
def dataclass(cls: None = None, /, **kwargs: Any) -> Callable[[_T], _T]: ...


@dataclass_transform(field_specifiers=(field, dataclasses.Field))
def dataclass(cls: Any = None, /, **kwargs: Any) -> Any:
    """:func:`dataclasses.dataclass` (``init``, ``repr``, ``eq``, ``frozen``), with uncompiled methods."""

    def wrap(c: _T) -> _T:
        if not _covered(c, kwargs):
            return dataclasses.dataclass(c, **kwargs)  # type: ignore[no-any-return]
        return _build(c, **kwargs)

    return wrap if cls is None else wrap(cls)
