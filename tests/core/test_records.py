"""criu_core.records.dataclass behaves as dataclasses.dataclass: each case builds the same class body with both
decorators and compares what callers can observe (construction, errors, repr, eq, hash, frozen, the
dataclasses functions, inheritance)."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from collections.abc import Callable
from typing import Any

import pytest

from criu_core import records


def _pair(make: Callable[[Any], type]) -> tuple[type, type]:
    return make(dataclasses.dataclass), make(records.dataclass)


def _frozen_vma(dc: Any) -> type:
    @dc(frozen=True)
    class Vma:
        """A frozen record with defaults, a factory and an excluded field."""

        pid: int
        start: int
        end: int = 0
        name: str = ""
        flags: frozenset[str] = frozenset()
        extra: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False, hash=False)
        path: str | None = None

        @property
        def size(self) -> int:
            return self.end - self.start

    return Vma


def _mutable(dc: Any) -> type:
    @dc
    class Claim:
        """A mutable record with a post-init and an init=False field."""

        plugin: str
        skip: bool = False
        updates: dict[str, Any] = dataclasses.field(default_factory=dict)
        seen: list[int] = dataclasses.field(default_factory=list, init=False)
        note: str = dataclasses.field(default="n", init=False, repr=False)

        def __post_init__(self) -> None:
            self.seen.append(len(self.plugin))

    return Claim


def _outcome(fn: Callable[[], Any]) -> Any:
    try:
        return ("ok", fn())
    except Exception as err:  # noqa: BLE001 (the type and the message must match)
        return (type(err).__name__, str(err).replace("records", "X").replace("dataclasses", "X"))


CALLS: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    ((1, 2), {}),
    ((1, 2, 3, "a"), {"path": "/x"}),
    ((), {"pid": 1, "start": 2, "extra": {"k": 1}}),
    ((1,), {}),
    ((), {}),
    ((1, 2, 3, "a", frozenset(), {}, None, 9), {}),
    ((1, 2), {"pid": 3}),
    ((1, 2), {"bogus": 3}),
    ((), {"pid": 1, "end": 3, "name": "x"}),
    ((), {"end": 3}),
    ((), {"end": 3, "bogus": 1}),
    ((1,), {"pid": 2, "bogus": 1}),
    ((1, 2, 3, "a", frozenset(), {}, None), {"extra": {}}),
]


@pytest.mark.parametrize(("args", "kwargs"), CALLS)
def test_frozen_construction_and_errors_match(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    std, ours = _pair(_frozen_vma)
    a = _outcome(lambda: repr(std(*args, **kwargs)))
    b = _outcome(lambda: repr(ours(*args, **kwargs)))
    assert a == b


def test_frozen_semantics_match() -> None:
    std, ours = _pair(_frozen_vma)
    for cls in (std, ours):
        v = cls(1, 0x1000, 0x3000, "x", extra={"a": 1})
        assert v.size == 0x2000
        assert v == cls(1, 0x1000, 0x3000, "x", extra={"other": 2})  # compare=False
        assert v != cls(1, 0x1000, 0x3000, "y")
        assert v.__eq__(object()) is NotImplemented
        assert hash(v) == hash(cls(1, 0x1000, 0x3000, "x"))
        assert hash(v) == hash((1, 0x1000, 0x3000, "x", frozenset(), None))
        with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'pid'"):
            v.pid = 2
        with pytest.raises(dataclasses.FrozenInstanceError, match="cannot delete field 'name'"):
            del v.name
        with pytest.raises(dataclasses.FrozenInstanceError):
            v.other = 1
        r = dataclasses.replace(v, name="z")
        assert (type(r), r.name, r.pid, r.extra) == (cls, "z", 1, {"a": 1})
        assert dataclasses.asdict(v)["extra"] == {"a": 1}
        assert [f.name for f in dataclasses.fields(v)] == ["pid", "start", "end", "name", "flags", "extra", "path"]
        assert dataclasses.is_dataclass(v)
        assert cls.__match_args__ == ("pid", "start", "end", "name", "flags", "extra", "path")
        p = cls.__dataclass_params__
        assert (p.init, p.repr, p.eq, p.frozen, p.order) == (True, True, True, True, False)
        match v:
            case cls(1, 0x1000):
                pass
            case _:
                pytest.fail("positional match failed")
    assert repr(std(1, 2)).replace("_frozen_vma.<locals>.", "") == repr(ours(1, 2)).replace("_frozen_vma.<locals>.", "")


def test_mutable_semantics_match() -> None:
    std, ours = _pair(_mutable)
    results = []
    for cls in (std, ours):
        c = cls("abc", updates={"x": 1})
        assert c.seen == [3] and c.note == "n"
        c.skip = True
        assert c == cls("abc", True, {"x": 1})
        assert c != cls("abc", True, {"x": 2})
        assert cls.__hash__ is None
        with pytest.raises(TypeError):
            hash(c)
        d, e = cls("a"), cls("b")
        assert d.updates is not e.updates  # a fresh factory value each time
        with pytest.raises(TypeError, match="unexpected keyword argument 'note'"):
            cls("a", note="m")
        with pytest.raises(ValueError, match="init=False"):
            dataclasses.replace(c, note="m")
        results.append(repr(c).split(".")[-1])
    assert results[0] == results[1]


def test_custom_setattr_sees_every_field() -> None:
    for dc in (dataclasses.dataclass, records.dataclass):
        seen: list[str] = []

        @dc
        class Logged:
            """Records its assignments."""

            a: int
            b: list[int] = dataclasses.field(default_factory=list)

            def __setattr__(self, name: str, value: Any) -> None:
                seen.append(name)  # noqa: B023 (called within this iteration)
                object.__setattr__(self, name, value)

        Logged(1)
        assert seen == ["a", "b"]


def test_inheritance_matches() -> None:
    for dc in (dataclasses.dataclass, records.dataclass):

        @dc
        class Base:
            """Base."""

            a: int
            b: int = 2

        @dc
        class Child(Base):
            """Child."""

            c: int = 3

        @dc(frozen=True)
        class FBase:
            """Frozen base."""

            a: int

        @dc(frozen=True)
        class FChild(FBase):
            """Frozen child."""

            b: int = 0

        assert repr(Child(1)).endswith("Child(a=1, b=2, c=3)")
        assert Child(1, 5, 6) == Child(a=1, b=5, c=6) and Child(1) != Base(1)
        f = FChild(1, 2)
        assert hash(f) == hash((1, 2))
        with pytest.raises(dataclasses.FrozenInstanceError):
            f.a = 3
        with pytest.raises(TypeError, match="cannot inherit non-frozen dataclass from a frozen one"):

            @dc
            class Bad(FBase):
                """Not frozen below a frozen base."""

                z: int = 0

        with pytest.raises(TypeError, match="non-default argument 'y' follows default argument"):

            @dc
            class Order:
                """Bad field order."""

                x: int = 0
                y: int


def test_own_methods_win_and_uncovered_options_fall_back() -> None:
    @records.dataclass(frozen=True)
    class Own:
        """Defines its own repr and eq."""

        a: int

        def __repr__(self) -> str:
            return "own"

        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = object.__hash__

    assert repr(Own(1)) == "own" and Own(1) == Own(2)

    @records.dataclass(order=True)
    class Ordered:
        """Order is not covered: the standard decorator makes this one."""

        a: int

    assert Ordered(1) < Ordered(2)


def test_instances_pickle() -> None:
    from criu_core.resources import Vma

    v = Vma(1, 0x1000, 0x2000, 3, 2, vmflags=frozenset({"rd"}))
    assert pickle.loads(pickle.dumps(v)) == v


def test_signature_and_generated_docstring_match() -> None:
    def make(dc: Any) -> type:
        @dc
        class NoDoc:
            kfd_path: str = "/dev/kfd"
            count: int = 0
            env: dict[str, str] = dataclasses.field(default_factory=dict)
            hidden: int = dataclasses.field(default=0, init=False)

        return NoDoc

    std, ours = _pair(make)
    assert ours.__doc__ == std.__doc__
    assert str(inspect.signature(ours)) == str(inspect.signature(std))
    std_v, ours_v = _pair(_frozen_vma)
    assert str(inspect.signature(ours_v)) == str(inspect.signature(std_v))


def _field_view(cls: type) -> list[tuple[Any, ...]]:
    attrs = ("name", "type", "default", "default_factory", "init", "repr", "hash", "compare", "metadata", "kw_only")
    return [(*(getattr(f, a) for a in attrs), f._field_type) for f in dataclasses.fields(cls)]


@pytest.mark.parametrize("make", [_frozen_vma, _mutable])
def test_fields_params_and_class_attributes_match(make: Callable[[Any], type]) -> None:
    std, ours = _pair(make)
    assert _field_view(ours) == _field_view(std)
    assert list(ours.__dataclass_fields__) == list(std.__dataclass_fields__)
    assert repr(ours.__dataclass_params__) == repr(std.__dataclass_params__)
    for name in std.__dataclass_fields__:  # a Field's default replaces it on the class, or it is removed
        assert (name in vars(ours), getattr(ours, name, None)) == (name in vars(std), getattr(std, name, None))


def _mutable_default(dc: Any) -> type:
    @dc
    class Bad:
        items: list[int] = []  # noqa: RUF012

    return Bad


def _unannotated_field(dc: Any) -> type:
    @dc
    class Bad:
        a: int
        b = dataclasses.field(default=1)

    return Bad


def _slotted(dc: Any) -> type:
    @dc
    class Slotted:
        __slots__ = ("a",)
        a: int

    return Slotted


@pytest.mark.parametrize("make", [_mutable_default, _unannotated_field])
def test_definition_errors_match(make: Callable[[Any], type]) -> None:
    std = _outcome(lambda: make(dataclasses.dataclass))
    assert std[0] != "ok"
    assert _outcome(lambda: make(records.dataclass)) == std


def test_slots_entry_is_no_default() -> None:
    std, ours = _pair(_slotted)
    assert _field_view(ours) == _field_view(std)
    assert _outcome(lambda: ours()) == _outcome(lambda: std())
    assert ours(a=3).a == 3
