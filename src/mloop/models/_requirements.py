"""The environment a package was made in: pinned versions of the flavor's libraries.

Pins are exact (``scikit-learn==1.9.1``) because a model file is only known to load and
predict the same in the versions that wrote it. Import names map to distributions through
the installed metadata (``sklearn`` → ``scikit-learn``, ``xgboost`` → ``xgboost-cpu``).
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import platform
from collections.abc import Iterable

logger = logging.getLogger("mloop.models")


def pinned_requirements(import_names: Iterable[str]) -> tuple[str, ...]:
    """``name==version`` for every installed distribution providing ``import_names``."""
    pins: set[str] = set()
    for import_name in import_names:
        for distribution in _distributions().get(import_name, ()):
            try:
                pins.add(f"{distribution}=={importlib.metadata.version(distribution)}")
            except importlib.metadata.PackageNotFoundError:
                continue
    return tuple(sorted(pins, key=str.lower))


def python_version() -> str:
    return platform.python_version()


def environment_differences(requirements: Iterable[str], made_with_python: str) -> list[str]:
    """How this environment differs from the one a package pins (empty when it matches)."""
    differences = []
    for requirement in requirements:
        name, _, wanted = requirement.partition("==")
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            differences.append(f"{name} {wanted} is not installed")
            continue
        if wanted and installed != wanted:
            differences.append(f"{name} is {installed}, the model was saved with {wanted}")
    here = python_version()
    if made_with_python.rsplit(".", 1)[0] != here.rsplit(".", 1)[0]:
        differences.append(f"Python is {here}, the model was saved with {made_with_python}")
    return differences


def warn_about_environment(label: str, requirements: Iterable[str], python: str) -> list[str]:
    differences = environment_differences(requirements, python)
    if differences:
        logger.warning(
            "%s was saved in another environment (%s); predictions may differ",
            label,
            "; ".join(differences),
        )
    return differences


@functools.cache
def _distributions() -> dict[str, list[str]]:
    return {k: list(v) for k, v in importlib.metadata.packages_distributions().items()}
