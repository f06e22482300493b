"""Round trip (hypothesis) over generated Deployment specs, on SQLite and PostgreSQL: export
after apply gives back the applied spec, the exported documents apply as unchanged, and
applying a document twice changes nothing the second time (no new revision)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mloop.iac import apply, export
from mloop.iac._kind_deployment import DeploymentKind
from mloop.registry import register_model_version
from mloop.serving import deployment_history
from mloop.serving._spec import DeploymentSpec, Guards, Member, RateLimit
from tests.unit.iac.conftest import DIGESTS, IRIS_VERSIONS

_unit = st.floats(0.01, 0.99, allow_nan=False)
_rates = st.builds(
    RateLimit,
    rate=st.floats(0.001, 1e6, allow_nan=False, allow_infinity=False),
    burst=st.integers(1, 10_000),
)
_guards = st.builds(
    Guards,
    auth=st.sampled_from(["auto", "on", "off"]),
    rate_limit_per_key=st.none() | _rates,
    output=st.sampled_from(["full", "label", "top_k", "rounded"]),
    top_k=st.integers(1, 5),
    digits=st.integers(0, 15),
    atypical=st.sampled_from(["off", "log", "flag", "reject"]),
    atypical_threshold=_unit,
    review_threshold=st.none() | _unit,
    max_batch_wait_ms=st.floats(0, 60_000, allow_nan=False),
)


@st.composite
def specs(draw: st.DrawFn) -> DeploymentSpec:
    versions = draw(st.permutations(range(1, IRIS_VERSIONS + 1)))
    combine = draw(st.sampled_from(["none", "none", "vote", "mean"]))
    primaries = 1 if combine == "none" else draw(st.integers(2, 3))
    canaries = 0 if combine != "none" else draw(st.integers(0, 2))
    shadows = draw(st.integers(0, 2))
    members = [Member(model="iris", version=v) for v in versions[:primaries]]
    left = 99.0
    for v in versions[primaries : primaries + canaries]:
        weight = draw(st.floats(0.5, left / 2, allow_nan=False))
        left -= weight
        members.append(Member(model="iris", version=v, role="canary", weight=weight))
    start = primaries + canaries
    members += [
        Member(model="iris", version=v, role="shadow") for v in versions[start : start + shadows]
    ]
    order = draw(st.permutations(members))
    return DeploymentSpec(
        members=tuple(order),
        combine=combine,
        guards=draw(_guards),
        preprocessing=draw(st.sampled_from([None, "models:/features/1"])),
    )


@pytest.fixture
def features(iris: str) -> str:
    """iris versions and a fitted transformer to preprocess with."""
    register_model_version("features", "/f", package_digest=DIGESTS[-1])
    return iris


def _document(name: str, spec: DeploymentSpec) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "mloop/v1",
            "kind": "Deployment",
            "metadata": {"name": name},
            "spec": spec.model_dump(mode="json"),  # every field, defaults included
        },
        sort_keys=False,
    )


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(spec=specs())
def test_export_after_apply_is_identity_and_apply_is_idempotent(
    features: str, tmp_path: Path, spec: DeploymentSpec
) -> None:
    """One database for all examples, so later examples update what earlier ones made."""
    source = tmp_path / "in" / "rt.yaml"
    source.parent.mkdir(exist_ok=True)
    source.write_text(_document("rt", spec), encoding="utf-8")

    first = apply(source)
    revisions = len(deployment_history("rt"))
    assert [c.action for c in first.changes] in (["create"], ["update"], ["unchanged"])
    assert [c.action for c in apply(source).changes] == ["unchanged"]  # idempotent

    exported = export(tmp_path / "out", kinds_wanted=["Deployment"])
    (document,) = [d for d in exported.documents if d["metadata"]["name"] == "rt"]
    assert document["spec"] == DeploymentKind().dump(spec)  # export ∘ apply = identity
    assert DeploymentSpec.model_validate(document["spec"]) == spec
    assert [c.action for c in apply(tmp_path / "out").changes] == ["unchanged"]
    assert len(deployment_history("rt")) == revisions  # nothing was written again
