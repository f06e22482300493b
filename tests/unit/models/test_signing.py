"""Signing and verifying package folders in key mode: round trip and every refusal."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from mloop.errors import Conflict, InvalidInput, NotFound, TamperedPackage, UntrustedSignature
from mloop.models import SignatureInfo, generate_signing_key, sign_package, verify_signature
from mloop.models._signing import TrustAnchors, verify_signed_digests

FILES = {
    "model.skops": b"\x00weights" * 1000,
    "extras/vocab.txt": b"a\nb\nc\n",
    "extras/deep/config.json": b'{"n": 3}',
}


def make_package(folder: Path, files: dict[str, bytes] = FILES) -> Path:
    """A package as part B writes it: the files and a manifest listing their SHA-256."""
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    manifest = {
        "format_version": 1,
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
    }
    (folder / "mloop-model.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture
def package(tmp_path: Path) -> Path:
    return make_package(tmp_path / "package")


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return generate_signing_key(tmp_path / "keys")


def refusal(package: Path, trusted: list[Path | str]) -> UntrustedSignature:
    with pytest.raises(UntrustedSignature) as caught:
        verify_signature(package, trusted)
    return caught.value


# -- keys -------------------------------------------------------------------------------------


def test_generated_key_pair_is_an_ec_pem_pair_with_a_private_private_key(tmp_path: Path) -> None:
    private_path, public_path = generate_signing_key(tmp_path / "new" / "keys", curve="P-384")
    assert stat.S_IMODE(private_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(private_path.parent.stat().st_mode) & 0o077 == 0
    private = serialization.load_pem_private_key(private_path.read_bytes(), None)
    public = serialization.load_pem_public_key(public_path.read_bytes())
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert private.curve.name == "secp384r1"
    assert private.public_key() == public
    assert [p.name for p in sorted(private_path.parent.iterdir())] == [
        "mloop-signing.key",
        "mloop-signing.pub",
    ]  # no temp files left behind


def test_existing_keys_are_never_overwritten(keys: tuple[Path, Path]) -> None:
    before = keys[0].read_bytes()
    with pytest.raises(Conflict, match="already exists"):
        generate_signing_key(keys[0].parent)
    assert keys[0].read_bytes() == before
    other = generate_signing_key(keys[0].parent, name="second")
    assert other[0].name == "second.key"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"name": "../escape"}, "key name"), ({"curve": "secp256k1"}, "curve")],
)
def test_bad_key_options_are_refused(tmp_path: Path, kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        generate_signing_key(tmp_path / "keys", **kwargs)


# -- round trip -------------------------------------------------------------------------------


def test_sign_then_verify_reports_the_signer_and_every_digest(
    package: Path, keys: tuple[Path, Path]
) -> None:
    signature = sign_package(package, keys[0])
    assert signature == package / "mloop-model.sig"
    bundle = json.loads(signature.read_text())
    assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"

    info = verify_signature(package, [keys[1]])
    assert isinstance(info, SignatureInfo)
    assert info.mode == "key"
    assert info.trusted_by == str(keys[1])
    public_pem = keys[1].read_bytes()
    assert info.key_id == hashlib.sha256(public_pem).hexdigest()
    expected = {name: hashlib.sha256(data).hexdigest() for name, data in FILES.items()}
    expected["mloop-model.json"] = hashlib.sha256(
        (package / "mloop-model.json").read_bytes()
    ).hexdigest()
    assert dict(info.digests) == expected
    assert "mloop-model.sig" not in info.digests
    assert info.to_dict()["digests"] == expected
    assert [p.name for p in package.iterdir() if p.name.startswith(".")] == []


def test_trusted_keys_may_be_a_folder_a_file_or_pem_text(
    package: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    sign_package(package, keys[0])
    other = generate_signing_key(tmp_path / "others", name="someone-else")
    assert verify_signature(package, [keys[1].parent]).trusted_by == str(keys[1])
    assert verify_signature(package, [other[1], keys[1]]).trusted_by == str(keys[1])
    pem_text = keys[1].read_text()
    assert verify_signature(package, [other[1], pem_text]).trusted_by == "trusted key #2"


def test_re_signing_replaces_the_signature(
    package: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    sign_package(package, keys[0])
    other = generate_signing_key(tmp_path / "other")
    sign_package(package, other[0])
    assert verify_signature(package, [keys[1], other[1]]).trusted_by == str(other[1])
    assert refusal(package, [keys[1]]).details["reason"] == "untrusted-key"


def test_any_folder_can_be_signed_not_only_mloop_packages(
    tmp_path: Path, keys: tuple[Path, Path]
) -> None:
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"1234")
    sign_package(folder, keys[0])
    assert list(verify_signature(folder, [keys[1]]).digests) == ["weights.bin"]


# -- refusals ---------------------------------------------------------------------------------


def test_unsigned_package_is_refused(package: Path, keys: tuple[Path, Path]) -> None:
    error = refusal(package, [keys[1]])
    assert error.details["reason"] == "missing"
    assert "not signed" in error.message
    assert "mloop models sign" in error.message


def test_modified_file_is_named(package: Path, keys: tuple[Path, Path]) -> None:
    sign_package(package, keys[0])
    (package / "extras/vocab.txt").write_bytes(b"a\nb\nX\n")
    error = refusal(package, [keys[1]])
    assert error.details["reason"] == "changed"
    assert error.details["modified"] == ["extras/vocab.txt"]
    assert "changed since it was signed" in error.message
    assert "extras/vocab.txt" in error.message


def test_added_file_is_named(package: Path, keys: tuple[Path, Path]) -> None:
    sign_package(package, keys[0])
    (package / "extras" / "payload.pkl").write_bytes(b"evil")
    error = refusal(package, [keys[1]])
    assert error.details["reason"] == "changed"
    assert error.details["added"] == ["extras/payload.pkl"]
    assert "modified" not in error.details


def test_added_git_file_is_not_ignored(package: Path, keys: tuple[Path, Path]) -> None:
    """The library ignores git paths by default; in a package nothing goes unsigned."""
    sign_package(package, keys[0])
    (package / ".gitattributes").write_text("* filter=evil")
    assert refusal(package, [keys[1]]).details["added"] == [".gitattributes"]


def test_removed_file_is_named(package: Path, keys: tuple[Path, Path]) -> None:
    sign_package(package, keys[0])
    (package / "model.skops").unlink()
    error = refusal(package, [keys[1]])
    assert error.details["removed"] == ["model.skops"]


def test_signature_by_another_key_is_refused(
    package: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    stranger = generate_signing_key(tmp_path / "stranger")
    sign_package(package, stranger[0])
    error = refusal(package, [keys[1]])
    assert error.details["reason"] == "untrusted-key"
    assert "not trusted" in error.message


def test_swapping_the_key_hint_does_not_help_a_forger(
    package: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    """A bundle signed by a stranger that claims to be by the trusted key fails the
    cryptographic check."""
    stranger = generate_signing_key(tmp_path / "stranger")
    sign_package(package, stranger[0])
    signature = package / "mloop-model.sig"
    bundle = json.loads(signature.read_text())
    bundle["verificationMaterial"]["publicKey"]["hint"] = hashlib.sha256(
        keys[1].read_bytes()
    ).hexdigest()
    signature.write_text(json.dumps(bundle))
    error = refusal(package, [keys[1]])
    assert error.details["reason"] == "invalid"
    assert "does not verify" in error.message


def test_edited_signed_statement_is_refused(package: Path, keys: tuple[Path, Path]) -> None:
    """Rewriting the digests inside the bundle (to match a tampered file) breaks the
    signature over them."""
    import base64

    sign_package(package, keys[0])
    signature = package / "mloop-model.sig"
    bundle = json.loads(signature.read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    statement["predicate"]["resources"][0]["digest"] = "0" * 64
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    signature.write_text(json.dumps(bundle))
    assert refusal(package, [keys[1]]).details["reason"] == "invalid"


@pytest.mark.parametrize("content", ["", "not json", "{}", '{"mediaType": 1}'])
def test_malformed_signature_file_is_refused(
    package: Path, keys: tuple[Path, Path], content: str
) -> None:
    (package / "mloop-model.sig").write_text(content)
    error = refusal(package, [keys[1]])
    assert error.details["reason"] == "malformed"
    assert "not a model signature" in error.message


def test_paths_the_signer_left_out_must_not_exist(package: Path, keys: tuple[Path, Path]) -> None:
    """A signature made with --ignore-paths does not vouch for those files."""
    import model_signing

    model_signing.signing.Config().use_elliptic_key_signer(private_key=keys[0]).set_hashing_config(
        model_signing.hashing.Config().set_ignored_paths(
            paths=["mloop-model.sig", "extras"], ignore_git_paths=False
        )
    ).sign(package, package / "mloop-model.sig")
    error = refusal(package, [keys[1]])
    assert error.details["reason"] == "unsigned-files"
    assert "extras" in error.message


def test_symlink_in_package_is_refused(
    package: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    sign_package(package, keys[0])
    (tmp_path / "outside").write_bytes(b"x")
    os.symlink(tmp_path / "outside", package / "link")
    error = refusal(package, [keys[1]])
    assert error.details["reason"] == "changed"
    assert "symlink" in error.message


def test_signing_a_package_that_no_longer_matches_its_manifest_is_refused(
    package: Path, keys: tuple[Path, Path]
) -> None:
    (package / "model.skops").write_bytes(b"swapped")
    with pytest.raises(TamperedPackage, match=r"model\.skops"):
        sign_package(package, keys[0])
    assert not (package / "mloop-model.sig").exists()


# -- bad input --------------------------------------------------------------------------------


def test_non_ec_keys_are_refused_with_the_supported_curves(package: Path, tmp_path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    private = tmp_path / "ed.key"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = tmp_path / "ed.pub"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    with pytest.raises(InvalidInput, match=r"not an EC key \(Ed25519\).*P-256"):
        sign_package(package, private)
    with pytest.raises(InvalidInput, match=r"not an EC key \(Ed25519\)"):
        verify_signature(package, [public])


def test_keys_the_wrong_way_round_are_explained(package: Path, keys: tuple[Path, Path]) -> None:
    with pytest.raises(InvalidInput, match="is a public key"):
        sign_package(package, keys[1])
    with pytest.raises(InvalidInput, match="is a private key"):
        verify_signature(package, [keys[0]])


def test_encrypted_key_needs_its_password(package: Path, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    private = tmp_path / "locked.key"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    with pytest.raises(InvalidInput, match="give its password"):
        sign_package(package, private)
    sign_package(package, private, password="s3cret")
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert verify_signature(package, [public.decode()]).mode == "key"


def test_missing_things_are_bad_input(
    package: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    with pytest.raises(NotFound):
        sign_package(tmp_path / "nowhere", keys[0])
    with pytest.raises(NotFound):
        sign_package(package, tmp_path / "no.key")
    with pytest.raises(NotFound):
        verify_signature(package, [tmp_path / "no.pub"])
    with pytest.raises(InvalidInput, match="no trusted keys"):
        verify_signature(package, [])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidInput, match="holds no public keys"):
        verify_signature(package, [empty])
    with pytest.raises(InvalidInput, match="not a folder"):
        sign_package(package / "model.skops", keys[0])


# -- checking against digests a load already verified ----------------------------------------


def _verified(package: Path) -> dict[str, str]:
    manifest_bytes = (package / "mloop-model.json").read_bytes()
    digests = dict(json.loads(manifest_bytes)["files"])
    digests["mloop-model.json"] = hashlib.sha256(manifest_bytes).hexdigest()
    return digests


def test_signed_digests_match_the_manifest_without_rehashing(
    package: Path, keys: tuple[Path, Path]
) -> None:
    sign_package(package, keys[0])
    anchors = TrustAnchors.load([keys[1]])
    assert verify_signed_digests(package, anchors, _verified(package)).key_id
    other = dict(_verified(package), **{"model.skops": "0" * 64})
    with pytest.raises(UntrustedSignature) as caught:
        verify_signed_digests(package, anchors, other)
    assert caught.value.details["modified"] == ["model.skops"]
    with pytest.raises(UntrustedSignature) as caught:
        verify_signed_digests(package, anchors, {**_verified(package), "new.bin": "1" * 64})
    assert caught.value.details["added"] == ["new.bin"]
