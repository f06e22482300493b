"""The byte-level seam under the artifact store, and the table that picks a backend.

A backend only moves bytes under string keys (``blobs/sha256/ab/cdef…``). Hashing,
de-duplication and verification live once in :class:`~mloop.artifacts.ArtifactStore`,
so a new backend cannot get them wrong and every backend passes the same test suite.
Backends are imported lazily so ``import mloop`` never pays for (or needs) s3fs.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from mloop.errors import ConfigError


class _Backend(Protocol):
    """Bytes under keys. Missing keys raise :class:`FileNotFoundError`."""

    @property
    def root(self) -> str:
        """The URI the backend was opened with, normalized."""
        ...

    def staging_dir(self) -> Path | None:
        """Where the store should spool uploads so :meth:`put_file` can rename, not copy.

        ``None`` means the system temporary folder.
        """
        ...

    def put_file(self, src: Path, key: str) -> None:
        """Publish the bytes of local file ``src`` at ``key`` atomically; may consume ``src``."""
        ...

    def open(self, key: str) -> BinaryIO: ...

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        """``(key, size)`` of every object whose key starts with ``prefix``, in key order."""
        ...

    def delete(self, key: str) -> None: ...


@dataclass(frozen=True)
class _Scheme:
    module: str
    factory: str
    needs: str | None = None
    install_hint: str | None = None


_SCHEMES: dict[str, _Scheme] = {
    "file": _Scheme("mloop.artifacts._local", "open_local"),
    "memory": _Scheme("mloop.artifacts._memory", "open_memory"),
    "s3": _Scheme(
        "mloop.artifacts._fsspec",
        "open_s3",
        needs="s3fs",
        install_hint="pip install 'mloop[s3]'",
    ),
}

_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def open_backend(uri: str, *, s3_endpoint_url: str | None = None) -> _Backend:
    """Pick the backend from the URI's scheme; a plain path means a local folder."""
    match = _URI.match(uri)
    scheme = match.group(1).lower() if match else "file"
    entry = _SCHEMES.get(scheme)
    if entry is None:
        valid = ", ".join(f"{name}://" for name in sorted(_SCHEMES))
        raise ConfigError(
            f"artifact store URI {uri!r} has an unknown scheme {scheme!r}; "
            f"use a folder path or one of: {valid}",
            details={"uri": uri, "valid_schemes": sorted(_SCHEMES)},
        )
    if entry.needs is not None:
        try:
            importlib.import_module(entry.needs)
        except ImportError as exc:
            raise ConfigError(
                f"{scheme}:// artifact stores need the {entry.needs} package, which is not "
                f"installed; run `{entry.install_hint}`",
                details={"uri": uri, "missing": entry.needs},
            ) from exc
    factory: Callable[..., _Backend] = getattr(importlib.import_module(entry.module), entry.factory)
    location = local_path(uri) if scheme == "file" else uri
    return factory(location, s3_endpoint_url=s3_endpoint_url)


def local_path(uri: str) -> str:
    """The folder a plain path or ``file://`` URI names."""
    if not _URI.match(uri):
        return uri
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise ConfigError(
            f"artifact store URI {uri!r} names host {parts.netloc!r}; file:// URIs must be "
            "local (file:///absolute/path) — mount the share and use its local path"
        )
    if not parts.path:
        raise ConfigError(f"artifact store URI {uri!r} has no path; use file:///absolute/path")
    return url2pathname(unquote(parts.path))
