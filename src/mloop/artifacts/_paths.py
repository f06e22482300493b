"""Names inside the store: blob keys, digests, and user-supplied artifact paths.

Artifact paths come from users (``log_artifact(..., artifact_path="plots")``) and later
become file names on someone else's disk when a run is downloaded, so they are checked
here once, before they reach any store, rather than trusted at every use.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from mloop.errors import InvalidInput, NotFound, UnsafePath

BLOB_PREFIX = "blobs/sha256/"
_DIGEST = re.compile(r"[0-9a-f]{64}")
_DRIVE = re.compile(r"^[A-Za-z]:")


def check_digest(digest: str) -> str:
    """Refuse anything but a SHA-256 hex digest, so a digest can never act as a path."""
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise InvalidInput(
            f"{digest!r} is not a SHA-256 digest: expected 64 lowercase hex characters, "
            "as returned in BlobInfo.digest by put_bytes, put_stream or put_file",
            details={"digest": repr(digest)},
        )
    return digest


def blob_key(digest: str) -> str:
    """Fan blobs out over 256 folders so no single folder grows huge on local disks."""
    check_digest(digest)
    return f"{BLOB_PREFIX}{digest[:2]}/{digest[2:]}"


def digest_of_key(key: str) -> str | None:
    """The digest a blob key names, or ``None`` for stray objects under the prefix."""
    if not key.startswith(BLOB_PREFIX):
        return None
    rest = key[len(BLOB_PREFIX) :]
    head, sep, tail = rest.partition("/")
    digest = head + tail
    if not sep or len(head) != 2 or not _DIGEST.fullmatch(digest):
        return None
    return digest


def safe_relpath(path: str) -> str:
    """Normalize an artifact path and refuse any that could escape the run's folder.

    The result uses forward slashes, has no ``.``/empty segments, no ``..`` left, and is
    stable: ``safe_relpath(safe_relpath(p)) == safe_relpath(p)``.
    """
    if not isinstance(path, str):
        raise UnsafePath(f"artifact path must be a string, got {type(path).__name__}")
    if not path:
        raise UnsafePath("artifact path is empty; give a relative path such as 'plots/loss.png'")
    if "\x00" in path:
        raise UnsafePath(f"artifact path {path!r} contains a NUL byte; remove it")
    if "\\" in path:
        raise UnsafePath(
            f"artifact path {path!r} contains a backslash; use forward slashes "
            "('plots/loss.png'), which mean the same on every platform"
        )
    if path.startswith("/") or _DRIVE.match(path):
        raise UnsafePath(
            f"artifact path {path!r} is absolute; give a path relative to the run's "
            "artifact root, such as 'plots/loss.png'"
        )
    parts: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not parts:
                raise UnsafePath(
                    f"artifact path {path!r} climbs out of the artifact root with '..'; "
                    "give a path that stays inside it"
                )
            parts.pop()
            continue
        parts.append(segment)
    if not parts:
        raise UnsafePath(
            f"artifact path {path!r} names the artifact root itself; give a file path "
            "such as 'plots/loss.png'"
        )
    return "/".join(parts)


def iter_local_files(root: str | os.PathLike[str]) -> Iterator[tuple[str, Path]]:
    """Walk a folder to log, refusing symlinks that would upload files from elsewhere.

    Yields ``(relative POSIX path, absolute path)`` sorted by relative path. A symlink to
    a file inside ``root`` is logged as a file; a symlink to a folder inside ``root`` is
    skipped, because its files are already logged under their real path (and following
    it could loop). A symlink resolving outside ``root`` raises :class:`UnsafePath`.
    """
    base = Path(root).absolute()
    if not base.exists():
        raise NotFound(f"folder {base} does not exist; check the path given to log_artifacts")
    if not base.is_dir():
        raise InvalidInput(f"{base} is not a folder; use log_artifact for a single file")
    real_base = base.resolve()
    found: list[tuple[str, Path]] = []
    pending = [base]
    while pending:
        folder = pending.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                path = Path(entry.path)
                if entry.is_symlink():
                    if _followed_symlink(path, real_base):
                        found.append((path.relative_to(base).as_posix(), path))
                elif entry.is_dir():
                    pending.append(path)
                elif entry.is_file():
                    found.append((path.relative_to(base).as_posix(), path))
    found.sort(key=lambda item: item[0])
    yield from found


def _followed_symlink(link: Path, real_base: Path) -> bool:
    target = link.resolve()
    if not target.is_relative_to(real_base):
        raise UnsafePath(
            f"symlink {link} points to {target}, outside the folder being logged "
            f"({real_base}); copy the file into the folder or remove the link",
            details={"link": str(link), "target": str(target)},
        )
    if not target.exists():
        raise InvalidInput(
            f"symlink {link} points to {target}, which does not exist; fix or remove the link"
        )
    return target.is_file()
