"""What a package holds and whether it is intact, without loading the model."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mloop.errors import TamperedPackage
from mloop.models._manifest import SIGNATURE_FILE_NAME, Manifest
from mloop.models._package import package_digest, read_manifest, verify_package
from mloop.models._resolve import locate


@dataclass(frozen=True)
class PackageInspection:
    """A package's manifest and the outcome of checking every file against it."""

    uri: str
    path: Path
    package_digest: str
    manifest: Manifest
    verified: bool
    problem: str | None
    signed: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "path": str(self.path),
            "package_digest": self.package_digest,
            "verified": self.verified,
            "problem": self.problem,
            "signed": self.signed,
            "manifest": self.manifest.to_dict(),
        }


def inspect_package(uri: str | os.PathLike[str]) -> PackageInspection:
    """Read the manifest of the package ``uri`` names and verify its files; a tampered
    package is reported (``verified=False``, ``problem``), not raised."""
    located = locate(uri)
    manifest = read_manifest(located.path)
    digest = package_digest(located.path)
    problem = None
    try:
        verify_package(located.path)
    except TamperedPackage as exc:
        problem = exc.message
    if problem is None and located.registered_digest not in (None, digest):
        problem = (
            f"the manifest's digest {digest} is not the registered {located.registered_digest}"
        )
    return PackageInspection(
        uri=located.uri,
        path=located.path,
        package_digest=digest,
        manifest=manifest,
        verified=problem is None,
        problem=problem,
        signed=(located.path / SIGNATURE_FILE_NAME).is_file(),
    )
