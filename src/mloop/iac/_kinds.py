"""The kinds a document may declare, behind one small interface.

A kind turns a document's ``spec`` into its owner's validated object (``parse``), reads
what is live (``get_live``/``list_live``), stores a desired object (``apply``) and writes
an object back as a canonical mapping (``dump``) that parses to an equal object, which is
what makes ``mloop export`` re-apply as unchanged. Built-in kinds register through
:func:`register_kind` like a third party would.

A kind whose owner's functions are not importable (a part of mloop still being built)
stays registered but reports why in ``unavailable()``; documents of that kind are refused
with that reason instead of being skipped.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from mloop.errors import InvalidInput
from mloop.registry._db import Actor


class Kind(ABC):
    """One kind of object (``Deployment``, ``Trigger``, …) and how to reach its owner."""

    name: str
    """The ``kind:`` written in documents."""
    namespace: str = ""
    """Kinds sharing a namespace share names (a PipelineSchedule is a Trigger); default: own."""
    order: int = 50
    """Applied in ascending order, so objects others refer to (gates, alert rules) come first."""
    summary: str = ""

    @property
    def store_namespace(self) -> str:
        return self.namespace or self.name

    def unavailable(self) -> str | None:
        """Why this kind cannot be used in this installation, or None when it can."""
        return None

    @abstractmethod
    def spec_schema(self, ref_prefix: str) -> dict[str, Any]:
        """The JSON Schema of ``spec`` (its ``$defs`` named ``ref_prefix + Model``)."""

    @abstractmethod
    def parse(self, name: str, spec: Any) -> Any:
        """The desired object. Raise pydantic's ``ValidationError`` (locations relative to
        ``spec``) or :class:`~mloop.iac._documents.SpecError` for a located problem."""

    @abstractmethod
    def get_live(self, name: str) -> Any | None:
        """The live object called ``name``, or None."""

    @abstractmethod
    def list_live(self) -> list[tuple[str, Any]]:
        """Every live object of this kind, as (name, object), by name."""

    @abstractmethod
    def apply(
        self, name: str, desired: Any, *, live: Any | None, actor: Actor, reason: str
    ) -> None:
        """Store ``desired`` (``live`` is what was read when the plan was made)."""

    @abstractmethod
    def dump(self, obj: Any) -> dict[str, Any]:
        """The canonical ``spec`` mapping of an object: defaults left out, JSON values only."""

    def same(self, desired: Any, live: Any) -> bool:
        """Whether applying ``desired`` over ``live`` would change nothing."""
        return bool(self.dump(desired) == self.dump(live))

    def check(self, name: str, desired: Any, live: Any | None) -> None:  # noqa: B027
        """Checks that need live state, run for changed objects before anything is applied
        (raise :class:`~mloop.iac._documents.SpecError`)."""

    def authorize(self, name: str, actor: Actor) -> None:  # noqa: B027 (optional hook)
        """Refuse (:class:`~mloop.errors.PermissionDenied`) before anything is applied."""


_KINDS: dict[str, Kind] = {}
_BUILTINS_LOADED = False


def register_kind(kind: Kind) -> None:
    """Make documents of ``kind.name`` applicable (a later registration replaces)."""
    _KINDS[kind.name] = kind


def kinds() -> dict[str, Kind]:
    """Every registered kind by name, in apply order."""
    _load_builtins()
    return dict(sorted(_KINDS.items(), key=lambda item: (item[1].order, item[0])))


def get_kind(name: str) -> Kind:
    known = kinds()
    if name not in known:
        raise InvalidInput(f"kind {name!r} does not exist; use one of: {', '.join(known)}")
    return known[name]


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    from mloop.iac import _kind_deployment, _kind_owned, _kind_trigger

    for module in (_kind_deployment, _kind_trigger, _kind_owned):
        for kind in module.builtin_kinds():
            _KINDS.setdefault(kind.name, kind)


def owner_function(candidates: tuple[str, ...], name: str) -> Callable[..., Any] | None:
    """``name`` from the first of ``candidates`` (module paths) that defines it: the owner's
    public package first, then the private module it lives in while it is being built."""
    for module_name in candidates:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        try:
            found = getattr(module, name, None)
        except ImportError:
            continue
        if callable(found):
            return found  # type: ignore[no-any-return]
    return None


__all__ = ["Kind", "get_kind", "kinds", "owner_function", "register_kind"]
