"""Output obfuscation (M0002): each mode says exactly as much as it should and no more."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mloop.errors import InvalidInput
from mloop.serving._obfuscation import check_output_guards, obfuscate


@dataclass(frozen=True)
class G:
    output: Any = "full"
    top_k: int = 1
    digits: int = 2


CLASSES = np.array(["setosa", "versicolor", "virginica"])
PROBS = np.array([[0.81234, 0.15, 0.03766], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]])


def probability_matrices() -> st.SearchStrategy[np.ndarray]:
    shape = st.tuples(st.integers(1, 20), st.integers(1, 8))
    return shape.flatmap(
        lambda s: hnp.arrays(np.float64, s, elements=st.floats(0.0, 1.0, width=32))
    )


def test_full_returns_everything_unchanged() -> None:
    outputs = {"predictions": np.array(["setosa"]), "probabilities": PROBS[:1]}
    result = obfuscate(outputs, G("full"), CLASSES)
    assert result.keys() == outputs.keys()
    assert result["probabilities"] is outputs["probabilities"]


def test_label_keeps_only_the_class() -> None:
    outputs = {
        "predictions": np.array(["setosa", "virginica", "versicolor"]),
        "probabilities": PROBS,
        "decision_function": PROBS * 3,
    }
    result = obfuscate(outputs, G("label"), CLASSES)
    assert list(result) == ["predictions"]
    assert result["predictions"].tolist() == ["setosa", "virginica", "versicolor"]


def test_label_derives_the_class_from_probabilities_when_the_model_gave_none() -> None:
    result = obfuscate({"probabilities": PROBS}, G("label"), CLASSES)
    assert result["predictions"].tolist() == ["setosa", "virginica", "versicolor"]
    by_index = obfuscate({"probabilities": PROBS}, G("label"), None)
    assert by_index["predictions"].tolist() == [0, 2, 1]


def test_top_k_gives_the_best_classes_with_their_probabilities_best_first() -> None:
    outputs = {
        "predictions": np.array(["setosa", "virginica", "versicolor"]),
        "probabilities": PROBS,
    }
    result = obfuscate(outputs, G("top_k", top_k=2), CLASSES)
    assert set(result) == {"predictions", "top_k_classes", "top_k_probabilities"}
    assert result["top_k_classes"].tolist() == [
        ["setosa", "versicolor"],
        ["virginica", "versicolor"],
        ["versicolor", "virginica"],
    ]
    np.testing.assert_allclose(
        result["top_k_probabilities"], [[0.81234, 0.15], [0.6, 0.3], [0.5, 0.3]]
    )


def test_top_k_larger_than_the_classes_lists_them_all() -> None:
    result = obfuscate({"probabilities": PROBS}, G("top_k", top_k=10), CLASSES)
    assert result["top_k_classes"].shape == (3, 3)


def test_ties_go_to_the_class_listed_first_as_argmax_does() -> None:
    result = obfuscate({"probabilities": np.array([[0.4, 0.4, 0.2]])}, G("top_k", top_k=1), CLASSES)
    assert result["top_k_classes"].tolist() == [["setosa"]]
    assert result["predictions"].tolist() == ["setosa"]


def test_rounded_rounds_floats_and_leaves_labels() -> None:
    outputs = {
        "predictions": np.array(["setosa", "virginica", "versicolor"]),
        "probabilities": PROBS,
    }
    result = obfuscate(outputs, G("rounded", digits=1), CLASSES)
    assert result["predictions"].tolist() == outputs["predictions"].tolist()
    np.testing.assert_array_equal(result["probabilities"][0], [0.8, 0.2, 0.0])


def test_rounded_regression_values() -> None:
    result = obfuscate({"predictions": np.array([1.23456, -7.891])}, G("rounded", digits=2))
    np.testing.assert_array_equal(result["predictions"], [1.23, -7.89])


def test_top_k_without_probabilities_falls_back_to_the_label() -> None:
    """A regressor under top_k: the stricter answer, never the full one."""
    outputs = {"predictions": np.array([3.5, 4.25]), "raw": np.array([[1.0], [2.0]])}
    result = obfuscate(outputs, G("top_k", top_k=3))
    assert list(result) == ["predictions"]


def test_the_input_is_not_changed() -> None:
    probs = PROBS.copy()
    obfuscate({"probabilities": probs}, G("rounded", digits=0), CLASSES)
    obfuscate({"probabilities": probs}, G("top_k", top_k=2), CLASSES)
    np.testing.assert_array_equal(probs, PROBS)


@pytest.mark.parametrize(
    ("outputs", "classes", "needle"),
    [
        ({"logits": np.zeros((2, 3))}, CLASSES, "neither 'predictions' nor 'probabilities'"),
        ({"probabilities": np.zeros(3)}, CLASSES, r"\[rows, classes\] matrix"),
        ({"probabilities": np.zeros((2, 4))}, CLASSES, "names 3 classes but gave 4"),
    ],
)
def test_outputs_that_cannot_be_obfuscated_are_named(
    outputs: dict[str, np.ndarray], classes: np.ndarray, needle: str
) -> None:
    with pytest.raises(InvalidInput, match=needle):
        obfuscate(outputs, G("label"), classes)


@pytest.mark.parametrize(
    ("guards", "needle"),
    [
        (G("secret"), "guards.output must be one of"),
        (G("top_k", top_k=0), "top_k must be at least 1"),
        (G("rounded", digits=-1), "digits must be between 0 and 15"),
    ],
)
def test_settings_no_response_could_honour_are_refused(guards: G, needle: str) -> None:
    with pytest.raises(InvalidInput, match=needle):
        check_output_guards(guards)
    with pytest.raises(InvalidInput, match=needle):
        obfuscate({"probabilities": PROBS}, guards, CLASSES)


@settings(max_examples=150, deadline=None)
@given(probs=probability_matrices(), k=st.integers(1, 10))
def test_top_k_are_the_k_largest_in_order_and_match_their_columns(
    probs: np.ndarray, k: int
) -> None:
    classes = np.array([f"c{i}" for i in range(probs.shape[1])])
    result = obfuscate({"probabilities": probs}, G("top_k", top_k=k), classes)
    chosen, values = result["top_k_classes"], result["top_k_probabilities"]
    kk = min(k, probs.shape[1])
    assert chosen.shape == values.shape == (probs.shape[0], kk)
    assert np.all(np.diff(values, axis=1) <= 0)  # best first
    for row in range(probs.shape[0]):
        columns = [int(c[1:]) for c in chosen[row]]
        assert len(set(columns)) == kk
        np.testing.assert_array_equal(probs[row, columns], values[row])
        rest = np.delete(probs[row], columns)
        assert rest.size == 0 or rest.max() <= values[row, -1]
    assert result["predictions"].tolist() == classes[np.argmax(probs, axis=1)].tolist()
    assert result["top_k_classes"][:, 0].tolist() == result["predictions"].tolist()


@settings(max_examples=150, deadline=None)
@given(probs=probability_matrices(), digits=st.integers(0, 6))
def test_rounding_moves_no_value_more_than_half_a_unit_of_the_last_digit(
    probs: np.ndarray, digits: int
) -> None:
    result = obfuscate({"probabilities": probs}, G("rounded", digits=digits))
    rounded = result["probabilities"]
    assert np.all(np.abs(rounded - probs) <= 0.5 * 10.0**-digits + 1e-12)
    np.testing.assert_array_equal(np.round(rounded, digits), rounded)


@settings(max_examples=100, deadline=None)
@given(probs=probability_matrices())
def test_label_never_leaks_a_score(probs: np.ndarray) -> None:
    result = obfuscate({"probabilities": probs, "scores": probs}, G("label"))
    assert list(result) == ["predictions"]
    assert result["predictions"].shape == (probs.shape[0],)


def test_a_deployments_guards_drive_it() -> None:
    from mloop.serving._spec import Guards

    result = obfuscate({"probabilities": PROBS}, Guards(output="top_k", top_k=2), CLASSES)
    assert result["top_k_classes"][1].tolist() == ["virginica", "versicolor"]
    assert list(obfuscate({"probabilities": PROBS}, Guards(), CLASSES)) == ["probabilities"]
