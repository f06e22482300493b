"""The manifest of a dataset version: every file, in a versioned, canonical JSON format.

Its SHA-256 identifies a version's content, so the bytes must not depend on anything but
the files: keys sorted, files sorted by path, no whitespace.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mloop.errors import InvalidInput

MANIFEST_FORMAT = "mloop.dataset-manifest"
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class DatasetFile:
    """One file of a version: a stored blob (``digest``) or an external object (``uri``)."""

    path: str
    format: str
    size: int
    digest: str | None = None
    uri: str | None = None
    etag: str | None = None
    mtime_ns: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "size": self.size,
            "digest": self.digest,
            "uri": self.uri,
            "etag": self.etag,
            "mtime_ns": self.mtime_ns,
        }


@dataclass(frozen=True)
class FileChange:
    """A file of a version that no longer matches what was registered."""

    path: str
    change: str  # "missing" or "changed"
    detail: str
    uri: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "change": self.change, "detail": self.detail, "uri": self.uri}


def write_manifest(storage: str, files: Sequence[DatasetFile]) -> bytes:
    """Canonical JSON of the manifest: equal content gives equal bytes, hence one digest."""
    document = {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_VERSION,
        "storage": storage,
        "files": [f.to_dict() for f in sorted(files, key=lambda f: f.path)],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def read_manifest(data: bytes) -> list[DatasetFile]:
    """The files of a stored manifest; a file of an unknown format is refused, not guessed."""
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise InvalidInput(f"not a dataset manifest: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
        raise InvalidInput("not a dataset manifest (no 'format': 'mloop.dataset-manifest')")
    found = document.get("format_version")
    if found != MANIFEST_VERSION:
        raise InvalidInput(
            f"dataset manifest format version {found!r} is not known to this mloop (it reads "
            f"{MANIFEST_VERSION}); upgrade mloop"
        )
    return [DatasetFile(**f) for f in document["files"]]
