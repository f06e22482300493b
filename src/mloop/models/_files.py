"""The files of a package folder and their SHA-256 digests.

Only regular files count. A symlink in a package is refused rather than followed: the
digest recorded for it would describe whatever it points at today, somewhere else.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from mloop.errors import TamperedPackage
from mloop.models._manifest import RESERVED_NAMES


def sha256_file(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def package_files(root: Path) -> list[str]:
    """Relative POSIX paths of every file under ``root`` except the reserved names."""
    found: list[str] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        base = Path(folder)
        for name in (*dirs, *files):
            path = base / name
            relative = path.relative_to(root).as_posix()
            if path.is_symlink():
                raise TamperedPackage(
                    f"package {root} holds a symbolic link, {relative!r}; packages hold "
                    "regular files only",
                    details={"file": relative, "problem": "symlink"},
                )
            if name in files and not path.is_file():
                raise TamperedPackage(
                    f"package {root} holds {relative!r}, which is not a regular file",
                    details={"file": relative, "problem": "not-a-file"},
                )
        found.extend((base / name).relative_to(root).as_posix() for name in files)
    return sorted(path for path in found if path not in RESERVED_NAMES)


def digest_files(root: Path) -> dict[str, str]:
    """``{relative path: sha256}`` for every package file under ``root``."""
    return {relative: sha256_file(root / relative) for relative in package_files(root)}
