"""Gate YAML: what parses, and that every mistake is one clear error naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mloop.errors import InvalidInput, NotFound
from mloop.evaluation import GateSpec

FULL = """
metric: roc_auc
min_improvement: 0.01
require_baseline: true
thresholds:
  accuracy: {min: 0.8}
  log_loss: {max: 0.5}
slices: {min_rows: 50, max_regression: 0.02}
fairness:
  max_demographic_parity_difference: 0.1
  max_equalized_odds_difference: 0.15
robustness: {max_drop: 0.05, perturbations: [noise]}
backdoor: {max_flip_rate: 0.01}
"""


def test_a_full_gate_parses_and_round_trips_through_yaml(tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text(FULL)
    gate = GateSpec.from_yaml(path)
    assert gate.metric == "roc_auc"
    assert gate.min_improvement == 0.01
    assert gate.thresholds["accuracy"].min == 0.8
    assert gate.thresholds["log_loss"].max == 0.5
    assert gate.slices is not None
    assert gate.slices.min_rows == 50
    assert gate.robustness is not None
    assert gate.robustness.perturbations == ("noise",)
    assert GateSpec.from_yaml_text(gate.to_yaml()) == gate
    assert GateSpec.parse(gate.to_json()) == gate


def test_an_empty_file_is_a_gate_with_no_rules(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert GateSpec.from_yaml(path) == GateSpec()
    assert GateSpec().to_json() == {}


def test_configuration_as_code_documents_are_unwrapped() -> None:
    doc = {"kind": "Gate", "name": "strict", "spec": {"metric": "f1", "min_improvement": 0}}
    assert GateSpec.parse(doc).metric == "f1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metrc: f1", "metrc: is not a gate field (check the spelling"),
        ("metric: auc", "metric: unknown metric 'auc'; use one of accuracy, precision"),
        ("thresholds: {acc: {min: 0.8}}", "unknown metric 'acc'"),
        ("thresholds: {accuracy: {}}", "thresholds.accuracy: give min, max or both"),
        ("thresholds: {accuracy: {min: 0.9, max: 0.8}}", "min 0.9 is above max 0.8"),
        (
            "slices: {min_rows: 0, max_regression: 0.1}",
            "slices.min_rows: Input should be greater than or equal to 1",
        ),
        ("slices: {min_rows: 10}", "slices.max_regression: Field required"),
        ("fairness: {max_demographic_parity_difference: 2}", "less than or equal to 1"),
        (
            "robustness: {max_drop: -0.1}",
            "robustness.max_drop: Input should be greater than or equal to 0",
        ),
        (
            "robustness: {max_drop: 0.1, perturbations: [blur]}",
            "robustness.perturbations.0: Input should be 'noise' or 'missing'",
        ),
        ("backdoor: {max_flip_rate: 1.5}", "backdoor.max_flip_rate"),
        ("min_improvement: lots", "min_improvement: Input should be a valid number"),
        ("- metric: f1", "a gate is a mapping of rules"),
        ("metric: [f1", "at line 1, column"),
    ],
)
def test_mistakes_are_named(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=r"gate\.yaml: ") as raised:
        GateSpec.from_yaml_text(text)
    assert message in raised.value.message
    assert "\n" not in raised.value.message


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        GateSpec.from_yaml(tmp_path / "nope.yaml")


@settings(max_examples=50, deadline=None)
@given(
    improvement=st.none() | st.floats(-1, 1, allow_nan=False),
    rows=st.integers(1, 10_000),
    regression=st.floats(0, 1, allow_nan=False),
    parity=st.none() | st.floats(0, 1, allow_nan=False),
    metric=st.none() | st.sampled_from(["accuracy", "f1", "roc_auc", "rmse"]),
)
def test_any_valid_gate_survives_yaml(
    improvement: float | None,
    rows: int,
    regression: float,
    parity: float | None,
    metric: str | None,
) -> None:
    gate = GateSpec.parse(
        {
            "metric": metric,
            "min_improvement": improvement,
            "slices": {"min_rows": rows, "max_regression": regression},
            "fairness": {"max_demographic_parity_difference": parity},
        }
    )
    assert GateSpec.from_yaml_text(gate.to_yaml()) == gate
