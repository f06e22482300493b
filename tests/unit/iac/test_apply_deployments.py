"""`apply` with Deployment documents on SQLite and PostgreSQL: create, idempotence (no new
revision, no audit entry), updates with their diff, dry runs that change nothing, folders,
aliases, errors by file/line/field with nothing applied, and roles."""

from __future__ import annotations

from pathlib import Path

import pytest

from mloop.errors import PermissionDenied
from mloop.iac import DocumentsInvalid, apply, plan
from mloop.registry import (
    Principal,
    RoleGrant,
    archive_model_version,
    list_audit_log,
    set_alias,
)
from mloop.serving import create_deployment, deployment_history, get_deployment, list_deployments
from mloop.serving._spec import DeploymentSpec, Member
from tests.unit.iac.conftest import write

FRAUD = """
apiVersion: mloop/v1
kind: Deployment
metadata:
  name: fraud
spec:
  members:
    - model: iris
      version: 2
    - {model: iris, version: 3, role: canary, weight: 10}
  guards:
    output: label
"""


def _audit(name: str) -> list[str]:
    return [e.action for e in list_audit_log(target=f"deployment:{name}")]


def test_apply_creates_then_is_idempotent(iris: str, tmp_path: Path) -> None:
    path = write(tmp_path / "fraud.yaml", FRAUD)
    first = apply(path)
    assert [(c.kind, c.name, c.action) for c in first.changes] == [
        ("Deployment", "fraud", "create")
    ]
    assert first.applied
    assert first.summary == "1 created, 0 updated, 0 unchanged"
    live = get_deployment("fraud")
    assert live.revision == 1
    assert live.created_by == "ada"
    assert live.reason == f"mloop apply {path}"
    assert [m.ref for m in live.spec.members] == ["iris:2", "iris:3"]
    assert live.spec.guards.output == "label"

    again = apply(path)
    assert [c.action for c in again.changes] == ["unchanged"]
    assert get_deployment("fraud").revision == 1
    assert _audit("fraud") == ["deployment.create"]


def test_a_change_is_one_new_revision_with_a_diff(iris: str, tmp_path: Path) -> None:
    path = write(tmp_path / "fraud.yaml", FRAUD)
    apply(path)
    write(path, FRAUD.replace("weight: 10", "weight: 25").replace("output: label", "top_k: 2"))
    dry = plan(path)
    (change,) = dry.changes
    assert change.action == "update"
    assert not dry.applied
    fields = {f.path: (f.change, f.before, f.after) for f in change.fields()}
    assert fields == {
        "members[1].weight": ("changed", 10.0, 25.0),
        "guards.output": ("removed", "label", None),
        "guards.top_k": ("added", None, 2),
    }
    assert "-  weight: 10.0\n+  weight: 25.0\n" in change.diff()
    assert get_deployment("fraud").revision == 1  # the dry run changed nothing

    done = apply(path)
    assert [c.action for c in done.changes] == ["update"]
    assert [d.revision for d in deployment_history("fraud")] == [1, 2]
    assert get_deployment("fraud").spec.canaries[0].weight == 25
    assert _audit("fraud") == ["deployment.update", "deployment.create"]


def test_dry_run_of_new_objects_changes_nothing(iris: str, tmp_path: Path) -> None:
    path = write(tmp_path / "fraud.yaml", FRAUD)
    result = apply(path, dry_run=True)
    assert [c.action for c in result.changes] == ["create"]
    assert result.summary == "1 to create, 0 to update, 0 unchanged"
    assert list_deployments() == []
    assert list_audit_log(target="deployment:fraud") == []


def test_a_folder_is_applied_recursively_in_order(iris: str, tmp_path: Path) -> None:
    root = tmp_path / "deploy"
    write(root / "b" / "beta.yml", FRAUD.replace("name: fraud", "name: beta"))
    write(
        root / "a.yaml",
        FRAUD.replace("name: fraud", "name: alpha")
        + "---\n"
        + FRAUD.replace("name: fraud", "name: gamma").replace("version: 2", "version: 1"),
    )
    write(root / ".hidden" / "skip.yaml", "not: [valid")
    write(root / "notes.txt", "not yaml at all: [")
    result = apply(root)
    assert [(c.name, c.source) for c in result.changes] == [
        ("alpha", str(root / "a.yaml")),
        ("gamma", str(root / "a.yaml")),
        ("beta", str(root / "b" / "beta.yml")),
    ]
    assert [c.line for c in result.changes] == [1, 14, 1]  # after "---" and a blank line
    assert [d.name for d in list_deployments()] == ["alpha", "beta", "gamma"]
    assert [c.action for c in apply(root).changes] == ["unchanged"] * 3


def test_aliases_resolve_against_the_registry(iris: str, tmp_path: Path) -> None:
    set_alias("iris", "champion", 4)
    doc = FRAUD.replace("version: 2", 'version: "@champion"')
    path = write(tmp_path / "fraud.yaml", doc)
    apply(path)
    assert get_deployment("fraud").spec.primary.ref == "iris:4"
    assert [c.action for c in plan(path).changes] == ["unchanged"]
    set_alias("iris", "champion", 5)  # the document now means another version
    (change,) = plan(path).changes
    assert change.action == "update"
    assert [(f.path, f.before, f.after) for f in change.fields()] == [("members[0].version", 4, 5)]


def test_one_bad_document_stops_all_with_file_line_and_field(iris: str, tmp_path: Path) -> None:
    good = write(tmp_path / "a-good.yaml", FRAUD)
    bad = write(
        tmp_path / "b-bad.yaml",
        """
        apiVersion: mloop/v1
        kind: Deployment
        metadata:
          name: churn
        spec:
          members:
            - model: iris
              version: 2
            - model: iris
              version: 3
              role: canary
              weight: 120
          guards:
            rate_limt_per_key: {rate: 1, burst: 2}
        """,
    )
    with pytest.raises(DocumentsInvalid) as caught:
        apply(tmp_path)
    problems = {(p.source, p.line, p.field) for p in caught.value.problems}
    assert problems == {
        (str(bad), 12, "spec.members[1].weight"),
        (str(bad), 14, "spec.guards.rate_limt_per_key"),
    }
    message = caught.value.message
    assert f"{bad}:12: spec.members[1].weight: canary weight 120.0 is not valid" in message
    assert f"{bad}:14: spec.guards.rate_limt_per_key: unknown field" in message
    assert "nothing applied" in message
    assert list_deployments() == []  # the good document was not applied either
    assert good.exists()


def test_members_that_do_not_exist_or_are_archived_are_found_first(
    iris: str, tmp_path: Path
) -> None:
    archive_model_version("iris", 6)
    path = write(
        tmp_path / "d.yaml",
        """
        apiVersion: mloop/v1
        kind: Deployment
        metadata: {name: fraud}
        spec:
          members:
            - model: iris
              version: 2
            - model: iris:9
              role: shadow
            - model: iris
              version: 6
              role: shadow
            - model: ghost@champion
              role: shadow
        """,
    )
    with pytest.raises(DocumentsInvalid) as caught:
        apply(path)
    assert [(p.line, p.field) for p in caught.value.problems] == [(13, "spec.members[3]")]
    assert "'ghost'" in caught.value.problems[0].message
    write(path, path.read_text().replace("    - model: ghost@champion\n      role: shadow\n", ""))
    with pytest.raises(DocumentsInvalid) as caught:
        apply(path)
    found = [(p.line, p.field, p.message) for p in caught.value.problems]
    assert found[0][:2] == (8, "spec.members[1]")
    assert "no version 9" in found[0][2]
    assert found[1][:2] == (10, "spec.members[2]")
    assert "archived" in found[1][2]
    assert list_deployments() == []


def test_an_unchanged_deployment_with_an_archived_member_stays_unchanged(
    iris: str, tmp_path: Path
) -> None:
    path = write(tmp_path / "fraud.yaml", FRAUD)
    apply(path)
    archive_model_version("iris", 3)  # archived while deployed: it keeps serving
    assert [c.action for c in apply(path).changes] == ["unchanged"]


def test_changing_a_deployment_needs_the_deployer_role(iris: str, tmp_path: Path) -> None:
    path = write(tmp_path / "fraud.yaml", FRAUD)
    two = write(tmp_path / "more.yaml", FRAUD.replace("name: fraud", "name: churn"))
    viewer = Principal("scorer", "service", (RoleGrant("viewer", "global"),))
    fraud_only = Principal("carol", "user", (RoleGrant("deployer", "deployment:fraud"),))
    with pytest.raises(PermissionDenied, match="may not deploy deployment:fraud"):
        apply(path, actor=viewer)
    with pytest.raises(PermissionDenied, match="deployment:churn"):
        apply([path, two], actor=fraud_only)
    assert list_deployments() == []  # refused before anything was applied
    assert [c.action for c in apply(path, actor=viewer, dry_run=True).changes] == ["create"]
    apply(path, actor=fraud_only)
    assert get_deployment("fraud").created_by == "carol"
    assert [c.action for c in apply(path, actor=viewer).changes] == ["unchanged"]  # no role
    assert {e.actor for e in list_audit_log(target="deployment:fraud")} == {"carol"}


def test_a_deployment_made_elsewhere_is_updated_in_place(iris: str, tmp_path: Path) -> None:
    create_deployment("fraud", DeploymentSpec(members=(Member(model="iris", version=1),)))
    (change,) = apply(write(tmp_path / "fraud.yaml", FRAUD)).changes
    assert change.action == "update"
    assert change.before == {"members": [{"model": "iris", "version": 1}]}
    assert get_deployment("fraud").revision == 2
