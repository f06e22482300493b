"""Rollout plans: the default, the short step forms, durations in canonical form (property
tests: any plan dumps and loads back equal), and errors that name the field and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mloop.agent import RolloutPlan, Step
from mloop.agent._plans import format_duration
from mloop.agent._trigger_spec import duration_ms
from mloop.errors import InvalidInput


def test_the_default_plan() -> None:
    plan = RolloutPlan()
    assert plan.describe() == "shadow 10m → canary 5% 10m → canary 25% 10m → canary 50% 10m → 100%"
    assert [s.role for s in plan.steps] == ["shadow", "canary", "canary", "canary", "primary"]
    assert plan.promote_alias == "champion"
    assert plan.checks.min_requests == 100
    assert RolloutPlan.parse(None) == plan
    assert RolloutPlan.parse({}) == plan


@pytest.mark.parametrize(
    ("text", "traffic", "window"),
    [
        ("shadow 10m", "shadow", "10m"),
        ("Shadow for 90s", "shadow", "90s"),
        ("canary 5% 10m", 5.0, "10m"),
        ("25% 1h", 25.0, "1h"),
        ("2.5% 600s", 2.5, "10m"),
        ("100%", 100.0, None),
    ],
)
def test_short_step_forms(text: str, traffic: str | float, window: str | None) -> None:
    step = Step.model_validate(text)
    assert (step.traffic, step.window) == (traffic, window)
    assert Step.model_validate({"traffic": f"{traffic}", "window": window}) == step


def test_a_yaml_file_and_its_config_as_code_form(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(
        "steps:\n  - {traffic: shadow, window: 30m}\n  - canary 10% 1h\n  - 100%\n"
        "checks:\n  max_p99_latency_ratio: null\n  min_requests: 500\n  max_wait: 3h\n"
        "promote_alias: prod\n"
    )
    plan = RolloutPlan.from_yaml(path)
    assert plan.describe() == "shadow 30m → canary 10% 1h → 100%"
    assert (plan.checks.max_p99_latency_ratio, plan.checks.max_wait_ms) == (None, 3 * 3600_000)
    assert plan.promote_alias == "prod"
    wrapped = {"kind": "RolloutPlan", "metadata": {"name": "x"}, "spec": plan.to_json()}
    assert RolloutPlan.parse(wrapped) == plan
    path.write_text("")
    assert RolloutPlan.from_yaml(path) == RolloutPlan()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"steps": ["shadow 10m"]}, "the last step must give the candidate all traffic"),
        ({"steps": ["100%", "100%"]}, "steps[0]: only the last step may take 100%"),
        ({"steps": ["10% 5m", "10% 5m", "100%"]}, "steps[1]: canary 10% does not grow"),
        ({"steps": ["10% 5m", "shadow 5m", "100%"]}, "steps[1]: a shadow step after a canary"),
        ({"steps": ["shadow", "100%"]}, "steps[0] (shadow) needs a window"),
        ({"steps": ["5% 1m", "100% 1m"]}, "steps[1]: the last step (100%) ends the rollout"),
        ({"steps": ["half 10m", "100%"]}, "steps[0]: step 'half 10m' is not valid"),
        ({"steps": [{"traffic": 0, "window": "1m"}, "100%"]}, "steps[0].traffic: traffic 0%"),
        ({"steps": [{"traffic": True}]}, "steps[0].traffic: traffic is 'shadow' or a percent"),
        ({"steps": [{"traffic": "lots"}]}, "traffic 'lots' is not valid"),
        ({"steps": ["5% soon", "100%"]}, "steps[0].window: window 'soon' is not a duration"),
        ({"checks": {"max_wait": "5m"}}, "checks.max_wait (5m) is shorter than the longest"),
        ({"checks": {"max_divergence": 2}}, "checks.max_divergence: Input should be less"),
        ({"checks": {"min_requests": 0}}, "checks.min_requests: Input should be greater"),
        ({"checks": {"on_insufficient_traffic": "wait"}}, "checks.on_insufficient_traffic"),
        ({"chekcs": {}}, "chekcs: unknown field; check its spelling"),
        ({"promote_alias": "not an alias"}, "promote_alias: alias 'not an alias' is not valid"),
        ("steps", "a rollout plan is a mapping with steps and checks, not str"),
    ],
)
def test_errors_name_the_field_and_the_fix(data: object, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        RolloutPlan.parse(data, source="plan.yaml")
    assert caught.value.message.startswith("plan.yaml: ")
    assert message in caught.value.message


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"plan file .* does not exist"):
        RolloutPlan.from_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [shadow 10m\n")
    with pytest.raises(InvalidInput, match=r"bad\.yaml is not valid YAML"):
        RolloutPlan.from_yaml(bad)


def test_the_json_schema_describes_the_fields() -> None:
    schema = RolloutPlan.model_json_schema()
    assert set(schema["properties"]) == {"steps", "checks", "promote_alias", "description"}
    assert "min_requests" in schema["$defs"]["Checks"]["properties"]


# -- properties -------------------------------------------------------------------------------

units = st.sampled_from(
    [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
)


@given(st.integers(min_value=1, max_value=10**6), units)
def test_durations_have_one_canonical_form(amount: int, unit: tuple[str, int]) -> None:
    milliseconds = amount * unit[1]
    text = format_duration(milliseconds)
    assert duration_ms(text) == milliseconds
    assert format_duration(duration_ms(f"{amount}{unit[0]}")) == text


@st.composite
def plans(draw: st.DrawFn) -> RolloutPlan:
    windows = st.integers(min_value=1, max_value=600).map(lambda s: f"{s}s")
    steps: list[object] = []
    if draw(st.booleans()):
        steps.append(f"shadow {draw(windows)}")
    percents = sorted(set(draw(st.lists(st.integers(1, 99), max_size=4))))
    steps.extend(
        {"traffic": p, "window": draw(windows)} if draw(st.booleans()) else f"{p}% {draw(windows)}"
        for p in percents
    )
    steps.append("100%")
    checks = {
        "min_requests": draw(st.integers(1, 10_000)),
        "max_divergence": draw(st.none() | st.floats(0, 1)),
        "max_wait": draw(st.none() | st.just("2h")),
        "on_insufficient_traffic": draw(st.sampled_from(["rollback", "advance"])),
    }
    alias = draw(st.none() | st.sampled_from(["champion", "prod", "_blue-1"]))
    return RolloutPlan.parse({"steps": steps, "checks": checks, "promote_alias": alias})


@given(plans())
def test_a_plan_dumps_and_loads_back_the_same(plan: RolloutPlan) -> None:
    assert RolloutPlan.parse(plan.to_json()) == plan
    assert RolloutPlan.parse(plan.model_dump(mode="json", exclude_defaults=True)) == plan
    assert plan.steps[-1].is_full
    described = plan.describe().split(" → ")
    assert [Step.model_validate(d) for d in described] == list(plan.steps)


def test_the_published_schema_accepts_what_the_model_accepts() -> None:
    import jsonschema

    schema = RolloutPlan.model_json_schema()
    good = {"steps": ["shadow 10m", "Shadow for 5m", "canary 5% 10m", {"traffic": 50,
            "window": "1h"}, "100%"], "checks": {"min_requests": 5}}  # fmt: skip
    jsonschema.validate(good, schema)
    for bad in ({"steps": ["half 10m"]}, {"steps": [{"traffic": "x"}]}, {"chekcs": {}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
