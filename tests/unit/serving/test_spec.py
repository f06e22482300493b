"""Deployment specs: the structural rules, errors that name the field and the fix, spec files,
version references, and the stored form round-tripping (hypothesis)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mloop.errors import InvalidInput
from mloop.serving._spec import (
    Deployment,
    DeploymentSpec,
    Guards,
    Member,
    RateLimit,
    edit_spec,
    guard_setting,
    member_ref,
    parse_spec,
    read_spec_file,
)


def _m(version: int, role: str = "primary", weight: float = 0.0, model: str = "iris") -> dict:
    return {"model": model, "version": version, "role": role, "weight": weight}


def _error(data: Any) -> str:
    with pytest.raises(InvalidInput) as raised:
        parse_spec(data, source="deployment.yaml")
    return raised.value.message


def test_a_minimal_spec_has_safe_defaults() -> None:
    spec = parse_spec({"members": [{"model": "iris", "version": 3}]})
    assert spec.members == (Member(model="iris", version=3),)
    assert (spec.combine, spec.guards, spec.preprocessing) == ("none", Guards(), None)
    assert spec.primary.ref == "iris:3"
    assert spec.primary.uri == "models:/iris/3"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"members": []}, "deployment.yaml: members is empty; list at least the primary"),
        ({}, "deployment.yaml: members: required field is missing"),
        (
            {"members": [_m(1), _m(2)]},
            "needs exactly one primary member (found iris:1, iris:2); give the others role: canary",
        ),
        ({"members": [_m(1, "canary", 10)]}, "needs exactly one primary member (found none)"),
        (
            {"members": [_m(1), _m(2, "canary", 0)]},
            "members[1].weight: canary weight 0.0 is not valid; give the percent of traffic it "
            "takes, more than 0 and less than 100",
        ),
        ({"members": [_m(1), _m(2, "canary", 100)]}, "members[1].weight: canary weight 100.0"),
        (
            {"members": [_m(1), _m(2, "canary", 60), _m(3, "canary", 40)]},
            "canary weights add up to 100%, leaving the primary nothing",
        ),
        (
            {"members": [_m(1), _m(2, "shadow", 5)]},
            "members[1].weight: a shadow has no weight (a shadow gets a copy of every request",
        ),
        ({"members": [_m(1, weight=50)]}, "members[0].weight: a primary has no weight"),
        ({"members": [_m(1), _m(1, "shadow")]}, "iris:1 is listed twice"),
        (
            {"members": [_m(1), _m(2, "boss")]},
            "members[1].role: 'boss' is not one of the choices",
        ),
        ({"members": [_m(0)]}, "members[0].version: version 0 is not valid"),
        ({"members": [_m(True)]}, "members[0].version: True is not a number"),
        ({"members": [_m(1, model="-iris")]}, "members[0].model: model name '-iris' is not valid"),
        (
            {"members": [_m(1)], "guards": {"rate_limt_per_key": {}}},
            "guards.rate_limt_per_key: unknown field; check its spelling",
        ),
        (
            {"members": [_m(1)], "guards": {"rate_limit_per_key": {"rate": 0, "burst": 1}}},
            "guards.rate_limit_per_key.rate: Input should be greater than 0",
        ),
        ({"members": [_m(1)], "guards": {"top_k": 0}}, "guards.top_k: Input should be greater"),
        ({"members": [_m(1)], "combine": "vote"}, "needs at least two primary members (found 1)"),
        (
            {"members": [_m(1), _m(2), _m(3, "canary", 5)], "combine": "mean"},
            "canaries cannot take a share of it",
        ),
        ({"members": [_m(1)], "preprocessing": "/tmp/x.pkl"}, "not a registered model URI"),
        (["iris:1"], "a deployment spec must be a mapping with 'members'"),
        (
            {"members": [{"model": "iris", "version": "@champion"}]},
            "members[0].version: '@champion' is a reference the registry must resolve",
        ),
        (
            {"members": [{"model": "iris@champion", "version": 2}]},
            "members[0]: model 'iris@champion' already names a version; drop version: 2",
        ),
        ({"members": [{"model": "iris:x y"}]}, "members[0].model: version reference 'x y'"),
    ],
)
def test_bad_specs_name_the_field_and_the_fix(data: Any, message: str) -> None:
    error = _error(data)
    assert error.startswith("deployment.yaml: ")
    assert message in error


def test_several_errors_are_reported_together() -> None:
    error = _error({"members": [_m(1)], "guards": {"digits": -1, "output": "blurred"}})
    assert "guards.output: 'blurred' is not one of the choices" in error
    assert "guards.digits: Input should be greater than or equal to 0" in error


def test_version_references_resolve_through_the_resolver() -> None:
    asked: list[tuple[str, int | str]] = []

    def resolve(model: str, ref: int | str) -> int:
        asked.append((model, ref))
        return {"@champion": 7, "latest": 9}[str(ref)]

    spec = parse_spec(
        {
            "members": [
                {"model": "models:/iris@champion"},
                {"model": "iris", "version": "latest", "role": "shadow"},
                {"model": "wine:3", "role": "shadow"},
                {"model": "beer", "version": "4", "role": "shadow"},
            ]
        },
        resolve=resolve,
    )
    assert [m.ref for m in spec.members] == ["iris:7", "iris:9", "wine:3", "beer:4"]
    assert asked == [("iris", "@champion"), ("iris", "latest")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("iris:3", ("iris", 3)),
        ("iris/3", ("iris", 3)),
        ("models:/iris/3", ("iris", 3)),
        ("iris@champion", ("iris", "@champion")),
        ("models:/iris@champion", ("iris", "@champion")),
        ("iris:latest", ("iris", "latest")),
        ("my.model-2:10", ("my.model-2", 10)),
    ],
)
def test_member_references(text: str, expected: tuple[str, int | str]) -> None:
    assert member_ref(text) == expected


@given(st.text(max_size=30))
def test_any_member_reference_parses_or_says_why(text: str) -> None:
    try:
        name, ref = member_ref(text)
    except InvalidInput as error:
        refused = error
    else:
        refused = None
    if refused is not None:
        assert refused.message
        return
    assert isinstance(ref, int) or ref == "latest" or ref.startswith("@")
    again = f"{name}:{ref}" if isinstance(ref, int) or ref == "latest" else f"{name}{ref}"
    assert member_ref(again) == (name, ref)


@st.composite
def valid_specs(draw: st.DrawFn) -> DeploymentSpec:
    names = st.from_regex(r"[a-z][a-z0-9_.-]{0,10}", fullmatch=True)
    model = draw(names)
    members = [Member(model=model, version=draw(st.integers(1, 10**6)))]
    weights = draw(st.lists(st.floats(0.01, 33.0), max_size=3))
    for i, w in enumerate(weights):
        members.append(Member(model=f"{model}-c{i}", version=1, role="canary", weight=w))
    for i in range(draw(st.integers(0, 2))):
        members.append(Member(model=f"{model}-s{i}", version=2, role="shadow"))
    limit = st.none() | st.builds(
        RateLimit, rate=st.floats(0.001, 1e6), burst=st.integers(1, 10**6)
    )
    guards = Guards(
        auth=draw(st.sampled_from(["auto", "on", "off"])),
        rate_limit_per_key=draw(limit),
        rate_limit_per_deployment=draw(limit),
        output=draw(st.sampled_from(["full", "label", "top_k", "rounded"])),
        top_k=draw(st.integers(1, 100)),
        digits=draw(st.integers(0, 15)),
        atypical=draw(st.sampled_from(["off", "log", "flag", "reject"])),
        atypical_threshold=draw(st.floats(0.001, 0.999)),
        review_threshold=draw(st.none() | st.floats(0, 1)),
        max_batch_size=draw(st.integers(1, 4096)),
        max_batch_wait_ms=draw(st.floats(0, 1000)),
        max_request_bytes=draw(st.integers(1, 2**40)),
    )
    preprocessing = draw(st.none() | st.just(f"models:/{model}-prep/1"))
    return DeploymentSpec(
        members=tuple(draw(st.permutations(members))), guards=guards, preprocessing=preprocessing
    )


@given(valid_specs())
def test_the_stored_form_round_trips_through_json(spec: DeploymentSpec) -> None:
    stored = json.loads(json.dumps(spec.to_json()))
    assert stored["format_version"] == 1
    assert DeploymentSpec.from_json(stored) == spec
    assert parse_spec(stored) == spec  # what `deploy show --json` prints is a valid file


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=12,
    )
)
def test_any_document_is_a_spec_or_invalid_input(data: Any) -> None:
    for candidate in (
        data,
        {"members": data},
        {"members": [data]},
        {"members": [_m(1)], "guards": data},
    ):
        try:
            parse_spec(candidate, resolve=lambda model, ref: 1)
        except InvalidInput as error:
            refused: InvalidInput | None = error
        else:
            refused = None
        assert refused is None or refused.message


def test_stored_specs_from_a_newer_mloop_are_refused() -> None:
    with pytest.raises(InvalidInput, match="format version 2; this mloop reads version 1"):
        DeploymentSpec.from_json({"format_version": 2, "members": [_m(1)]})


def test_specs_are_frozen() -> None:
    spec = parse_spec({"members": [_m(1)]})
    with pytest.raises(ValueError, match="frozen"):
        spec.combine = "vote"  # type: ignore[misc]
    deployment = Deployment(name="d", revision=1, spec=spec, created_time=1, created_by="ada")
    assert deployment.reason is None


def test_spec_files_in_yaml_and_json(tmp_path: Path) -> None:
    yaml_file = tmp_path / "deployment.yaml"
    yaml_file.write_text(
        "name: fraud\n"
        "members:\n"
        "  - model: iris:3\n"
        "  - {model: iris, version: 4, role: canary, weight: 10}\n"
        "guards:\n"
        "  output: top_k\n"
        "  top_k: 2\n"
        "  rate_limit_per_key: {rate: 5, burst: 10}\n"
    )
    name, data = read_spec_file(yaml_file)
    spec = parse_spec(data, source=yaml_file.name)
    assert name == "fraud"
    assert [m.ref for m in spec.members] == ["iris:3", "iris:4"]
    assert spec.guards.rate_limit_per_key == RateLimit(rate=5, burst=10)
    json_file = tmp_path / "deployment.json"
    json_file.write_text(json.dumps(spec.model_dump(mode="json")))
    assert read_spec_file(json_file) == (None, spec.model_dump(mode="json"))


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("d.yaml", "members:\n  - model: iris:3\n   bad: [", "d.yaml: line 3: not valid YAML"),
        ("d.json", '{"members": [}', "d.json: line 1: not valid JSON"),
        ("d.yaml", "- iris:3\n", "d.yaml: the file must hold a mapping with 'members'"),
        ("d.yaml", "name: [1]\nmembers: []\n", "d.yaml: name: must be a string"),
        ("d.yaml", "!!python/object:os.system {}\n", "not valid YAML"),
    ],
)
def test_bad_spec_files_say_where(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InvalidInput) as raised:
        read_spec_file(path)
    assert message in raised.value.message


def test_a_missing_spec_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        read_spec_file(tmp_path / "nope.yaml")


def test_editing_a_spec_replaces_only_the_roles_given() -> None:
    base = parse_spec(
        {
            "members": [_m(1), _m(2, "canary", 10), _m(3, "shadow")],
            "guards": {"output": "label", "top_k": 2},
        }
    )
    ramped = parse_spec(edit_spec(base, canaries=[("iris:2", 50)]))
    assert [(m.ref, m.role, m.weight) for m in ramped.members] == [
        ("iris:1", "primary", 0.0), ("iris:2", "canary", 50.0), ("iris:3", "shadow", 0.0),
    ]  # fmt: skip
    promoted = parse_spec(edit_spec(base, primaries=["iris:2"], canaries=[], shadows=[]))
    assert promoted.members == (Member(model="iris", version=2),)
    assert promoted.guards == base.guards
    guarded = parse_spec(edit_spec(base, guards={"top_k": "3", "review_threshold": None}))
    assert (guarded.guards.output, guarded.guards.top_k) == ("label", 3)
    fresh = edit_spec(None, primaries=["iris@champion"], shadows=["wine:1"], combine="none")
    assert fresh == {
        "members": [{"model": "iris@champion"}, {"model": "wine:1", "role": "shadow"}],
        "combine": "none",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("output=label", ("output", "label")),
        (" top_k = 3 ", ("top_k", "3")),
        ("rate_limit_per_key=10:20", ("rate_limit_per_key", {"rate": "10", "burst": "20"})),
        ("rate_limit_per_deployment=none", ("rate_limit_per_deployment", None)),
        ("review_threshold=off", ("review_threshold", None)),
    ],
)
def test_guard_settings_from_the_command_line(text: str, expected: tuple[str, Any]) -> None:
    assert guard_setting(text) == expected


@given(st.text(max_size=40))
def test_any_guard_setting_parses_or_says_why(text: str) -> None:
    try:
        key, value = guard_setting(text)
    except InvalidInput as error:
        refused: InvalidInput | None = error
    else:
        refused = None
        assert key in Guards.model_fields
        try:
            parse_spec({"members": [_m(1)], "guards": {key: value}})
        except InvalidInput as error:
            assert f"guards.{key}" in error.message  # noqa: PT017 (the value's own error)
    assert refused is None or refused.message
