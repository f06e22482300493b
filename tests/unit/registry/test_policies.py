"""Trust policies: stored per registered model, checked on the way in, audited."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mloop.errors import InvalidInput, NotFound, PermissionDenied
from mloop.registry import (
    Principal,
    RoleGrant,
    TrustPolicy,
    create_registered_model,
    get_trust_policy,
    list_audit_log,
    set_trust_policy,
)
from mloop.registry._entities import key_fingerprint


def key_pair() -> tuple[str, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return private_pem.decode(), public_pem.decode()


def test_no_policy_until_one_is_set_then_it_round_trips(db: str) -> None:
    create_registered_model("churn")
    assert get_trust_policy("churn") is None
    assert get_trust_policy("unknown") is None
    _, public = key_pair()
    policy = TrustPolicy(
        require_signature=True,
        trusted_keys=(public, public),  # duplicates collapse
        require_clean_scan=True,
        required_approvals=2,
        approver_not_uploader=True,
        require_evaluation=True,
    )
    stored = set_trust_policy("churn", policy)
    assert stored.trusted_keys == (public.strip() + "\n",)
    assert get_trust_policy("churn") == stored
    assert stored.approvals_needed == 2
    assert set_trust_policy("churn", stored) == stored  # unchanged: not audited again
    [entry] = list_audit_log(action="policy.set")
    assert entry.before is None
    assert entry.after["trusted_keys"] == [key_fingerprint(public)]
    assert public not in str(entry.after)  # fingerprints, not whole keys


def test_replacing_a_policy_records_before_and_after(db: str) -> None:
    create_registered_model("churn")
    set_trust_policy("churn", TrustPolicy(required_approvals=1))
    set_trust_policy("churn", TrustPolicy(approver_not_uploader=True))
    assert get_trust_policy("churn") == TrustPolicy(approver_not_uploader=True)
    assert TrustPolicy(approver_not_uploader=True).approvals_needed == 1
    latest = list_audit_log(action="policy.set")[0]
    assert latest.before["required_approvals"] == 1
    assert latest.after["required_approvals"] == 0
    assert latest.after["approver_not_uploader"] is True


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (TrustPolicy(require_signature=True), "needs at least one trusted public key"),
        (TrustPolicy(trusted_keys=("not a key",)), "not a PEM public key"),
        (TrustPolicy(required_approvals=-1), "between 0 and 100"),
        (TrustPolicy(required_approvals=101), "between 0 and 100"),
        (TrustPolicy(required_approvals=True), "whole number"),
    ],
)
def test_bad_policies_are_refused(sqlite_db: str, policy: TrustPolicy, message: str) -> None:
    create_registered_model("churn")
    with pytest.raises(InvalidInput, match=message):
        set_trust_policy("churn", policy)
    assert get_trust_policy("churn") is None


def test_a_private_key_is_refused_as_a_trusted_key(sqlite_db: str) -> None:
    create_registered_model("churn")
    private, _ = key_pair()
    with pytest.raises(InvalidInput, match="this is a private key"):
        set_trust_policy("churn", TrustPolicy(trusted_keys=(private,)))


def test_setting_a_policy_needs_the_model_and_admin_rights(db: str, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="registered model 'ghost' does not exist"):
        set_trust_policy("ghost", TrustPolicy())
    create_registered_model("churn")
    deployer = Principal("eve", "user", (RoleGrant("deployer", "global"),))
    with pytest.raises(PermissionDenied, match="may not admin model:churn"):
        set_trust_policy("churn", TrustPolicy(required_approvals=1), actor=deployer)
    model_admin = Principal("ann", "user", (RoleGrant("admin", "model:churn"),))
    set_trust_policy("churn", TrustPolicy(required_approvals=1), actor=model_admin)
    assert list_audit_log(action="policy.set")[0].actor == "ann"
