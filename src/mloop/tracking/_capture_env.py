"""The Python environment a run executes in: interpreter, platform, installed packages.

Computed once per process (``functools.cache``): the interpreter cannot change under a
running process, and listing packages is the most expensive part of starting a run.
Packages come from ``importlib.metadata`` rather than a ``pip freeze`` subprocess, which
would cost a second per run and need pip in the environment.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import platform
import re
import sys

LOCK_FORMAT_VERSION = 1
_NORMALIZE = re.compile(r"[-_.]+")


@functools.cache
def python_info() -> dict[str, str]:
    """Interpreter version, executable and platform, as run tags."""
    return {
        "mloop.python.version": platform.python_version(),
        "mloop.python.executable": sys.executable,
        "mloop.platform": platform.platform(),
    }


def _name_and_version(dist: importlib.metadata.Distribution) -> tuple[str | None, str | None]:
    """Read only the metadata headers: parsing the whole file (long description included)
    with the email parser is several times slower and this runs for every distribution."""
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
    name = version = None
    for line in text.splitlines():
        if not line.strip():
            break
        if line.startswith("Name:"):
            name = line[5:].strip()
        elif line.startswith("Version:"):
            version = line[8:].strip()
    return name or None, version or None


@functools.cache
def requirements_lock() -> bytes:
    """Every installed distribution as a sorted ``name==version`` line, for ``pip install -r``.

    A distribution installed from a local folder or a VCS URL (PEP 610 ``direct_url.json``,
    such as an editable install of the project itself) cannot be fetched from an index under
    its version, so its line is commented out rather than breaking ``pip install``. Its URL
    is not written: it may carry credentials.
    """
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name, version = _name_and_version(dist)
        if name is None or version is None:
            continue
        key = _NORMALIZE.sub("-", name).lower()
        if key in found:  # the first one on sys.path is the one imports see
            continue
        line = f"{name}=={version}"
        if dist.read_text("direct_url.json"):
            line = f"# {line}  (installed from a local folder or URL; install it from source)"
        found[key] = line
    header = [
        f"# mloop requirements lock v{LOCK_FORMAT_VERSION}",
        f"# python {platform.python_version()} ({platform.python_implementation()})",
        f"# platform {platform.platform()}",
    ]
    return ("\n".join(header + [found[k] for k in sorted(found)]) + "\n").encode()


@functools.cache
def lock_digest() -> str:
    """sha256 of the lock, so runs with identical environments are easy to find and compare."""
    return hashlib.sha256(requirements_lock()).hexdigest()


def clear_caches() -> None:
    for cached in (python_info, requirements_lock, lock_digest):
        cached.cache_clear()


__all__ = ["LOCK_FORMAT_VERSION", "clear_caches", "lock_digest", "python_info", "requirements_lock"]
