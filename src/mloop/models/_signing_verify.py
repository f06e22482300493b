"""Verifying a package's signature: the bundle is authenticated first (key mode here,
certificate mode in :mod:`._signing_certificate`), then the digests it vouches for are
compared with the files — re-hashed, or the digests a load has already checked."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature

from mloop.errors import (
    TamperedPackage,
)

if TYPE_CHECKING:
    from model_signing import manifest as ms_manifest

from mloop.models._signing_bundle import (
    BAD_BUNDLE,
    SIGNATURE_FILE,
    SignatureInfo,
    describe,
    digest_difference,
    digests_of,
    first_line,
    hash_package,
    hashing_config,
    local_package,
    signature_info,
    untrusted,
)
from mloop.models._signing_certificate import verify_certificate
from mloop.models._signing_keys import TrustAnchors, TrustedKey, public_pem


def verify_signature(
    path_or_uri: str | os.PathLike[str],
    trusted_public_keys: Sequence[Path | str] = (),
    *,
    trusted_ca: Sequence[Path | str] = (),
    allowed_identities: Sequence[str] = (),
) -> SignatureInfo:
    """Check ``mloop-model.sig`` against the trusted keys (or pinned CA) and every file.

    Raises :class:`~mloop.errors.UntrustedSignature` whose ``details["reason"]`` is one of
    ``missing``, ``malformed``, ``untrusted-key``, ``untrusted-certificate``, ``invalid``,
    ``unsigned-files`` or ``changed`` (with the ``modified``/``added``/``removed`` files).
    """
    anchors = TrustAnchors.load(trusted_public_keys, trusted_ca, allowed_identities)
    package_dir, _ = local_package(path_or_uri)
    return verify_with_anchors(package_dir, anchors)


def verify_with_anchors(package_dir: Path, anchors: TrustAnchors) -> SignatureInfo:
    """:func:`verify_signature` for a local folder and already-loaded anchors."""
    signed, info = _authenticate(package_dir, anchors)
    params = signed.serialization_type
    config = hashing_config(params["method"], params["hash_type"], params.get("shard_size"))
    try:
        actual = hash_package(package_dir, config)
    except TamperedPackage as exc:
        raise untrusted("changed", exc.message, package_dir) from None
    _require_same(package_dir, digests_of(signed), digests_of(actual), params["method"])
    return info


def verify_signed_digests(
    package_dir: Path, anchors: TrustAnchors, digests: Mapping[str, str]
) -> SignatureInfo:
    """Check the signature against digests the caller has already verified on disk (a
    load checks every file against ``mloop-model.json`` first), so nothing is hashed twice.

    ``digests`` must cover every file except the signature, by relative POSIX path. A
    signature made with another hashing method (shards, BLAKE) is checked by re-hashing.
    """
    signed, info = _authenticate(package_dir, anchors)
    params = signed.serialization_type
    if params["method"] != "files" or params["hash_type"] != "sha256":
        return verify_with_anchors(package_dir, anchors)
    _require_same(package_dir, digests_of(signed), dict(digests), "files")
    return info


def _authenticate(
    package_dir: Path, anchors: TrustAnchors
) -> tuple[ms_manifest.Manifest, SignatureInfo]:
    """Check the bundle's signature and trust chain (no model bytes are read) and return
    the manifest it vouches for."""
    from model_signing._signing import sign_sigstore_pb

    signature_path = package_dir / SIGNATURE_FILE
    if not signature_path.is_file():
        raise untrusted(
            "missing",
            f"{package_dir} is not signed: it has no {SIGNATURE_FILE}; sign it with "
            f"`mloop models sign {package_dir} --key KEY`",
            package_dir,
        )
    try:
        signature = sign_sigstore_pb.Signature.read(signature_path)
        material = signature.bundle.verification_material
    except BAD_BUNDLE as exc:
        raise untrusted(
            "malformed",
            f"{signature_path} is not a model signature (a Sigstore bundle): {first_line(exc)}",
            package_dir,
        ) from None
    chain = material.x509_certificate_chain
    with tempfile.TemporaryDirectory(prefix="mloop-verify-") as scratch:
        if chain is not None and chain.certificates:
            signed, info = verify_certificate(package_dir, signature, anchors, Path(scratch))
        elif material.public_key is not None:
            signed, info = _verify_key(package_dir, signature, anchors, Path(scratch))
        else:
            raise untrusted(
                "malformed",
                f"{signature_path} names neither a public key nor a certificate",
                package_dir,
            )
    _refuse_unsigned_paths(package_dir, signed)
    return signed, info


def _verify_key(
    package_dir: Path, signature: Any, anchors: TrustAnchors, scratch: Path
) -> tuple[ms_manifest.Manifest, SignatureInfo]:
    from model_signing._signing import sign_ec_key

    hint = signature.bundle.verification_material.public_key.hint
    candidates = [k for k in anchors.keys if k.key_id == hint] if hint else list(anchors.keys)
    if not candidates:
        trusted = ", ".join(f"{k.key_id[:16]} ({k.label})" for k in anchors.keys) or "none"
        raise untrusted(
            "untrusted-key",
            f"{package_dir} is signed by key {hint[:16]}…, which is not trusted "
            f"(trusted: {trusted})",
            package_dir,
            key_id=hint,
        )
    failure: Exception | None = None
    for number, candidate in enumerate(candidates):
        key_file = scratch / f"trusted-{number}.pub"
        key_file.write_bytes(public_pem(candidate.public_key))
        # Bundles from before the key hint existed make the library print a warning on
        # stdout; keep stdout for mloop's own output (JSON included).
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                signed = sign_ec_key.Verifier(key_file).verify(signature)
            except (InvalidSignature, *BAD_BUNDLE) as exc:
                failure = exc
                continue
        return signed, signature_info(package_dir, "key", candidate.key_id, candidate.label, signed)
    raise untrusted(
        "invalid",
        f"the signature in {package_dir / SIGNATURE_FILE} does not verify with "
        f"{_which(candidates)}: the bundle was altered or made by another key"
        + (f" ({first_line(failure)})" if failure and str(failure) else ""),
        package_dir,
    )


def _refuse_unsigned_paths(package_dir: Path, signed: ms_manifest.Manifest) -> None:
    """A signer may exclude paths from the signature (``--ignore-paths``); a package file
    under such a path would load without anyone having signed it."""
    for ignored in signed.serialization_type.get("ignore_paths", ()):
        relative = PurePosixPath(str(ignored))
        if (
            str(relative) in (SIGNATURE_FILE, ".")
            or relative.is_absolute()
            or ".." in relative.parts
        ):
            continue
        if (package_dir / relative).exists():
            raise untrusted(
                "unsigned-files",
                f"the signature of {package_dir} leaves {relative} unsigned (it was ignored "
                "when signing); re-sign the package without ignoring it",
                package_dir,
            )


def _require_same(
    package_dir: Path, signed: dict[str, str], actual: dict[str, str], method: str
) -> None:
    difference = digest_difference(signed, actual, shards=method == "shards")
    if difference:
        raise untrusted(
            "changed",
            f"{package_dir} changed since it was signed: {describe(difference)}",
            package_dir,
            **difference,
        )


def _which(candidates: Sequence[TrustedKey]) -> str:
    if len(candidates) == 1:
        return f"trusted key {candidates[0].key_id[:16]} ({candidates[0].label})"
    return f"any of the {len(candidates)} trusted keys"
