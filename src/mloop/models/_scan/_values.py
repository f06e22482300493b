"""How the opcode walk represents values without building them.

Small literals (``None``, booleans, integers, short strings, small tuples) are kept as
Python values (strings read by ``SHORT_BINUNICODE`` stay ``bytes``, decoded when used), because reading a joblib array header or a PyTorch storage key needs them.
Everything else is a marker: what was imported (:class:`GlobalRef`), what a call returned
(:class:`CallResult`), what a loader's ``persistent_load`` returned (:class:`Pid`), or a
value of a type that can never be called (:data:`LITERAL`: floats, bytes, big numbers,
long strings, containers past their cap). :data:`UNKNOWN` is a value the walk stopped
tracking (its memo slot left the bounded window): using it as a module name or a callee
is refused.
"""

from __future__ import annotations

from typing import Any


class _Marker:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name


LITERAL = _Marker("LITERAL")
LONG_STRING = _Marker("LONG_STRING")
UNKNOWN = _Marker("UNKNOWN")


class GlobalRef:
    """An object a ``GLOBAL``/``STACK_GLOBAL``/``INST`` would import."""

    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.name = name

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, GlobalRef) and other.module == self.module and other.name == self.name
        )

    def __hash__(self) -> int:
        return hash((self.module, self.name))

    def __repr__(self) -> str:
        return f"{self.module}.{self.name}"


class CallResult:
    """What calling ``func`` would return; ``cls`` is the class it is an instance of when
    known (``NEWOBJ``, ``copyreg._reconstructor``, calling a class), ``args``/``state`` are
    kept only for the few types the walk needs to read (dtypes, joblib wrappers)."""

    __slots__ = ("args", "cls", "func", "state")

    def __init__(self, func: Any, cls: GlobalRef | None, args: Any = None) -> None:
        self.func = func
        self.cls = cls
        self.args = args
        self.state: Any = None


class Pid:
    """What a loader's ``persistent_load`` returns for a persistent id (PyTorch storages)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class Seq:
    """A list; ``items`` is ``None`` once it grew past the cap (contents no longer kept)."""

    __slots__ = ("items",)

    def __init__(self, items: list[Any] | None) -> None:
        self.items = items


class Map:
    """A dict as a list of pairs (keys may be unhashable markers); ``None`` past the cap."""

    __slots__ = ("items",)

    def __init__(self, items: list[tuple[Any, Any]] | None) -> None:
        self.items = items

    def get(self, key: Any, default: Any = None) -> Any:
        for k, v in self.items or ():
            if k == key:
                return v
        return default


def never_callable(value: Any) -> bool:
    """True for values whose type has no ``__call__``: calling them fails, nothing runs."""
    return (
        value is None
        or value is LITERAL
        or value is LONG_STRING
        or isinstance(value, bool | int | str | bytes | tuple | Seq | Map)
    )


def plain(value: Any, depth: int = 0) -> Any:
    """Turn tracked containers into Python values (for reading headers); markers stay.
    Deeper than a header ever nests (or self-referencing) becomes :data:`UNKNOWN`."""
    if depth > 16:
        return UNKNOWN
    if isinstance(value, Seq):
        return None if value.items is None else [plain(item, depth + 1) for item in value.items]
    if isinstance(value, Map):
        if value.items is None:
            return None
        try:
            return {plain(k, depth + 1): plain(v, depth + 1) for k, v in value.items}
        except TypeError:
            return None
    if isinstance(value, tuple):
        return tuple(plain(item, depth + 1) for item in value)
    if isinstance(value, bytes):  # a string still in its UTF-8 form
        return value.decode("utf-8", "replace")
    return value
