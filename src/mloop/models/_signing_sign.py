"""Signing a package: the library hashes every file once, mloop refuses to sign files that
no longer match ``mloop-model.json``, and a package named by a URI gets its signature
stored back with it (as a run artifact), so any machine that fetches it finds it."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mloop.errors import (
    InvalidInput,
    NotFound,
    TamperedPackage,
)

if TYPE_CHECKING:
    from model_signing import manifest as ms_manifest

from mloop.models._signing_bundle import (
    MANIFEST_FILE,
    SIGNATURE_FILE,
    describe,
    digest_difference,
    hash_package,
    hashing_config,
    local_package,
    write_atomic,
)
from mloop.models._signing_keys import load_private_key


def sign_package(
    path_or_uri: str | os.PathLike[str],
    private_key: str | os.PathLike[str],
    *,
    password: str | None = None,
    certificate: str | os.PathLike[str] | None = None,
    certificate_chain: Sequence[str | os.PathLike[str]] = (),
) -> Path:
    """Sign a package folder (or a ``runs:/``/``models:/`` URI) and return the ``.sig`` path.

    Key mode (offline) by default; with ``certificate`` the bundle carries the signing
    certificate and ``certificate_chain`` (intermediates) instead of a key hint. A package
    with a ``mloop-model.json`` is signed only if its files still match the digests listed
    there, so a signature never vouches for a tampered package. For URIs the signature is
    stored back with the package (the run artifact ``NAME/mloop-model.sig``).
    """
    from model_signing._signing import sign_certificate, sign_ec_key, signing

    key_path = Path(private_key).expanduser()
    load_private_key(key_path, password)  # clear errors before the library sees the key
    package_dir, uri = local_package(path_or_uri)
    try:
        if certificate is None:
            # model_signing 1.1.1 hands the password to `cryptography` as it gets it, and
            # `cryptography` wants bytes (so the library's own --password fails).
            secret = password.encode() if password is not None else None
            signer = sign_ec_key.Signer(key_path, secret)  # type: ignore[arg-type]
        elif not certificate_chain:
            raise InvalidInput(
                "certificate mode needs the CA chain of the signing certificate (--chain "
                "FILE, up to the organisation's CA): model_signing 1.1.1 cannot sign without it"
            )
        elif password is not None:
            raise InvalidInput(
                "certificate mode signs with an unencrypted private key only (model_signing "
                "1.1.1 cannot open an encrypted one there); keep the key at mode 0600"
            )
        else:
            signer = sign_certificate.Signer(
                key_path,
                _existing_file(certificate, "signing certificate"),
                [_existing_file(c, "certificate chain file") for c in certificate_chain],
            )
    except ValueError as exc:
        raise InvalidInput(f"cannot sign with {key_path}: {exc}") from None
    signed = hash_package(package_dir, hashing_config("files", "sha256", None))
    _refuse_if_tampered(package_dir, signed)
    signature = signer.sign(signing.Payload(signed))
    with tempfile.TemporaryDirectory(prefix="mloop-sign-") as scratch:
        written = Path(scratch) / SIGNATURE_FILE
        signature.write(written)
        data = written.read_bytes()
    target = package_dir / SIGNATURE_FILE
    write_atomic(target, data)
    if uri is not None:
        _store_signature_with(uri, target)
    return target


def _existing_file(path: str | os.PathLike[str], what: str) -> Path:
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise NotFound(f"{what} {resolved} does not exist")
    return resolved


def _refuse_if_tampered(package_dir: Path, signed: ms_manifest.Manifest) -> None:
    """An mloop package lists its files' digests; the library just hashed them all, so the
    comparison costs nothing and keeps a signature from blessing changed files."""
    listed = _listed_digests(package_dir)
    if listed is None:
        return
    actual = {
        d.identifier: d.digest.digest_hex
        for d in signed.resource_descriptors()
        if d.identifier != MANIFEST_FILE
    }
    difference = digest_difference(listed, actual)
    if difference:
        raise TamperedPackage(
            f"refusing to sign {package_dir}: it no longer matches its {MANIFEST_FILE} "
            f"({describe(difference)}); re-package the model",
            details=dict(difference),
        )


def _listed_digests(package_dir: Path) -> dict[str, str] | None:
    manifest_path = package_dir / MANIFEST_FILE
    if not manifest_path.is_file():
        return None
    try:
        files = json.loads(manifest_path.read_bytes()).get("files")
    except (ValueError, AttributeError):
        raise TamperedPackage(
            f"{manifest_path} is not a valid package manifest (not a JSON object)"
        ) from None
    if not isinstance(files, dict):
        raise TamperedPackage(f"{manifest_path} has no 'files' table of digests")
    return {str(k): str(v) for k, v in files.items()}


def _store_signature_with(uri: str, signature_file: Path) -> None:
    """Put the signature next to the package where the URI points, so every later
    ``resolve_package`` of that URI brings the signature along."""
    if uri.startswith("runs:/"):
        run_id, _, artifact_path = uri.removeprefix("runs:/").strip("/").partition("/")
        if not run_id or not artifact_path:
            raise InvalidInput(f"model URI {uri!r} is not runs:/RUN_ID/NAME")
        from mloop.tracking import MloopClient, get_tracking_uri

        # The tracking URI the package was fetched through (mloop.set_tracking_uri
        # included), so the signature lands where the package lives.
        client = MloopClient(get_tracking_uri())
        client.log_artifact(run_id, signature_file, artifact_path=artifact_path)
    elif uri.startswith("models:/"):
        from mloop.registry import resolve

        name, ref = _split_models_uri(uri)
        source = str(resolve(name, ref).source)
        if source.startswith(("runs:/", "models:/")):
            _store_signature_with(source, signature_file)
        else:
            local = Path(source.removeprefix("file://")).expanduser()
            if local.is_dir() and local.resolve() != signature_file.parent.resolve():
                write_atomic(local / SIGNATURE_FILE, signature_file.read_bytes())


def _split_models_uri(uri: str) -> tuple[str, str]:
    rest = uri.removeprefix("models:/").strip("/")
    if "@" in rest:
        name, _, alias = rest.rpartition("@")
        ref = f"@{alias}"
    else:
        name, _, ref = rest.rpartition("/")
    if not name or ref in ("", "@"):
        raise InvalidInput(f"model URI {uri!r} is not models:/NAME/VERSION or models:/NAME@ALIAS")
    return name, ref
