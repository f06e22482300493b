"""Moving aliases under a model's policy: approvals from approvers, the uploader rule,
evaluation, roles enforced for API callers, and every refusal listing every reason."""

from __future__ import annotations

import pytest
from tests.fixtures.registry import DIGESTS

from mloop.errors import Conflict, NotFound, PermissionDenied, PolicyViolation
from mloop.registry import (
    Principal,
    RoleGrant,
    TrustPolicy,
    approve,
    create_user,
    delete_alias,
    disable_user,
    get_registered_model,
    grant_role,
    list_approvals,
    list_audit_log,
    promotion_blockers,
    register_model_version,
    resolve,
    revoke_role,
    set_alias,
    set_trust_policy,
)


@pytest.fixture
def churn(db: str) -> None:
    """churn versions 1 and 2 uploaded by ada; bob and cy approve; dee only views."""
    register_model_version("churn", "/p1", package_digest=DIGESTS[0])
    register_model_version("churn", "/p2", package_digest=DIGESTS[1])
    create_user("ada", roles=[("editor", "global"), ("approver", "global")])
    create_user("bob", roles=[("approver", "model:churn")])
    create_user("cy", roles=[("admin", "global")])
    create_user("dee", roles=[("viewer", "global"), ("approver", "model:fraud")])


def as_user(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("MLOOP_USER", name)


def test_aliases_move_delete_and_each_move_is_audited(db: str) -> None:
    register_model_version("churn", "/p1", package_digest=DIGESTS[0])
    register_model_version("churn", "/p2", package_digest=DIGESTS[1])
    set_alias("churn", "champion", 1)
    set_alias("churn", "challenger", 2)
    set_alias("churn", "champion", 2)
    set_alias("churn", "champion", 2)  # already there: no entry
    assert get_registered_model("churn").aliases == {"challenger": 2, "champion": 2}
    assert resolve("churn", "@champion").aliases == ("challenger", "champion")
    delete_alias("churn", "challenger")
    with pytest.raises(NotFound, match="no alias 'challenger'"):
        delete_alias("churn", "challenger")
    moves = [(e.action, e.target, e.before, e.after) for e in reversed(list_audit_log())][3:]
    assert moves == [
        ("alias.set", "model:churn@champion", None, {"version": 1}),
        ("alias.set", "model:churn@challenger", None, {"version": 2}),
        ("alias.set", "model:churn@champion", {"version": 1}, {"version": 2}),
        ("alias.delete", "model:churn@challenger", {"version": 2}, None),
    ]


def test_bad_aliases_are_refused(sqlite_db: str) -> None:
    register_model_version("churn", "/p1", package_digest=DIGESTS[0])
    for bad in ("latest", "3", "a b", "@x", "x/y", ""):
        with pytest.raises(Exception, match="alias"):
            set_alias("churn", bad, 1)
    with pytest.raises(NotFound, match="no version 5"):
        set_alias("churn", "champion", 5)


def test_required_approvals_count_only_approvers_of_that_version_and_alias(
    churn: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_trust_policy("churn", TrustPolicy(required_approvals=2))
    with pytest.raises(PolicyViolation, match=r"2 needed from approvers for @champion, 0 given"):
        set_alias("churn", "champion", 2)

    as_user(monkeypatch, "dee")  # a viewer, and approver of another model only
    with pytest.raises(PermissionDenied, match="may not approve versions of 'churn'"):
        approve("churn", 2, alias="champion")
    as_user(monkeypatch, "zed")  # not a registered user at all
    with pytest.raises(PermissionDenied, match="not a registered user"):
        approve("churn", 2, alias="champion")

    as_user(monkeypatch, "bob")
    approve("churn", 2, alias="champion", comment="AUC up 2 points")
    approve("churn", 2, alias="champion")  # twice: still one approval
    approve("churn", 1, alias="champion")  # another version
    approve("churn", 2, alias="challenger")  # another alias
    with pytest.raises(PolicyViolation, match=r"1 given \(bob\)"):
        set_alias("churn", "champion", 2)

    as_user(monkeypatch, "cy")  # admin: may approve too
    approve("churn", 2, alias="champion")
    assert [a.approver for a in list_approvals("churn", 2, alias="champion")] == ["bob", "cy"]
    assert list_approvals("churn", 2, alias="champion")[0].comment == "AUC up 2 points"
    assert set_alias("churn", "champion", 2).version == 2
    assert len(list_audit_log(action="approval.create")) == 4


def test_approvals_stop_counting_when_the_approver_loses_the_role_or_is_disabled(
    churn: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_trust_policy("churn", TrustPolicy(required_approvals=1))
    as_user(monkeypatch, "bob")
    approve("churn", 1, alias="champion")
    assert promotion_blockers("churn", "champion", 1) == []
    as_user(monkeypatch, "cy")
    revoke_role("bob", "approver", "model:churn")
    assert promotion_blockers("churn", "champion", 1)[0].startswith("approvals: 1 needed")
    grant_role("bob", "approver", "model:churn")
    assert promotion_blockers("churn", "champion", 1) == []
    disable_user("bob")
    with pytest.raises(PolicyViolation, match="0 given"):
        set_alias("churn", "champion", 1)


def test_the_uploader_cannot_approve_their_own_version(
    churn: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_trust_policy("churn", TrustPolicy(approver_not_uploader=True))
    with pytest.raises(
        PolicyViolation, match=r"1 needed from approvers other than the uploader 'ada'"
    ):
        set_alias("churn", "champion", 1)
    with pytest.raises(PolicyViolation, match="'ada' registered version 1"):
        approve("churn", 1, alias="champion")  # ada uploaded it
    as_user(monkeypatch, "bob")
    approve("churn", 1, alias="champion")
    assert set_alias("churn", "champion", 1).aliases == ("champion",)


def test_approvals_given_before_the_uploader_rule_do_not_count_for_the_uploader(
    churn: None,
) -> None:
    approve("churn", 1, alias="champion")  # ada approves her own upload: no rule yet
    set_trust_policy("churn", TrustPolicy(required_approvals=1, approver_not_uploader=True))
    with pytest.raises(PolicyViolation, match="0 given"):
        set_alias("churn", "champion", 1)


def test_a_refusal_lists_every_unmet_requirement_and_writes_nothing(churn: None) -> None:
    set_trust_policy("churn", TrustPolicy(required_approvals=1, require_evaluation=True))
    before = len(list_audit_log())
    with pytest.raises(PolicyViolation) as refused:
        set_alias("churn", "champion", 2)
    problems = refused.value.details["problems"]
    assert len(problems) == 2
    assert problems[0].startswith("approvals: 1 needed")
    assert problems[1].startswith("evaluation: no evaluation yet of version 2")
    assert "approvals: 1 needed" in refused.value.message
    assert "evaluation: no evaluation yet" in refused.value.message
    assert promotion_blockers("churn", "champion", 2) == problems
    assert len(list_audit_log()) == before
    assert get_registered_model("churn").aliases == {}


def test_api_callers_need_the_role_for_each_change(churn: None) -> None:
    viewer = Principal("dee", "user", (RoleGrant("viewer", "global"),))
    deployer = Principal("eve", "service", (RoleGrant("deployer", "model:churn"),))
    with pytest.raises(PermissionDenied, match="may not deploy model:churn"):
        set_alias("churn", "champion", 1, actor=viewer)
    with pytest.raises(PermissionDenied, match="may not write model:churn"):
        register_model_version("churn", "/p3", package_digest=DIGESTS[2], actor=deployer)
    set_alias("churn", "champion", 1, actor=deployer)
    [entry] = list_audit_log(action="alias.set")
    assert entry.actor == "eve"
    register_model_version("fraud", "/f", package_digest=DIGESTS[3])
    with pytest.raises(PermissionDenied, match="may not deploy model:fraud"):
        set_alias("fraud", "champion", 1, actor=deployer)


def test_an_archived_version_cannot_be_approved(
    churn: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mloop.registry import archive_model_version

    archive_model_version("churn", 2)
    as_user(monkeypatch, "bob")
    with pytest.raises(Conflict, match="archived"):
        approve("churn", 2, alias="champion")
    assert promotion_blockers("churn", "champion", 2) == ["version 2 is archived"]
