"""Promotion checks that need the package: a trusted signature, a clean scan, and the
package still being the one registered. They use part B's ``save_model`` /
``resolve_package`` / ``verify_package``, part A's ``scan_path`` and part C's signing, and
are skipped until those exist in this checkout."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import mloop.models
from mloop.errors import PolicyViolation
from mloop.registry import (
    TrustPolicy,
    promotion_blockers,
    register_model_version,
    resolve,
    set_alias,
    set_trust_policy,
)

_NEEDED = ("save_model", "resolve_package", "verify_package", "sign_package", "scan_path")
_MISSING = [name for name in _NEEDED if not hasattr(mloop.models, name)]
pytestmark = pytest.mark.skipif(
    bool(_MISSING), reason=f"mloop.models lacks {', '.join(_MISSING)} (parts A/B in progress)"
)


@pytest.fixture
def package(tmp_path: Path) -> Path:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    folder = tmp_path / "package"
    mloop.models.save_model(model, folder)
    return folder


def digest_of(package: Path) -> str:
    return hashlib.sha256((package / "mloop-model.json").read_bytes()).hexdigest()


def test_a_signature_from_a_trusted_key_is_required_when_the_policy_says_so(
    db: str, package: Path, tmp_path: Path
) -> None:
    private, public = mloop.models.generate_signing_key(tmp_path / "keys")
    register_model_version("churn", str(package), package_digest=digest_of(package))
    set_trust_policy(
        "churn", TrustPolicy(require_signature=True, trusted_keys=(public.read_text(),))
    )
    with pytest.raises(PolicyViolation, match="signature: "):
        set_alias("churn", "champion", 1)
    mloop.models.sign_package(package, private)
    assert promotion_blockers("churn", "champion", 1) == []
    assert set_alias("churn", "champion", 1).version == 1
    assert resolve("churn", "@champion").version == 1


def test_a_clean_scan_passes_and_a_replaced_package_is_caught(
    db: str, package: Path, tmp_path: Path
) -> None:
    register_model_version("churn", str(package), package_digest="0" * 64)
    set_trust_policy("churn", TrustPolicy(require_clean_scan=True))
    [problem] = promotion_blockers("churn", "champion", 1)
    assert "the package was replaced" in problem
    register_model_version("churn", str(package), package_digest=digest_of(package))
    assert promotion_blockers("churn", "champion", 2) == []
    assert set_alias("churn", "champion", 2).version == 2


def test_a_package_that_cannot_be_fetched_blocks_the_move(db: str, tmp_path: Path) -> None:
    register_model_version("churn", str(tmp_path / "gone"), package_digest="1" * 64)
    set_trust_policy("churn", TrustPolicy(require_clean_scan=True))
    [problem] = promotion_blockers("churn", "champion", 1)
    assert problem.startswith("package: ")
