"""Public names imported on first use (PEP 562), for packages whose ``__init__`` would
otherwise import everything they export: ``import mloop`` must not cost SQLAlchemy,
pydantic-settings or the model libraries to a command that needs none of them."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_attributes(
    package: str,
    names: Mapping[str, str],
    namespace: dict[str, Any],
    *,
    submodules: Iterable[str] = (),
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module ``__getattr__`` and ``__dir__`` for ``package``: each of ``names`` comes
    from the module it maps to, each of ``submodules`` is ``package.<name>`` itself. A
    resolved name is stored in ``namespace`` (the package's globals), so it is looked up
    once."""
    modules = frozenset(submodules)

    def __getattr__(name: str) -> Any:
        if name in modules:
            return importlib.import_module(f"{package}.{name}")
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *names, *modules})

    return __getattr__, __dir__
