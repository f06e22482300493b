"""The ATLAS audit: every mitigation listed once, states read from settings, trust
policies, training-data lineage and a deployment's guards; --require gates on them."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pytest

import mloop.data
import mloop.registry as registry
from mloop.config import get_settings
from mloop.errors import InvalidInput
from mloop.registry import TrustPolicy
from mloop.security import MITIGATIONS, audit
from mloop.security._atlas import parse_required
from mloop.serving._spec import Deployment as StoredDeployment
from mloop.serving._spec import DeploymentSpec, Guards, Member, RateLimit
from tests.unit.cli.helpers import one_error_line, run_cli


def make_spec(members: tuple[Member, ...], **fields: Any) -> DeploymentSpec:
    return DeploymentSpec(members=members, **fields)


def stored(name: str, revision: int, spec: DeploymentSpec) -> StoredDeployment:
    return StoredDeployment(
        name=name, revision=revision, spec=spec, created_time=0, created_by="test"
    )


DIGEST = "ab" * 32


def _states(report: Any, column: str) -> dict[str, str]:
    return {
        r.mitigation.id.removeprefix("AML."): getattr(r, column).state
        for r in report.rows
        if getattr(r, column) is not None
    }


def test_every_mitigation_m0000_to_m0019_is_listed_once_in_order() -> None:
    assert [m.id for m in MITIGATIONS] == [f"AML.M{i:04d}" for i in range(20)]
    assert all(m.name and m.control and m.how for m in MITIGATIONS)
    report = audit()
    assert [r.mitigation.id for r in report.rows] == [m.id for m in MITIGATIONS]
    assert report.deployment is None
    assert all(r.deployment is None for r in report.rows)


def test_registry_states_follow_the_settings() -> None:
    default = _states(audit(), "registry")
    assert default["M0011"] == default["M0014"] == "on"  # built in, cannot be turned off
    assert default["M0012"] == "off"
    assert default["M0005"] == default["M0019"] == "on"  # server_auth=auto
    assert default["M0008"] == "planned"
    assert default["M0000"] == default["M0018"] == "n/a"
    hardened = _states(audit(settings=get_settings(kek_file="/keys/kek")), "registry")
    assert hardened["M0012"] == "on"
    opened = audit(settings=get_settings(server_auth="off"))
    assert _states(opened, "registry")["M0019"] == "off"
    assert "server_auth=off" in opened.row("M0019").registry.why


def test_signing_and_scanning_count_the_models_whose_policy_requires_them() -> None:
    registry.register_model_version("churn", "/p1", package_digest=DIGEST)
    registry.register_model_version("fraud", "/p2", package_digest="cd" * 32)
    registry.set_trust_policy("churn", TrustPolicy(require_clean_scan=True))
    report = audit()
    row = report.row("M0016").registry
    assert row.state == "partial"
    assert row.why == "1 of 2 models require a clean scan (churn)"
    assert report.row("M0013").registry.state == "off"
    registry.set_trust_policy("fraud", TrustPolicy(require_clean_scan=True))
    assert audit().row("M0016").registry.state == "on"


def _register_versions() -> None:
    table = pa.table({"x": [1.0, 2.0, 2.0, 3.0], "y": [0, 1, 1, 0]})
    raw = mloop.data.register("raw", table)
    clean = mloop.data.register(
        "clean", table.slice(0, 3), provenance={"sanitized_from": raw.ref}, parents=[raw.ref]
    )
    registry.register_model_version(
        "churn", "/p1", package_digest=DIGEST, dataset_versions=[raw.ref]
    )
    registry.register_model_version(
        "churn", "/p2", package_digest="cd" * 32, dataset_versions=[clean.ref]
    )


def test_sanitization_follows_the_training_data_lineage() -> None:
    _register_versions()
    report = audit(stored("churn", 3, make_spec((Member(model="churn", version=2),))))
    assert report.row("M0007").deployment is not None
    assert report.row("M0007").deployment.state == "on"
    assert report.row("M0007").registry.state == "partial"
    assert report.row("M0007").registry.why.startswith("1 of 2 versions")
    dirty = audit(stored("churn", 4, make_spec((Member(model="churn", version=1),))))
    assert dirty.row("M0007").effective.state == "off"


def test_a_deployment_with_default_guards_has_its_guards_off() -> None:
    _register_versions()
    report = audit(stored("churn", 1, make_spec((Member(model="churn", version=2),))))
    states = _states(report, "deployment")
    assert states["M0002"] == states["M0004"] == states["M0006"] == states["M0015"] == "off"
    assert states["M0017"] == "partial"
    assert states["M0019"] == "on"  # auth auto
    assert states["M0005"] == states["M0012"] == "n/a"  # at rest: the registry column
    assert report.deployment == "churn"
    assert report.revision == 1
    assert report.row("M0012").effective.state == "off"  # falls back to the registry's


def test_a_hardened_deployment_has_every_guard_on() -> None:
    _register_versions()
    registry.set_trust_policy("churn", TrustPolicy(require_clean_scan=True))
    guards = Guards(
        auth="on",
        rate_limit_per_key=RateLimit(rate=5.0, burst=10),
        rate_limit_per_deployment=RateLimit(rate=100.0, burst=200),
        output="top_k",
        top_k=2,
        atypical="reject",
    )
    spec = make_spec(
        (Member(model="churn", version=1), Member(model="churn", version=2)),
        combine="vote",
        guards=guards,
        preprocessing="models:/churn-features/1",
    )
    report = audit(stored("churn", 2, spec), require=["M0002,M0004", "M0006", "m0015"])
    states = _states(report, "deployment")
    for ident in ("M0002", "M0004", "M0006", "M0015", "M0016", "M0017", "M0019"):
        assert states[ident] == "on", ident
    assert report.row("M0004").deployment is not None
    assert "per key 5/s burst 10" in report.row("M0004").deployment.why
    assert "per process" in report.row("M0004").deployment.why
    assert report.row("M0002").deployment is not None
    assert report.row("M0002").deployment.why == "guards.output=top_k: the 2 best classes"
    assert report.missing == []
    shared = audit(stored("churn", 2, spec), settings=get_settings(redis_url="redis://r:6379"))
    assert shared.row("M0004").deployment is not None
    assert "shared across replicas in Redis" in shared.row("M0004").deployment.why


def test_required_controls_that_are_off_are_missing() -> None:
    _register_versions()
    report = audit(
        stored("churn", 1, make_spec((Member(model="churn", version=2),))),
        require=["M0004", "AML.M0019"],
    )
    assert report.required == ("AML.M0004", "AML.M0019")
    assert report.missing == ["AML.M0004"]
    data = report.to_dict()
    assert data["missing"] == ["AML.M0004"]
    assert data["mitigations"][4]["deployment"] == {
        "state": "off",
        "why": "no rate limit in guards",
    }
    json.dumps(data)


def test_require_parsing() -> None:
    assert parse_required(["M0004, m0019", "AML.M0004", ""]) == ("AML.M0004", "AML.M0019")
    with pytest.raises(InvalidInput, match="'M0020' is not an ATLAS mitigation"):
        parse_required(["M0020"])
    with pytest.raises(InvalidInput, match="not an ATLAS mitigation"):
        audit(require=["rate-limits"])


def test_cli_exit_codes_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "security", "audit")
    assert code == 0, err
    assert "M0019" in out
    assert all(f"M{i:04d}" in out for i in range(20))
    code, out, err = run_cli(capsys, "security", "audit", "--require", "M0011,M0014")
    assert code == 0, err
    assert "Required:" in out
    code, out, err = run_cli(
        capsys, "security", "audit", "--require", "M0011", "--require", "M0012"
    )
    assert code == 1
    assert err.strip() == (
        "required controls are not on: AML.M0012 is off: no kek_file: artifacts are stored "
        "in the clear"
    )
    code, out, err = run_cli(capsys, "security", "audit", "--json", "--require", "M0012")
    assert code == 1
    data = json.loads(out)
    assert data["missing"] == ["AML.M0012"]
    assert len(data["mitigations"]) == 20


def test_cli_bad_input_exits_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "security", "audit", "--require", "M99")
    assert code == 2
    assert "'M99' is not an ATLAS mitigation" in one_error_line(err)
    code, _, err = run_cli(capsys, "security", "audit", "no-such-deployment")
    assert code == 2
    one_error_line(err)


def test_cli_audits_a_stored_deployment_and_an_implicit_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mloop.serving._deployments import create_deployment, update_deployment

    _register_versions()
    create_deployment("churn-api", make_spec((Member(model="churn", version=2),)))
    code, out, err = run_cli(capsys, "security", "audit", "churn-api", "--require", "M0004")
    assert code == 1
    assert "AML.M0004 is off: no rate limit in guards" in err
    assert "churn-api" in out
    guards = Guards(rate_limit_per_key=RateLimit(rate=2.0, burst=5), output="label")
    update_deployment("churn-api", make_spec((Member(model="churn", version=2),), guards=guards))
    code, out, err = run_cli(
        capsys, "security", "audit", "churn-api", "--require", "M0002,M0004,M0007", "--json"
    )
    assert code == 0, err
    data = json.loads(out)
    assert (data["deployment"], data["revision"], data["missing"]) == ("churn-api", 2, [])
    code, out, err = run_cli(capsys, "security", "audit", "models:/churn/1", "--json")
    assert code == 0, err
    implicit = json.loads(out)
    assert implicit["deployment"] == "churn"
    assert implicit["mitigations"][7]["deployment"]["state"] == "off"  # M0007: raw data
