"""Local-folder backend: plain ``os`` calls, because this is the default and must be fast.

Blobs become visible only through ``os.replace`` of a fully written, fsynced file, so a
crash leaves either the whole blob or nothing under its key — never a torn file that a
later de-duplication check would mistake for the real content.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

_STAGING = "tmp"


class LocalBackend:
    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self._base = Path(folder).absolute()

    @property
    def root(self) -> str:
        return str(self._base)

    def staging_dir(self) -> Path:
        staging = self._base / _STAGING
        staging.mkdir(parents=True, exist_ok=True)
        return staging

    def put_file(self, src: Path, key: str) -> None:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.parent != self._base / _STAGING:
            src = self._copy_to_staging(src)
        try:
            _fsync_file(src)
            # Blobs are immutable once published; read-only files make accidental edits fail.
            os.chmod(src, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
            os.replace(src, dest)
        finally:
            src.unlink(missing_ok=True)
        _fsync_dir(dest.parent)

    def open(self, key: str) -> BinaryIO:
        return self._path(key).open("rb")

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        top = self._path(prefix)
        if not top.is_dir():
            return
        for folder, dirs, files in os.walk(top):
            dirs.sort()
            for name in sorted(files):
                path = Path(folder, name)
                yield path.relative_to(self._base).as_posix(), path.stat().st_size

    def delete(self, key: str) -> None:
        path = self._path(key)
        if os.name == "nt":  # pragma: no cover - Windows refuses to unlink read-only files
            path.chmod(stat.S_IWRITE)
        path.unlink()

    def _path(self, key: str) -> Path:
        return self._base.joinpath(*key.split("/"))

    def _copy_to_staging(self, src: Path) -> Path:
        fd, name = tempfile.mkstemp(prefix=".put-", dir=self.staging_dir())
        with os.fdopen(fd, "wb") as out, src.open("rb") as stream:
            shutil.copyfileobj(stream, out, 1 << 20)
        return Path(name)


def _fsync_file(path: Path) -> None:
    with path.open("r+b") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable; Windows has no directory handles to sync."""
    if os.name == "nt":  # pragma: no cover
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_local(location: str, **_options: Any) -> LocalBackend:
    return LocalBackend(location)
