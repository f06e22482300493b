"""What signing and verifying share: the bundle's place in a package, what a verified
signature tells (:class:`SignatureInfo`), the library's hasher over a package folder, and
digest comparisons that name the files that differ."""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mloop.errors import (
    InvalidInput,
    NotFound,
    TamperedPackage,
    UntrustedSignature,
)

if TYPE_CHECKING:
    from model_signing import manifest as ms_manifest

SIGNATURE_FILE = "mloop-model.sig"
MANIFEST_FILE = "mloop-model.json"
#: what the library raises on a bundle or statement it cannot make sense of
BAD_BUNDLE = (ValueError, KeyError, IndexError, TypeError, AttributeError, UnicodeError)

SignatureMode = Literal["key", "certificate"]


@dataclass(frozen=True)
class SignatureInfo:
    """Who signed a package and what they signed, once the signature has verified.

    ``key_id`` is the SHA-256 of the signer's public key (SubjectPublicKeyInfo PEM) — the
    same value the library stores as the bundle's key hint. ``digests`` maps each signed
    file (or ``file:start:end`` shard) to its hex digest; ``root_digest`` is the in-toto
    subject digest over all of them, one value that names the signed content.
    """

    package: Path
    signature_path: Path
    mode: SignatureMode
    key_id: str
    trusted_by: str
    hash_algorithm: str
    digests: Mapping[str, str]
    root_digest: str
    subject: str | None = None
    identities: tuple[str, ...] = ()
    issuer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "package": str(self.package),
            "signature_path": str(self.signature_path),
            "mode": self.mode,
            "key_id": self.key_id,
            "trusted_by": self.trusted_by,
            "subject": self.subject,
            "identities": list(self.identities),
            "issuer": self.issuer,
            "hash_algorithm": self.hash_algorithm,
            "root_digest": self.root_digest,
            "digests": dict(self.digests),
        }


def signature_info(
    package_dir: Path, mode: SignatureMode, signer_key_id: str, trusted_by: str, signed: Any
) -> SignatureInfo:
    root = hashlib.sha256()
    for descriptor in signed.resource_descriptors():
        root.update(descriptor.digest.digest_value)
    return SignatureInfo(
        package=package_dir,
        signature_path=package_dir / SIGNATURE_FILE,
        mode=mode,
        key_id=signer_key_id,
        trusted_by=trusted_by,
        hash_algorithm=str(signed.serialization_type["hash_type"]),
        digests=digests_of(signed),
        root_digest=root.hexdigest(),
    )


def untrusted(reason: str, message: str, package_dir: Path, **details: Any) -> UntrustedSignature:
    return UntrustedSignature(
        message, details={"reason": reason, "package": str(package_dir), **details}
    )


def first_line(exc: BaseException | None) -> str:
    text = str(exc).strip() if exc is not None else ""
    return text.splitlines()[0] if text else type(exc).__name__


def hashing_config(method: str, hash_type: str, shard_size: float | None) -> Any:
    """The library's hasher over every file but the signature. Git paths are hashed too:
    nothing in a package folder goes unsigned."""
    from model_signing import hashing

    config: Any = hashing.Config()  # type: ignore[no-untyped-call]
    config.set_ignored_paths(paths=[SIGNATURE_FILE], ignore_git_paths=False)
    if method == "files" and hash_type in ("sha256", "blake2", "blake3"):
        return config.use_file_serialization(hashing_algorithm=hash_type)
    if method == "shards" and hash_type in ("sha256", "blake2") and shard_size:
        # the signed statement is JSON through protobuf: numbers come back as floats
        return config.use_shard_serialization(
            hashing_algorithm=hash_type, shard_size=int(shard_size)
        )
    raise UntrustedSignature(
        f"the signature uses hashing {method}/{hash_type}, which mloop cannot check; "
        "re-sign with `mloop models sign`",
        details={"reason": "malformed"},
    )


def hash_package(package_dir: Path, config: Any) -> ms_manifest.Manifest:
    try:
        manifest: ms_manifest.Manifest = config.hash(package_dir)
        return manifest
    except ValueError as exc:  # a symlink, a socket, a file that vanished mid-walk
        raise TamperedPackage(
            f"{package_dir} cannot be hashed: {first_line(exc)}; a package holds regular files only"
        ) from None


def digests_of(manifest: Any) -> dict[str, str]:
    return {d.identifier: d.digest.digest_hex for d in manifest.resource_descriptors()}


def digest_difference(
    expected: Mapping[str, str], actual: Mapping[str, str], *, shards: bool = False
) -> dict[str, list[str]]:
    def file_of(identifier: str) -> str:
        return identifier.rsplit(":", 2)[0] if shards else identifier

    expected_files = {file_of(k) for k in expected}
    actual_files = {file_of(k) for k in actual}
    modified = {
        file_of(k)
        for k in set(expected) | set(actual)
        if expected.get(k) != actual.get(k)
        and file_of(k) in expected_files
        and file_of(k) in actual_files
    }
    found = {
        "modified": sorted(modified),
        "added": sorted(actual_files - expected_files),
        "removed": sorted(expected_files - actual_files),
    }
    return {k: v for k, v in found.items() if v}


def describe(difference: Mapping[str, list[str]], limit: int = 5) -> str:
    parts = []
    for kind, files in difference.items():
        shown = ", ".join(files[:limit]) + (
            f" and {len(files) - limit} more" if len(files) > limit else ""
        )
        parts.append(f"{kind} {shown}")
    return "; ".join(parts)


def local_package(path_or_uri: str | os.PathLike[str]) -> tuple[Path, str | None]:
    """The local folder of a package, and the URI when it came from one (to store the
    signature back). Paths are used as they are; URIs go through ``resolve_package``."""
    text = os.fspath(path_or_uri)
    if isinstance(path_or_uri, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:/", text):
        models = importlib.import_module("mloop.models")  # imported late: it imports us
        return Path(models.resolve_package(text)), text
    folder = Path(text).expanduser()
    if not folder.exists():
        raise NotFound(f"no model package at {folder}")
    if not folder.is_dir():
        raise InvalidInput(f"{folder} is not a folder; a model package is a folder")
    return folder, None


def write_atomic(path: Path, data: bytes) -> None:
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), 0o644)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
