"""Trust policies at load time (``enforce``) and at promotion (``promotion_problems``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from mloop.errors import UntrustedSignature
from mloop.models import generate_signing_key, sign_package
from mloop.models._trust import enforce, promotion_problems
from mloop.registry import TrustPolicy, create_registered_model, set_trust_policy

FILES = {"model.skops": b"weights" * 100, "params.json": b'{"C": 1.0}'}


def Policy(**fields: Any) -> TrustPolicy:
    """A policy requiring a signature unless told otherwise."""
    return TrustPolicy(**{"require_signature": True, **fields})


@pytest.fixture
def package(tmp_path: Path) -> Path:
    folder = tmp_path / "package"
    folder.mkdir()
    for name, data in FILES.items():
        (folder / name).write_bytes(data)
    files = {name: hashlib.sha256(data).hexdigest() for name, data in FILES.items()}
    (folder / "mloop-model.json").write_text(json.dumps({"format_version": 1, "files": files}))
    return folder


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return generate_signing_key(tmp_path / "keys")


def manifest_of(package: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((package / "mloop-model.json").read_text())
    return document


# -- promotion --------------------------------------------------------------------------------


def test_promotion_of_a_package_signed_by_a_trusted_key_has_no_problems(
    package: Path, keys: tuple[Path, Path]
) -> None:
    sign_package(package, keys[0])
    assert promotion_problems(package, Policy(trusted_keys=(keys[1].read_text(),))) == []


def test_promotion_problems_name_the_signature_problem(
    package: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    policy = Policy(trusted_keys=(keys[1].read_text(),))
    [problem] = promotion_problems(package, policy)
    assert problem.startswith("signature: ")
    assert "not signed" in problem

    stranger = generate_signing_key(tmp_path / "stranger")
    sign_package(package, stranger[0])
    [problem] = promotion_problems(package, policy)
    assert "not trusted" in problem

    sign_package(package, keys[0])
    (package / "params.json").write_bytes(b'{"C": 9.0}')
    [problem] = promotion_problems(package, policy)
    assert "params.json" in problem


def test_policy_without_keys_cannot_be_satisfied(package: Path, keys: tuple[Path, Path]) -> None:
    sign_package(package, keys[0])
    assert promotion_problems(package, Policy()) == [
        "the trust policy requires a signature but lists no trusted keys"
    ]


def test_policy_without_requirements_lets_anything_through(package: Path) -> None:
    assert promotion_problems(package, Policy(require_signature=False)) == []


def test_promotion_requires_a_clean_scan(
    package: Path, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    import pickle

    models = pytest.importorskip("mloop.models")
    if not hasattr(models, "scan_path"):
        pytest.skip("mloop.models.scan_path (the scanner) has not landed yet")
    policy = Policy(require_signature=False, require_clean_scan=True)
    assert promotion_problems(package, policy) == []

    class Evil:
        def __reduce__(self) -> tuple[Any, ...]:
            import os

            return (os.system, ("true",))

    (package / "extra.pkl").write_bytes(pickle.dumps(Evil()))
    problems = promotion_problems(package, policy)
    assert problems
    assert all(p.startswith("scan: ") for p in problems)
    assert any("extra.pkl" in p for p in problems)


# -- loading ----------------------------------------------------------------------------------


def test_loads_without_a_registered_model_are_not_checked(package: Path) -> None:
    enforce(package, manifest_of(package), None)  # unsigned, and no registry needed


@pytest.fixture
def policy_for() -> Any:
    """Register a model and give it a trust policy, through the registry's own API."""

    def set_policy(name: str, policy: TrustPolicy) -> None:
        create_registered_model(name)
        set_trust_policy(name, policy)

    return set_policy


def test_policy_requiring_a_signature_refuses_unsigned_and_untrusted_packages(
    package: Path, keys: tuple[Path, Path], tmp_path: Path, policy_for: Any
) -> None:
    policy_for("churn", Policy(trusted_keys=(keys[1].read_text(),)))
    with pytest.raises(UntrustedSignature, match="'churn' requires a signature") as caught:
        enforce(package, manifest_of(package), "churn")
    assert caught.value.details["reason"] == "missing"

    stranger = generate_signing_key(tmp_path / "stranger")
    sign_package(package, stranger[0])
    with pytest.raises(UntrustedSignature) as caught:
        enforce(package, manifest_of(package), "churn")
    assert caught.value.details["reason"] == "untrusted-key"

    sign_package(package, keys[0])
    enforce(package, manifest_of(package), "churn")
    enforce(package, manifest_of(package), "another-model")  # no policy there


def test_signature_is_checked_against_the_digests_the_load_verified(
    package: Path, keys: tuple[Path, Path], policy_for: Any
) -> None:
    """``enforce`` compares the signed digests with the manifest the load already checked,
    so a manifest that disagrees with the signature is refused without rehashing."""
    policy_for("churn", Policy(trusted_keys=(keys[1].read_text(),)))
    sign_package(package, keys[0])
    manifest = manifest_of(package)
    manifest["files"]["model.skops"] = "0" * 64
    with pytest.raises(UntrustedSignature) as caught:
        enforce(package, manifest, "churn")
    assert caught.value.details["modified"] == ["model.skops"]


def test_policy_that_does_not_require_a_signature_loads_unsigned(
    package: Path, policy_for: Any
) -> None:
    policy_for("churn", Policy(require_signature=False))
    enforce(package, manifest_of(package), "churn")


def test_policy_key_mloop_cannot_use_is_a_problem_not_a_crash(package: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    ed_pem = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    [problem] = promotion_problems(package, Policy(trusted_keys=(ed_pem,)))
    assert "not an EC key" in problem


def test_promotion_can_reuse_the_digests_a_package_check_verified(
    package: Path, keys: tuple[Path, Path]
) -> None:
    policy = Policy(trusted_keys=(keys[1].read_text(),))
    sign_package(package, keys[0])
    assert promotion_problems(package, policy, verified_manifest=manifest_of(package)) == []
    manifest = manifest_of(package)
    manifest["files"]["params.json"] = "0" * 64
    [problem] = promotion_problems(package, policy, verified_manifest=manifest)
    assert "params.json" in problem
