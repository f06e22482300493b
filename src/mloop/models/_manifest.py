"""``mloop-model.json``: the versioned manifest at the root of every model package.

It names the flavor that reads the package, the signature, the environment the model was
trained in, the run that made it, and the SHA-256 of every other file. The SHA-256 of the
manifest's own bytes therefore identifies the whole package (the registry records it as
the package digest). The file is checked completely before anything is built from it, and
a reader refuses a format version it does not know rather than guessing.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mloop.errors import InvalidInput
from mloop.models._signature import ModelSignature

MANIFEST_NAME = "mloop-model.json"
SIGNATURE_FILE_NAME = "mloop-model.sig"
"""Reserved for the package's signature (a Sigstore bundle over the package's files). It is
never listed in ``files``: it signs them, so it cannot be one of them."""
RESERVED_NAMES = frozenset({MANIFEST_NAME, SIGNATURE_FILE_NAME})
FORMAT_VERSION = 1
_SHA256 = re.compile(r"[0-9a-f]{64}")
_FLAVOR_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")


class Manifest(BaseModel):
    """The parsed manifest of a model package (format version 1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format_version: int = FORMAT_VERSION
    flavor: str
    flavor_data: dict[str, Any] = Field(default_factory=dict)
    signature: ModelSignature | None = None
    requirements: tuple[str, ...] = ()
    python_version: str
    mloop_version: str
    run_id: str | None = None
    created_at: str
    files: dict[str, str]

    @field_validator("flavor")
    @classmethod
    def _flavor_name(cls, value: str) -> str:
        if not _FLAVOR_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is not a flavor name (lowercase letters, digits, _)")
        return value

    @field_validator("files")
    @classmethod
    def _file_entries(cls, files: dict[str, str]) -> dict[str, str]:
        from mloop.artifacts import safe_relpath
        from mloop.errors import UnsafePath

        for path, digest in files.items():
            try:
                plain = safe_relpath(path) == path
            except UnsafePath:
                plain = False
            if not plain:
                raise ValueError(f"file path {path!r} is not a plain relative POSIX path")
            if path in RESERVED_NAMES:
                raise ValueError(f"{path!r} is reserved and cannot be listed as a package file")
            if not _SHA256.fullmatch(digest):
                raise ValueError(f"digest of {path!r} is not a SHA-256 hex digest")
        return files

    def to_json(self) -> bytes:
        """Stable bytes: sorted keys, two-space indent, a final newline."""
        document = self.model_dump(mode="json")
        if self.signature is not None:
            document["signature"] = self.signature.to_dict()
        return (json.dumps(document, sort_keys=True, indent=2) + "\n").encode()

    def to_dict(self) -> dict[str, Any]:
        """The manifest as plain JSON values (what ``mloop-model.json`` holds)."""
        result: dict[str, Any] = json.loads(self.to_json())
        return result

    @classmethod
    def from_json(cls, data: bytes, *, source: str = MANIFEST_NAME) -> Manifest:
        """Parse and check a manifest; ``source`` names it in error messages."""
        try:
            document = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"{source} is not a model package manifest: {exc}") from None
        if not isinstance(document, dict):
            raise InvalidInput(f"{source} is not a model package manifest (not a JSON object)")
        version = document.get("format_version")
        reader = _READERS.get(version) if isinstance(version, int) else None
        if reader is None:
            newer = isinstance(version, int) and version > FORMAT_VERSION
            raise InvalidInput(
                f"{source} has package format version {version!r}, which this mloop does not "
                f"read (it reads {', '.join(map(str, sorted(_READERS)))})"
                + ("; upgrade mloop" if newer else ""),
                details={"format_version": version},
            )
        return reader(document, source)


def _read_v1(document: dict[str, Any], source: str) -> Manifest:
    try:
        return Manifest.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise InvalidInput(
            f"{source} is not a valid model package manifest: {where}: {first['msg']}",
            details={"field": where},
        ) from None


_READERS = {1: _read_v1}
"""One reader per format version ever written; old readers stay when a new one comes."""
