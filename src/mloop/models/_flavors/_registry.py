"""Which flavors exist: built-ins and plugins register here the same way."""

from __future__ import annotations

import re
import threading
from typing import Any

from mloop.errors import Conflict, InvalidInput, NotFound
from mloop.models._flavors._base import Flavor

_lock = threading.Lock()
_flavors: dict[str, Flavor] = {}
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


def register_flavor(flavor: Flavor, *, replace: bool = False) -> Flavor:
    """Make ``flavor`` available to save and load models.

    When several flavors can save a model, the one registered last wins, so a plugin can
    take over a kind of model from a built-in; registering a name twice needs
    ``replace=True``.
    """
    if not isinstance(flavor, Flavor):
        raise InvalidInput(
            f"{flavor!r} is not a Flavor; subclass mloop.models.Flavor and register an instance"
        )
    name = getattr(flavor, "name", None)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput(
            f"flavor name {name!r} is not valid: use lowercase letters, digits and '_'"
        )
    with _lock:
        if name in _flavors and not replace:
            raise Conflict(
                f"a flavor named {name!r} is already registered ({_flavors[name]!r}); "
                "pass replace=True to take its place"
            )
        _flavors.pop(name, None)
        _flavors[name] = flavor
    return flavor


def get_flavor(name: str) -> Flavor:
    """The flavor registered as ``name``."""
    with _lock:
        found = _flavors.get(name)
        known = sorted(_flavors)
    if found is None:
        raise NotFound(
            f"no flavor named {name!r} is registered (known: {', '.join(known)}); import the "
            "plugin that registers it before loading this model"
        )
    return found


def flavor_for(model: Any) -> Flavor:
    """The most recently registered flavor that can save ``model``."""
    with _lock:
        candidates = list(reversed(_flavors.values()))
    for flavor in candidates:
        if flavor.can_save(model):
            return flavor
    raise InvalidInput(
        f"no flavor can save a {type(model).__module__}.{type(model).__qualname__}; "
        f"known flavors: {', '.join(sorted(f.name for f in candidates))}. Wrap it in a "
        "mloop.models.PythonModel subclass, or register a flavor for it"
    )


def flavor_names() -> list[str]:
    with _lock:
        return sorted(_flavors)
