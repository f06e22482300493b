"""Trigger declarations: YAML short forms, exactly one event, and errors that say what to
write instead."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mloop.agent._trigger_spec import (
    Trigger,
    duration_ms,
    load_triggers,
    triggers_from_yaml,
)
from mloop.errors import InvalidInput

YAML = """
- name: nightly
  pipeline: mloop.agent:retraining_pipeline
  params: {data: churn@latest, trainer: churn_model:train}
  on: {schedule: "0  3 * * *"}
- name: on-drift
  pipeline: pkg.mod:fn
  cooldown: 6h
  on:
    alert: churn-drift
---
name: on-data
pipeline: pkg.mod:fn
on:
  dataset: churn
---
kind: Trigger
metadata: {name: slow}
spec:
  pipeline: pkg.mod:fn
  on:
    performance: {deployment: churn, metric: online_metric, below: 0.8, window: 30m}
"""


def test_yaml_with_lists_documents_and_short_forms() -> None:
    nightly, drift, data, slow = triggers_from_yaml(YAML)
    assert nightly.on.schedule is not None
    assert nightly.on.schedule.cron == "0 3 * * *"
    assert nightly.kind == "schedule"
    assert nightly.params["trainer"] == "churn_model:train"
    assert (drift.on.alert, drift.cooldown_ms) == ("churn-drift", 6 * 3_600_000)
    assert data.on.dataset is not None
    assert (data.on.dataset.name, data.on.dataset.param) == ("churn", "data")
    assert slow.name == "slow"
    assert slow.on.performance is not None
    assert slow.on.performance.window_ms == 30 * 60_000
    assert slow.on.performance.breached(0.79)
    assert not slow.on.performance.breached(0.8)
    assert [t.on.describe() for t in (nightly, data)] == [
        "schedule 0 3 * * * (UTC)",
        "new version of dataset churn",
    ]


def test_stored_form_round_trips() -> None:
    for trigger in triggers_from_yaml(YAML):
        stored = trigger.to_json()
        assert Trigger.parse(stored) == trigger
        assert "enabled" not in stored  # defaults are left out


def test_a_file_and_a_single_trigger(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(YAML)
    assert [t.name for t in load_triggers(path)] == ["nightly", "on-drift", "on-data", "slow"]
    with pytest.raises(InvalidInput, match="holds 4 triggers, not one"):
        Trigger.from_yaml(YAML)
    with pytest.raises(InvalidInput, match="does not exist"):
        load_triggers(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "a", "pipeline": "p:f", "on": {}}, "exactly one of alert, .* \\(found: none\\)"),
        (
            {"name": "a", "pipeline": "p:f", "on": {"alert": "r", "dataset": "d"}},
            "found: alert, dataset\\); make one trigger per event",
        ),
        ({"name": "a", "pipeline": "p.f", "on": {"alert": "r"}}, "'package.module:function'"),
        ({"name": "a b", "pipeline": "p:f", "on": {"alert": "r"}}, "name: trigger name 'a b'"),
        ({"name": "a", "pipeline": "p:f", "on": {"schedule": "0 3 * *"}}, "five fields"),
        ({"name": "a", "pipeline": "p:f", "on": {"schedule": "0 0 3 * * *"}}, "five fields"),
        ({"name": "a", "pipeline": "p:f", "on": {"schedule": "61 * * * *"}}, "cron"),
        (
            {"name": "a", "pipeline": "p:f", "on": {"alert": "r"}, "cooldwn": "1h"},
            "cooldwn: is not",
        ),
        ({"name": "a", "pipeline": "p:f", "on": {"alert": "r"}, "cooldown": "soon"}, "duration"),
        (
            {"name": "a", "pipeline": "p:f", "on": {"performance": {"deployment": "d"}}},
            "exactly one of below:",
        ),
        (
            {
                "name": "a",
                "pipeline": "p:f",
                "on": {"performance": {"deployment": "d", "below": 1, "above": 2}},
            },
            "exactly one of below:",
        ),
        (
            {
                "name": "a",
                "pipeline": "p:f",
                "on": {"performance": {"deployment": "d", "metric": "acc", "below": 1}},
            },
            "on.performance.metric",
        ),
        (
            {"name": "a", "pipeline": "p:f", "on": {"alert": "r"}, "params": {"x": float("nan")}},
            "JSON",
        ),
        (["not", "a", "mapping"], "must be a mapping"),
    ],
)
def test_bad_triggers_say_what_is_wrong(data: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Trigger.parse(data)


def test_bad_yaml_and_duplicates() -> None:
    with pytest.raises(InvalidInput, match="is not valid YAML"):
        triggers_from_yaml("name: [unclosed")
    with pytest.raises(InvalidInput, match="defines trigger 'a' more than once"):
        triggers_from_yaml("- {name: a, pipeline: p:f, on: {alert: r}}\n" * 2)
    with pytest.raises(InvalidInput, match=r"t.yaml \(trigger 2\): pipeline"):
        triggers_from_yaml(
            "- {name: a, pipeline: p:f, on: {alert: r}}\n- {name: b, pipeline: x, on: {alert: r}}",
            source="t.yaml",
        )


@given(
    st.integers(min_value=1, max_value=10**6),
    st.sampled_from([("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]),
    st.sampled_from(["", " "]),
)
def test_durations_parse_to_milliseconds(amount: int, unit: tuple[str, int], space: str) -> None:
    assert duration_ms(f"{amount}{space}{unit[0]}") == amount * unit[1]


@pytest.mark.parametrize("bad", ["0s", "-1m", "1w", "", "m", True, 0])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(InvalidInput):
        duration_ms(bad)


NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
ONS = st.one_of(
    NAMES.map(lambda n: {"alert": n}),
    NAMES.map(lambda n: {"dataset": n}),
    st.tuples(NAMES, NAMES).map(lambda p: {"dataset": {"name": p[0], "param": p[1]}}),
    st.sampled_from(["0 3 * * *", "*/5 * * * *", "@hourly", "30 2 1 * 1-5"]).map(
        lambda c: {"schedule": c}
    ),
    st.tuples(NAMES, st.floats(-1e6, 1e6), st.booleans(), st.integers(1, 90)).map(
        lambda p: {
            "performance": {
                "deployment": p[0],
                ("below" if p[2] else "above"): p[1],
                "window": f"{p[3]}m",
            }
        }
    ),
)


@settings(max_examples=80, deadline=None)
@given(
    NAMES,
    ONS,
    st.dictionaries(st.text(min_size=1, max_size=8), JSON_VALUES, max_size=4),
    st.booleans(),
    st.one_of(st.none(), st.sampled_from(["30s", "1h", "2d"])),
)
def test_any_trigger_survives_yaml_and_the_stored_form(
    name: str, on: dict[str, object], params: dict[str, object], enabled: bool, cooldown: str | None
) -> None:
    import yaml

    data: dict[str, object] = {"name": name, "pipeline": "pkg.mod:fn", "on": on, "params": params}
    data["enabled"] = enabled
    if cooldown is not None:
        data["cooldown"] = cooldown
    trigger = Trigger.parse(data)
    assert Trigger.parse(trigger.to_json()) == trigger
    (again,) = triggers_from_yaml(yaml.safe_dump([trigger.to_json()]))
    assert again == trigger
    assert again.kind == next(iter(on))
