"""Signing keys and trust anchors: EC key pairs on disk, the public keys and pinned CA
certificates a verification accepts, each refused early with a message that says why."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mloop.errors import (
    Conflict,
    InvalidInput,
    NotFound,
)

SUPPORTED_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
}
_KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
PEM_MARK = "-----BEGIN"


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
    if curve not in CURVES:
        raise InvalidInput(f"curve {curve!r} is not supported; use one of {', '.join(CURVES)}")
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
    key = ec.generate_private_key(CURVES[curve])
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_new(private_path, private_pem, mode=0o600)
    try:
        _write_new(public_path, public_pem(key.public_key()), mode=0o644)
    except BaseException:
        private_path.unlink(missing_ok=True)
        raise
    return private_path, public_path


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """The library's key hint: SHA-256 of the SubjectPublicKeyInfo PEM, hex."""
    return hashlib.sha256(public_pem(public_key)).hexdigest()


def public_pem(public_key: ec.EllipticCurvePublicKey) -> bytes:
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


def load_private_key(path: Path, password: str | None) -> ec.EllipticCurvePrivateKey:
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
class TrustedKey:
    label: str
    public_key: ec.EllipticCurvePublicKey

    @property
    def key_id(self) -> str:
        return key_id(self.public_key)


def load_trusted_keys(sources: Sequence[Path | str]) -> list[TrustedKey]:
    """Public keys from PEM files, folders of them (``*.pub``, and ``*.pem`` holding a public
    key) or PEM text (a string starting with ``-----BEGIN``, as trust policies store them)."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    keys: list[TrustedKey] = []
    for number, source in enumerate(sources, start=1):
        if isinstance(source, str) and source.lstrip().startswith(PEM_MARK):
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


def _keys_in_folder(folder: Path) -> list[TrustedKey]:
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


def _parse_public_key(data: bytes, source: str) -> TrustedKey:
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        what = "a private key" if b"PRIVATE KEY" in data else "not a PEM public key"
        raise InvalidInput(
            f"trusted key {source} is {what}; give the signer's public key (the .pub file)"
        ) from None
    return TrustedKey(source, _check_curve(key, source))


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


# -- trust anchors ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustAnchors:
    """What a verification accepts: public keys (key mode) and, for certificate mode, the
    pinned CA certificates and the signer identities allowed to sign."""

    keys: tuple[TrustedKey, ...] = ()
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
        if isinstance(source, str) and source.lstrip().startswith(PEM_MARK):
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
