"""Signing model packages with the OpenSSF ``model_signing`` library (M0013, M0014).

The signature of package folder ``P`` is the Sigstore bundle ``P/mloop-model.sig``, exactly
what ``model_signing sign key P --signature P/mloop-model.sig`` writes: an in-toto statement
listing every file's digest, in a DSSE envelope, signed with an EC key (or a certificate).
Either tool verifies the other's signatures.

We drive the library's own hasher, signer and verifier rather than its ``Config.sign`` /
``Config.verify`` wrappers for one reason: those wrappers hide the manifest they build, and
mloop needs it — to refuse signing a package that no longer matches ``mloop-model.json``, to
name the file that changed, and to check a signature against digests a load has already
verified (see :func:`verify_signed_digests`) without reading the model a second time.
The files are hashed once, by the library's parallel hasher.

Certificate mode never falls back to the system trust store (the library's default when no
chain is given): the caller pins the organisation's CA and names the identities it accepts.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mloop.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    TamperedPackage,
    UntrustedSignature,
)

if TYPE_CHECKING:
    from model_signing import manifest as ms_manifest

SIGNATURE_FILE = "mloop-model.sig"
MANIFEST_FILE = "mloop-model.json"
SUPPORTED_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
}
_KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_PEM_MARK = "-----BEGIN"
#: what the library raises on a bundle or statement it cannot make sense of
_BAD_BUNDLE = (ValueError, KeyError, IndexError, TypeError, AttributeError, UnicodeError)

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


# -- keys -------------------------------------------------------------------------------------


def generate_signing_key(
    directory: str | os.PathLike[str], *, name: str = "mloop-signing", curve: str = "P-256"
) -> tuple[Path, Path]:
    """Create ``NAME.key`` (private, mode 0600) and ``NAME.pub`` in ``directory``.

    An EC key, because that is what ``model_signing``'s key mode accepts (P-256, P-384 or
    P-521; Ed25519 and RSA are refused by the library). Existing keys are never overwritten:
    losing a signing key silently is worse than an error.
    """
    if not _KEY_NAME.match(name):
        raise InvalidInput(
            f"key name {name!r} is not valid; use letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit)"
        )
    if curve not in _CURVES:
        raise InvalidInput(f"curve {curve!r} is not supported; use one of {', '.join(_CURVES)}")
    folder = Path(directory).expanduser()
    if folder.exists() and not folder.is_dir():
        raise InvalidInput(f"{folder} is not a folder; give a folder to hold the key pair")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    private_path, public_path = folder / f"{name}.key", folder / f"{name}.pub"
    for path in (private_path, public_path):
        if path.exists():
            raise Conflict(
                f"{path} already exists; mloop never overwrites a key — choose another "
                "folder or --name"
            )
    key = ec.generate_private_key(_CURVES[curve])
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_new(private_path, private_pem, mode=0o600)
    try:
        _write_new(public_path, _public_pem(key.public_key()), mode=0o644)
    except BaseException:
        private_path.unlink(missing_ok=True)
        raise
    return private_path, public_path


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """The library's key hint: SHA-256 of the SubjectPublicKeyInfo PEM, hex."""
    return hashlib.sha256(_public_pem(public_key)).hexdigest()


def _public_pem(public_key: ec.EllipticCurvePublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _check_curve(key: object, source: str) -> ec.EllipticCurvePublicKey:
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    if not isinstance(public, ec.EllipticCurvePublicKey):
        kind = re.sub(r"P(rivate|ublic)Key$", "", type(public).__name__.lstrip("_"))
        raise InvalidInput(
            f"{source} is not an EC key ({kind}); model signing uses EC keys on "
            f"{', '.join(SUPPORTED_CURVES.values())} — create one with `mloop keys generate DIR`"
        )
    if public.curve.name not in SUPPORTED_CURVES:
        raise InvalidInput(
            f"{source} is an EC key on {public.curve.name}; model signing supports "
            f"{', '.join(SUPPORTED_CURVES.values())}"
        )
    return public


def _load_private_key(path: Path, password: str | None) -> ec.EllipticCurvePrivateKey:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"signing key {path} does not exist") from None
    except IsADirectoryError:
        raise InvalidInput(f"signing key {path} is a folder; give the private key file") from None
    try:
        key = serialization.load_pem_private_key(
            data, password.encode() if password is not None else None
        )
    except TypeError as exc:
        hint = "give its password" if password is None else "it takes no password"
        raise InvalidInput(f"signing key {path} cannot be opened: {exc}; {hint}") from None
    except (ValueError, UnsupportedAlgorithm):
        if b"PUBLIC KEY" in data:
            raise InvalidInput(
                f"{path} is a public key; sign with the private key (the .key file)"
            ) from None
        raise InvalidInput(
            f"{path} is not a PEM private key (or the password is wrong); "
            "create a key pair with `mloop keys generate DIR`"
        ) from None
    _check_curve(key, str(path))
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


@dataclass(frozen=True)
class _TrustedKey:
    label: str
    public_key: ec.EllipticCurvePublicKey

    @property
    def key_id(self) -> str:
        return key_id(self.public_key)


def load_trusted_keys(sources: Sequence[Path | str]) -> list[_TrustedKey]:
    """Public keys from PEM files, folders of them (``*.pub``, and ``*.pem`` holding a public
    key) or PEM text (a string starting with ``-----BEGIN``, as trust policies store them)."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    keys: list[_TrustedKey] = []
    for number, source in enumerate(sources, start=1):
        if isinstance(source, str) and source.lstrip().startswith(_PEM_MARK):
            keys.append(_parse_public_key(source.encode(), f"trusted key #{number}"))
            continue
        path = Path(source).expanduser()
        if path.is_dir():
            keys.extend(_keys_in_folder(path))
        elif path.is_file():
            keys.append(_parse_public_key(path.read_bytes(), str(path)))
        else:
            raise NotFound(f"trusted key {path} does not exist")
    return keys


def _keys_in_folder(folder: Path) -> list[_TrustedKey]:
    found = []
    for path in sorted(folder.iterdir()):
        if not path.is_file():
            continue
        data = path.read_bytes() if path.suffix in (".pub", ".pem") else b""
        if path.suffix == ".pub" or b"PUBLIC KEY-----" in data:
            found.append(_parse_public_key(data, str(path)))
    if not found:
        raise InvalidInput(
            f"{folder} holds no public keys (*.pub, or *.pem with a PUBLIC KEY block); "
            "put the signers' public keys there"
        )
    return found


def _parse_public_key(data: bytes, source: str) -> _TrustedKey:
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        what = "a private key" if b"PRIVATE KEY" in data else "not a PEM public key"
        raise InvalidInput(
            f"trusted key {source} is {what}; give the signer's public key (the .pub file)"
        ) from None
    return _TrustedKey(source, _check_curve(key, source))


# -- trust anchors ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustAnchors:
    """What a verification accepts: public keys (key mode) and, for certificate mode, the
    pinned CA certificates and the signer identities allowed to sign."""

    keys: tuple[_TrustedKey, ...] = ()
    ca_pem: bytes = b""
    ca_count: int = 0
    identities: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def load(
        cls,
        trusted_public_keys: Sequence[Path | str] = (),
        trusted_ca: Sequence[Path | str] = (),
        allowed_identities: Sequence[str] = (),
    ) -> TrustAnchors:
        keys = tuple(load_trusted_keys(trusted_public_keys))
        if isinstance(trusted_ca, (str, Path)):
            trusted_ca = [trusted_ca]
        if isinstance(allowed_identities, str):
            allowed_identities = [allowed_identities]
        ca_pem, ca_count = _load_cas(trusted_ca)
        identities = frozenset(i.strip() for i in allowed_identities if i.strip())
        if ca_count and not identities:
            raise InvalidInput(
                "certificate mode needs the signer identities to accept (--identity, an "
                "e-mail, URI, DNS name or common name in the signing certificate): any "
                "certificate the CA ever issued would pass otherwise"
            )
        if not keys and not ca_count:
            raise InvalidInput(
                "no trusted keys given; pass the signers' public keys (--trusted-keys DIR) "
                "or the organisation's CA (--ca FILE)"
            )
        return cls(keys, ca_pem, ca_count, identities)


def _load_cas(sources: Sequence[Path | str]) -> tuple[bytes, int]:
    pems: list[bytes] = []
    for source in sources:
        if isinstance(source, str) and source.lstrip().startswith(_PEM_MARK):
            data, label = source.encode(), "trusted CA"
        else:
            path = Path(source).expanduser()
            if not path.is_file():
                raise NotFound(f"CA certificate file {path} does not exist")
            data, label = path.read_bytes(), str(path)
        try:
            certificates = x509.load_pem_x509_certificates(data)
        except ValueError:
            raise InvalidInput(
                f"{label} holds no PEM certificate; give the CA's PEM file"
            ) from None
        for certificate in certificates:
            if not _is_ca(certificate):
                raise InvalidInput(
                    f"{label} holds {certificate.subject.rfc4514_string()}, which is not a "
                    "CA certificate; pin the CA that issues signing certificates"
                )
            pems.append(certificate.public_bytes(serialization.Encoding.PEM))
    return b"".join(pems), len(pems)


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


# -- signing ----------------------------------------------------------------------------------


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
    _load_private_key(key_path, password)  # clear errors before the library sees the key
    package_dir, uri = _local_package(path_or_uri)
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
    signed = _hash(package_dir, _hashing_config("files", "sha256", None))
    _refuse_if_tampered(package_dir, signed)
    signature = signer.sign(signing.Payload(signed))
    with tempfile.TemporaryDirectory(prefix="mloop-sign-") as scratch:
        written = Path(scratch) / SIGNATURE_FILE
        signature.write(written)
        data = written.read_bytes()
    target = package_dir / SIGNATURE_FILE
    _write_atomic(target, data)
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
    difference = _difference(listed, actual)
    if difference:
        raise TamperedPackage(
            f"refusing to sign {package_dir}: it no longer matches its {MANIFEST_FILE} "
            f"({_describe(difference)}); re-package the model",
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
        from mloop.tracking import MloopClient

        MloopClient().log_artifact(run_id, signature_file, artifact_path=artifact_path)
    elif uri.startswith("models:/"):
        from mloop.registry import resolve

        name, ref = _split_models_uri(uri)
        source = str(resolve(name, ref).source)
        if source.startswith(("runs:/", "models:/")):
            _store_signature_with(source, signature_file)
        else:
            local = Path(source.removeprefix("file://")).expanduser()
            if local.is_dir() and local.resolve() != signature_file.parent.resolve():
                _write_atomic(local / SIGNATURE_FILE, signature_file.read_bytes())


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


# -- verifying --------------------------------------------------------------------------------


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
    package_dir, _ = _local_package(path_or_uri)
    return verify_with_anchors(package_dir, anchors)


def verify_with_anchors(package_dir: Path, anchors: TrustAnchors) -> SignatureInfo:
    """:func:`verify_signature` for a local folder and already-loaded anchors."""
    signed, info = _authenticate(package_dir, anchors)
    params = signed.serialization_type
    config = _hashing_config(params["method"], params["hash_type"], params.get("shard_size"))
    try:
        actual = _hash(package_dir, config)
    except TamperedPackage as exc:
        raise _untrusted("changed", exc.message, package_dir) from None
    _require_same(package_dir, _digests(signed), _digests(actual), params["method"])
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
    _require_same(package_dir, _digests(signed), dict(digests), "files")
    return info


def _authenticate(
    package_dir: Path, anchors: TrustAnchors
) -> tuple[ms_manifest.Manifest, SignatureInfo]:
    """Check the bundle's signature and trust chain (no model bytes are read) and return
    the manifest it vouches for."""
    from model_signing._signing import sign_sigstore_pb

    signature_path = package_dir / SIGNATURE_FILE
    if not signature_path.is_file():
        raise _untrusted(
            "missing",
            f"{package_dir} is not signed: it has no {SIGNATURE_FILE}; sign it with "
            f"`mloop models sign {package_dir} --key KEY`",
            package_dir,
        )
    try:
        signature = sign_sigstore_pb.Signature.read(signature_path)
        material = signature.bundle.verification_material
    except _BAD_BUNDLE as exc:
        raise _untrusted(
            "malformed",
            f"{signature_path} is not a model signature (a Sigstore bundle): {_first_line(exc)}",
            package_dir,
        ) from None
    chain = material.x509_certificate_chain
    with tempfile.TemporaryDirectory(prefix="mloop-verify-") as scratch:
        if chain is not None and chain.certificates:
            signed, info = _verify_certificate(package_dir, signature, anchors, Path(scratch))
        elif material.public_key is not None:
            signed, info = _verify_key(package_dir, signature, anchors, Path(scratch))
        else:
            raise _untrusted(
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
        raise _untrusted(
            "untrusted-key",
            f"{package_dir} is signed by key {hint[:16]}…, which is not trusted "
            f"(trusted: {trusted})",
            package_dir,
            key_id=hint,
        )
    failure: Exception | None = None
    for number, candidate in enumerate(candidates):
        key_file = scratch / f"trusted-{number}.pub"
        key_file.write_bytes(_public_pem(candidate.public_key))
        # Bundles from before the key hint existed make the library print a warning on
        # stdout; keep stdout for mloop's own output (JSON included).
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                signed = sign_ec_key.Verifier(key_file).verify(signature)
            except (InvalidSignature, *_BAD_BUNDLE) as exc:
                failure = exc
                continue
        return signed, _info(package_dir, "key", candidate.key_id, candidate.label, signed)
    raise _untrusted(
        "invalid",
        f"the signature in {package_dir / SIGNATURE_FILE} does not verify with "
        f"{_which(candidates)}: the bundle was altered or made by another key"
        + (f" ({_first_line(failure)})" if failure and str(failure) else ""),
        package_dir,
    )


def _verify_certificate(
    package_dir: Path, signature: Any, anchors: TrustAnchors, scratch: Path
) -> tuple[ms_manifest.Manifest, SignatureInfo]:
    from model_signing._signing import sign_certificate
    from OpenSSL import crypto

    certificates = signature.bundle.verification_material.x509_certificate_chain.certificates
    try:
        leaf = x509.load_der_x509_certificate(certificates[0].raw_bytes)
    except ValueError as exc:
        raise _untrusted(
            "malformed", f"the signing certificate does not parse: {exc}", package_dir
        ) from None
    subject = leaf.subject.rfc4514_string()
    if not anchors.ca_count:
        raise _untrusted(
            "untrusted-certificate",
            f"{package_dir} is signed with a certificate ({subject}) but no CA is trusted; "
            "pin the organisation's CA (--ca FILE)",
            package_dir,
        )
    ca_file = scratch / "trusted-ca.pem"
    ca_file.write_bytes(anchors.ca_pem)
    # The chain is always non-empty here: an empty one makes the library trust certifi's
    # public roots, which would let any publicly trusted certificate sign models.
    verifier = sign_certificate.Verifier([ca_file])
    try:
        signed = verifier.verify(signature)
    except crypto.X509StoreContextError as exc:
        raise _untrusted(
            "untrusted-certificate",
            f"the signing certificate of {package_dir} ({subject}) does not chain to the "
            f"trusted CA: {exc}",
            package_dir,
        ) from None
    except InvalidSignature:
        raise _untrusted(
            "invalid",
            f"the signature in {package_dir / SIGNATURE_FILE} does not verify with the key of "
            f"its certificate ({subject}): the bundle was altered",
            package_dir,
        ) from None
    except _BAD_BUNDLE as exc:
        raise _untrusted(
            "untrusted-certificate",
            f"{package_dir} is signed with a certificate that cannot sign models ({subject}): "
            f"{_first_line(exc)}",
            package_dir,
        ) from None
    _require_code_signing(package_dir, leaf, subject)
    identities = _identities(leaf)
    if not anchors.identities.intersection(identities):
        raise _untrusted(
            "untrusted-certificate",
            f"{package_dir} is signed by {', '.join(identities) or subject}, which is not an "
            f"allowed identity ({', '.join(sorted(anchors.identities))})",
            package_dir,
        )
    public = leaf.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)  # the verifier checked it is EC
    info = _info(package_dir, "certificate", key_id(public), "pinned CA", signed)
    return signed, replace(
        info, subject=subject, identities=identities, issuer=leaf.issuer.rfc4514_string()
    )


def _require_code_signing(package_dir: Path, leaf: x509.Certificate, subject: str) -> None:
    """The library accepts any certificate with the digitalSignature key usage; a TLS
    server certificate from the same CA must not sign models, so an extended key usage,
    when present, has to include code signing."""
    try:
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return
    if ExtendedKeyUsageOID.CODE_SIGNING not in usages:
        raise _untrusted(
            "untrusted-certificate",
            f"the signing certificate of {package_dir} ({subject}) is not for code signing "
            "(its extended key usage lacks codeSigning)",
            package_dir,
        )


def _identities(certificate: x509.Certificate) -> tuple[str, ...]:
    """Identities a certificate vouches for: SAN e-mails, URIs and DNS names, then the
    subject's common name."""
    found: list[str] = []
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        pass
    else:
        for kind in (x509.RFC822Name, x509.UniformResourceIdentifier, x509.DNSName):
            found.extend(str(v) for v in names.get_values_for_type(kind))
    for attribute in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        found.append(str(attribute.value))
    return tuple(dict.fromkeys(found))


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
            raise _untrusted(
                "unsigned-files",
                f"the signature of {package_dir} leaves {relative} unsigned (it was ignored "
                "when signing); re-sign the package without ignoring it",
                package_dir,
            )


def _require_same(
    package_dir: Path, signed: dict[str, str], actual: dict[str, str], method: str
) -> None:
    difference = _difference(signed, actual, shards=method == "shards")
    if difference:
        raise _untrusted(
            "changed",
            f"{package_dir} changed since it was signed: {_describe(difference)}",
            package_dir,
            **difference,
        )


def _difference(
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


def _describe(difference: Mapping[str, list[str]], limit: int = 5) -> str:
    parts = []
    for kind, files in difference.items():
        shown = ", ".join(files[:limit]) + (
            f" and {len(files) - limit} more" if len(files) > limit else ""
        )
        parts.append(f"{kind} {shown}")
    return "; ".join(parts)


def _info(
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
        digests=_digests(signed),
        root_digest=root.hexdigest(),
    )


def _which(candidates: Sequence[_TrustedKey]) -> str:
    if len(candidates) == 1:
        return f"trusted key {candidates[0].key_id[:16]} ({candidates[0].label})"
    return f"any of the {len(candidates)} trusted keys"


def _untrusted(reason: str, message: str, package_dir: Path, **details: Any) -> UntrustedSignature:
    return UntrustedSignature(
        message, details={"reason": reason, "package": str(package_dir), **details}
    )


def _first_line(exc: BaseException | None) -> str:
    text = str(exc).strip() if exc is not None else ""
    return text.splitlines()[0] if text else type(exc).__name__


# -- hashing and files ------------------------------------------------------------------------


def _hashing_config(method: str, hash_type: str, shard_size: float | None) -> Any:
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


def _hash(package_dir: Path, config: Any) -> ms_manifest.Manifest:
    try:
        manifest: ms_manifest.Manifest = config.hash(package_dir)
        return manifest
    except ValueError as exc:  # a symlink, a socket, a file that vanished mid-walk
        raise TamperedPackage(
            f"{package_dir} cannot be hashed: {_first_line(exc)}; a package holds regular "
            "files only"
        ) from None


def _digests(manifest: Any) -> dict[str, str]:
    return {d.identifier: d.digest.digest_hex for d in manifest.resource_descriptors()}


def _local_package(path_or_uri: str | os.PathLike[str]) -> tuple[Path, str | None]:
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


def _write_new(path: Path, data: bytes, *, mode: int) -> None:
    """Write ``path`` whole or not at all, and never over an existing file."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            raise Conflict(f"{path} already exists; mloop never overwrites a key") from None
    finally:
        os.unlink(temporary)


def _write_atomic(path: Path, data: bytes) -> None:
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
