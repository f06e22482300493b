"""Certificate mode: the signing certificate must chain to the organisation's pinned CA
(never the system trust store, the library's fallback), be meant for code signing and
name an allowed identity."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

if TYPE_CHECKING:
    from model_signing import manifest as ms_manifest

from mloop.models._signing_bundle import (
    BAD_BUNDLE,
    SIGNATURE_FILE,
    SignatureInfo,
    first_line,
    signature_info,
    untrusted,
)
from mloop.models._signing_keys import TrustAnchors, key_id


def verify_certificate(
    package_dir: Path, signature: Any, anchors: TrustAnchors, scratch: Path
) -> tuple[ms_manifest.Manifest, SignatureInfo]:
    from model_signing._signing import sign_certificate
    from OpenSSL import crypto

    certificates = signature.bundle.verification_material.x509_certificate_chain.certificates
    try:
        leaf = x509.load_der_x509_certificate(certificates[0].raw_bytes)
    except ValueError as exc:
        raise untrusted(
            "malformed", f"the signing certificate does not parse: {exc}", package_dir
        ) from None
    subject = leaf.subject.rfc4514_string()
    if not anchors.ca_count:
        raise untrusted(
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
        raise untrusted(
            "untrusted-certificate",
            f"the signing certificate of {package_dir} ({subject}) does not chain to the "
            f"trusted CA: {exc}",
            package_dir,
        ) from None
    except InvalidSignature:
        raise untrusted(
            "invalid",
            f"the signature in {package_dir / SIGNATURE_FILE} does not verify with the key of "
            f"its certificate ({subject}): the bundle was altered",
            package_dir,
        ) from None
    except BAD_BUNDLE as exc:
        raise untrusted(
            "untrusted-certificate",
            f"{package_dir} is signed with a certificate that cannot sign models ({subject}): "
            f"{first_line(exc)}",
            package_dir,
        ) from None
    _require_code_signing(package_dir, leaf, subject)
    identities = _identities(leaf)
    if not anchors.identities.intersection(identities):
        raise untrusted(
            "untrusted-certificate",
            f"{package_dir} is signed by {', '.join(identities) or subject}, which is not an "
            f"allowed identity ({', '.join(sorted(anchors.identities))})",
            package_dir,
        )
    public = leaf.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)  # the verifier checked it is EC
    info = signature_info(package_dir, "certificate", key_id(public), "pinned CA", signed)
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
        raise untrusted(
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
