"""Certificate mode: the organisation's CA is pinned and the signer's identity checked.

Each test builds its own CA with ``cryptography``; nothing depends on the machine's store.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import certifi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from mloop.errors import InvalidInput, UntrustedSignature
from mloop.models import sign_package, verify_signature

NOW = dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Issued:
    key: Path
    certificate: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _certificate(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    *,
    ca: bool,
    valid: dt.timedelta,
) -> x509.CertificateBuilder:
    """A CA (signs certificates) or a leaf (signs data), valid from shortly before now."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(hours=1))
        .not_valid_after(NOW + valid)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    )


class CA:
    def __init__(self, folder: Path, name: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder, self.key = folder, ec.generate_private_key(ec.SECP256R1())
        self.name = _name(name)
        self.cert = _certificate(
            self.name, self.name, self.key.public_key(), ca=True, valid=dt.timedelta(days=365)
        ).sign(self.key, hashes.SHA256())
        self.pem = folder / "ca.pem"
        self.pem.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self, email: str, *, usage: x509.ObjectIdentifier = ExtendedKeyUsageOID.CODE_SIGNING
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            _certificate(
                _name(email.split("@")[0]),
                self.name,
                key.public_key(),
                ca=False,
                valid=dt.timedelta(days=30),
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        stem = email.replace("@", "_at_")
        cert_path = self.folder / f"{stem}.crt"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return Issued(_write_key(self.folder / f"{stem}.key", key), cert_path)


@pytest.fixture
def package(tmp_path: Path) -> Path:
    folder = tmp_path / "package"
    folder.mkdir()
    (folder / "model.json").write_text('{"trees": []}')
    return folder


@pytest.fixture
def org_ca(tmp_path: Path) -> CA:
    return CA(tmp_path / "org", "Example Org Model Signing CA")


def test_certificate_from_the_pinned_ca_verifies_and_names_the_signer(
    package: Path, org_ca: CA
) -> None:
    alice = org_ca.issue("alice@example.org")
    sign_package(package, alice.key, certificate=alice.certificate, certificate_chain=[org_ca.pem])
    info = verify_signature(
        package, trusted_ca=[org_ca.pem], allowed_identities=["alice@example.org"]
    )
    assert info.mode == "certificate"
    assert info.identities == ("alice@example.org", "alice")
    assert info.issuer == "CN=Example Org Model Signing CA"
    assert info.trusted_by == "pinned CA"
    assert list(info.digests) == ["model.json"]


def test_certificate_from_another_ca_is_refused_even_when_the_system_store_trusts_it(
    package: Path, org_ca: CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    public_ca = CA(tmp_path / "public", "Some Publicly Trusted CA")
    mallory = public_ca.issue("alice@example.org")  # same identity, wrong CA
    sign_package(
        package, mallory.key, certificate=mallory.certificate, certificate_chain=[public_ca.pem]
    )

    # Make the "system store" (certifi, the library's fallback) trust the other CA and
    # show the library alone would accept the signature.
    monkeypatch.setattr(certifi, "where", lambda: str(public_ca.pem))
    import model_signing

    model_signing.verifying.Config().use_certificate_verifier().verify(
        package, package / "mloop-model.sig"
    )

    with pytest.raises(UntrustedSignature) as caught:
        verify_signature(package, trusted_ca=[org_ca.pem], allowed_identities=["alice@example.org"])
    assert caught.value.details["reason"] == "untrusted-certificate"
    assert "does not chain to the trusted CA" in caught.value.message

    with pytest.raises(UntrustedSignature, match="no CA is trusted"):
        verify_signature(package, [generate_key_pub(tmp_path)])


def generate_key_pub(tmp_path: Path) -> Path:
    from mloop.models import generate_signing_key

    return generate_signing_key(tmp_path / "keys")[1]


def test_identity_outside_the_allowed_list_is_refused(package: Path, org_ca: CA) -> None:
    bob = org_ca.issue("bob@example.org")
    sign_package(package, bob.key, certificate=bob.certificate, certificate_chain=[org_ca.pem])
    with pytest.raises(UntrustedSignature, match=r"bob@example\.org.*not an allowed identity"):
        verify_signature(package, trusted_ca=[org_ca.pem], allowed_identities=["alice@example.org"])


def test_certificate_not_meant_for_code_signing_is_refused(package: Path, org_ca: CA) -> None:
    server = org_ca.issue("web@example.org", usage=ExtendedKeyUsageOID.SERVER_AUTH)
    sign_package(
        package, server.key, certificate=server.certificate, certificate_chain=[org_ca.pem]
    )
    with pytest.raises(UntrustedSignature, match="not for code signing"):
        verify_signature(package, trusted_ca=[org_ca.pem], allowed_identities=["web@example.org"])


def test_tampered_file_is_refused_in_certificate_mode(package: Path, org_ca: CA) -> None:
    alice = org_ca.issue("alice@example.org")
    sign_package(package, alice.key, certificate=alice.certificate, certificate_chain=[org_ca.pem])
    (package / "model.json").write_text('{"trees": [1]}')
    with pytest.raises(UntrustedSignature) as caught:
        verify_signature(package, trusted_ca=[org_ca.pem], allowed_identities=["alice@example.org"])
    assert caught.value.details["modified"] == ["model.json"]


def test_pinning_needs_identities_and_a_real_ca(package: Path, org_ca: CA) -> None:
    alice = org_ca.issue("alice@example.org")
    with pytest.raises(InvalidInput, match="identities"):
        verify_signature(package, trusted_ca=[org_ca.pem])
    with pytest.raises(InvalidInput, match="not a CA certificate"):
        verify_signature(package, trusted_ca=[alice.certificate], allowed_identities=["x"])


def test_key_that_does_not_match_the_certificate_is_refused(
    package: Path, org_ca: CA, tmp_path: Path
) -> None:
    alice = org_ca.issue("alice@example.org")
    other_key = _write_key(tmp_path / "other.key", ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(InvalidInput, match="does not match"):
        sign_package(
            package, other_key, certificate=alice.certificate, certificate_chain=[org_ca.pem]
        )
    with pytest.raises(InvalidInput, match="--chain"):
        sign_package(package, alice.key, certificate=alice.certificate)


def test_certificate_mode_on_the_command_line(
    package: Path, org_ca: CA, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.unit.cli.helpers import run_cli

    alice = org_ca.issue("alice@example.org")
    sign = ["models", "sign", str(package), "--key", str(alice.key)]
    code, _, err = run_cli(
        capsys, *sign, "--certificate", str(alice.certificate), "--chain", str(org_ca.pem)
    )
    assert code == 0, err
    verify = ["models", "verify", str(package), "--ca", str(org_ca.pem)]
    code, out, err = run_cli(capsys, *verify, "--identity", "alice@example.org")
    assert code == 0, err
    assert "CN=alice" in out
    code, _, err = run_cli(capsys, *verify, "--identity", "bob@example.org")
    assert code == 1
    assert "not an allowed identity" in err
