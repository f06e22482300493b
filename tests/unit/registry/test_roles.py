"""The role → action table, cell by cell, and how scopes select resources (no store)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mloop.errors import InvalidInput, PermissionDenied
from mloop.registry import (
    ACTIONS,
    GLOBAL,
    ROLES,
    Principal,
    Resource,
    RoleGrant,
    _names,
    allowed,
    authorize,
)

# The documented table (docs/registry.md), written out independently of the code.
TABLE = {
    #            read   write  approve deploy admin  predict
    "viewer":   (True,  False, False,  False, False, True),
    "editor":   (True,  True,  False,  False, False, True),
    "approver": (True,  False, True,   False, False, True),
    "deployer": (True,  False, False,  True,  False, True),
    "admin":    (True,  True,  True,   True,  True,  True),
}  # fmt: skip
CELLS = [(role, action, TABLE[role][i]) for role in TABLE for i, action in enumerate(ACTIONS)]
RESOURCES = [
    GLOBAL,
    Resource.model("churn"),
    Resource.experiment("0190abc", "nightly"),
    Resource.deployment("churn"),
]


def test_the_table_covers_every_role_and_action() -> None:
    assert tuple(TABLE) == ROLES
    assert ACTIONS == ("read", "write", "approve", "deploy", "admin", "predict")


@pytest.mark.parametrize(("role", "action", "expected"), CELLS)
@pytest.mark.parametrize("resource", RESOURCES, ids=str)
def test_a_global_role_allows_its_actions_everywhere(
    role: str, action: str, expected: bool, resource: Resource
) -> None:
    principal = Principal("p", "user", (RoleGrant(role, "global"),))
    assert allowed(principal, action, resource) is expected
    if expected:
        authorize(principal, action, resource)
    else:
        with pytest.raises(PermissionDenied, match=f"may not {action}"):
            authorize(principal, action, resource)


@pytest.mark.parametrize(("role", "action", "expected"), CELLS)
def test_a_model_role_allows_its_actions_on_that_model_only(
    role: str, action: str, expected: bool
) -> None:
    principal = Principal("p", "user", (RoleGrant(role, "model:churn"),))
    assert allowed(principal, action, "model:churn") is expected
    assert allowed(principal, action, Resource.model("fraud")) is False
    assert allowed(principal, action, GLOBAL) is False
    assert allowed(principal, action, Resource.experiment("churn")) is False
    assert allowed(principal, action, Resource.deployment("churn")) is False


@pytest.mark.parametrize(("role", "action", "expected"), CELLS)
def test_a_deployment_role_allows_its_actions_on_that_deployment_only(
    role: str, action: str, expected: bool
) -> None:
    principal = Principal("p", "user", (RoleGrant(role, "deployment:churn"),))
    assert allowed(principal, action, "deployment:churn") is expected
    assert allowed(principal, action, Resource.deployment("churn")) is expected
    assert allowed(principal, action, Resource.deployment("fraud")) is False
    assert allowed(principal, action, Resource.model("churn")) is False
    assert allowed(principal, action, GLOBAL) is False


def test_a_scoped_viewer_may_predict_on_its_deployment_and_nothing_else() -> None:
    service = Principal("scorer", "service", (RoleGrant("viewer", "deployment:fraud"),))
    authorize(service, "predict", Resource.deployment("fraud"))
    with pytest.raises(PermissionDenied) as refused:
        authorize(service, "predict", Resource.deployment("churn"))
    assert refused.value.message.endswith(
        "an admin can grant it with `mloop users grant scorer viewer --deployment churn`"
    )
    with pytest.raises(PermissionDenied, match="needs the deployer or admin role"):
        authorize(service, "deploy", Resource.deployment("fraud"))


@pytest.mark.parametrize(("role", "action", "expected"), CELLS)
def test_an_experiment_role_matches_the_experiment_by_id_or_name(
    role: str, action: str, expected: bool
) -> None:
    by_name = Principal("p", "user", (RoleGrant(role, "experiment:nightly"),))
    by_id = Principal("p", "user", (RoleGrant(role, "experiment:0190abc"),))
    experiment = Resource.experiment("0190abc", "nightly")
    assert allowed(by_name, action, experiment) is expected
    assert allowed(by_id, action, experiment) is expected
    assert allowed(by_name, action, Resource.experiment("0190abc")) is False
    assert allowed(by_id, action, Resource.model("nightly")) is False


def test_roles_add_up_and_no_role_allows_nothing() -> None:
    nobody = Principal("p", "user", ())
    assert not any(allowed(nobody, a, r) for a in ACTIONS for r in RESOURCES)
    both = Principal(
        "p", "user", (RoleGrant("approver", "model:churn"), RoleGrant("deployer", "global"))
    )
    assert allowed(both, "approve", "model:churn")
    assert allowed(both, "deploy", "model:fraud")
    assert not allowed(both, "approve", "model:fraud")
    assert not allowed(both, "write", "model:churn")


def test_a_refusal_says_which_roles_would_do_and_how_to_grant_one() -> None:
    viewer = Principal("ci-bot", "service", (RoleGrant("viewer", "global"),))
    with pytest.raises(PermissionDenied) as refused:
        authorize(viewer, "deploy", Resource.model("churn"))
    assert refused.value.message == (
        "service 'ci-bot' may not deploy model:churn: that needs the deployer or admin role "
        "on model:churn or globally; an admin can grant it with "
        "`mloop users grant ci-bot deployer --model churn`"
    )
    assert refused.value.http_status == 403
    with pytest.raises(PermissionDenied, match="needs the admin role globally"):
        authorize(viewer, "admin")


def test_unknown_actions_and_resources_are_bad_input() -> None:
    admin = Principal("p", "user", (RoleGrant("admin", "global"),))
    with pytest.raises(InvalidInput, match="action 'delete' does not exist"):
        authorize(admin, "delete", GLOBAL)
    with pytest.raises(InvalidInput, match="scope"):
        authorize(admin, "read", "dataset:iris")


@given(st.text(max_size=40))
def test_scope_parsing_accepts_only_the_four_shapes(text: str) -> None:
    try:
        scope = _names.scope(text)
    except InvalidInput:
        return
    assert scope == "global" or scope.split(":", 1)[0] in ("experiment", "model", "deployment")
    assert _names.scope(scope) == scope  # canonical
    assert str(Resource.parse(scope)) == scope


@given(st.one_of(st.integers(), st.text(max_size=12)))
def test_version_references_parse_to_exactly_one_meaning(ref: int | str) -> None:
    try:
        kind, value = _names.version_ref(ref)
    except InvalidInput:
        return
    if kind == "number":
        assert isinstance(value, int)
        assert value >= 1
    elif kind == "alias":
        assert isinstance(value, str)
        assert not value.isdigit()
        assert _names.alias_name(value) == value
    else:
        assert (kind, value) == ("latest", None)
