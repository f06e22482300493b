"""Atypical-input detection (M0015) on the iris data: training rows are typical, rows far
outside are atypical with the right feature named; the JSON form round-trips exactly and
refuses anything malformed."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.datasets import load_iris

from mloop.data import statistics_of_table
from mloop.errors import InvalidInput
from mloop.serving._atypical import AtypicalDetector

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture(scope="module")
def iris() -> pd.DataFrame:
    frame = load_iris(as_frame=True).frame
    frame.columns = [*FEATURES, "species"]
    return frame


@pytest.fixture(scope="module")
def detector(iris: pd.DataFrame) -> AtypicalDetector:
    return AtypicalDetector.fit(iris, exclude=["species"])


def row(**values: float) -> pd.DataFrame:
    typical = {"sepal_length": 5.8, "sepal_width": 3.0, "petal_length": 4.35, "petal_width": 1.3}
    return pd.DataFrame([{**typical, **values}])


def test_training_rows_are_typical(detector: AtypicalDetector, iris: pd.DataFrame) -> None:
    strictest = detector.check(iris, quantile=1.0)
    assert strictest.count == 0
    usual = detector.check(iris, quantile=0.99)
    assert usual.count <= 3  # by construction about 1 % of training rows score above q99
    assert not any("range" in r for reasons in usual.reasons for r in reasons)


@pytest.mark.parametrize(
    ("feature", "value", "needle"),
    [
        ("petal_length", 15.0, "petal_length=15 is above the training range [1, 6.9]"),
        ("sepal_width", 0.5, "sepal_width=0.5 is below the training range [2, 4.4]"),
        ("petal_width", float("inf"), "petal_width=inf is not finite"),
        ("sepal_length", float("nan"), "sepal_length is missing (it never was in training)"),
    ],
)
def test_a_value_outside_the_training_data_is_atypical_and_named(
    detector: AtypicalDetector, feature: str, value: float, needle: str
) -> None:
    result = detector.check(row(**{feature: value}))
    assert result.atypical.tolist() == [True]
    assert needle in result.reasons[0]


def test_a_row_unlike_the_training_rows_is_caught_even_inside_every_range(
    detector: AtypicalDetector,
) -> None:
    """Setosa's sepals with virginica's petals: each value is ordinary, the mix is not."""
    odd = row(sepal_length=4.6, sepal_width=3.6, petal_length=6.4, petal_width=2.4)
    result = detector.check(odd)
    assert result.atypical.tolist() == [True]
    (reason,) = result.reasons[0]
    assert reason.startswith("outlier score")
    assert "0.99 quantile of the training rows" in reason
    assert result.scores[0] > 1.5 * detector.threshold(0.99)


def test_scores_rise_with_distance_from_the_data(detector: AtypicalDetector) -> None:
    scores = detector.score(pd.concat([row(), row(petal_length=6.0), row(petal_length=9.0)]))
    assert scores[0] < scores[1] < scores[2]


def test_every_input_form_gives_the_same_answer(
    detector: AtypicalDetector, iris: pd.DataFrame
) -> None:
    batch = iris[FEATURES].iloc[::7].copy()
    batch.iloc[2, 2] = 15.0
    expected = detector.check(batch)
    forms: list[Any] = [
        batch.to_numpy(),
        {name: batch[name].to_numpy() for name in FEATURES},
        pa.Table.from_pandas(batch, preserve_index=False),
        batch[list(reversed(FEATURES))],  # by name, whatever the order
    ]
    for form in forms:
        got = detector.check(form)
        np.testing.assert_array_equal(got.scores, expected.scores)
        assert got.reasons == expected.reasons


def test_unseen_categories_and_missing_categories_are_named(iris: pd.DataFrame) -> None:
    frame = iris.copy()
    frame["color"] = np.where(frame["species"] == 0, "blue", "red")
    det = AtypicalDetector.fit(frame, exclude=["species"])
    batch = frame.iloc[[0, 60, 61, 62]].drop(columns="species").reset_index(drop=True)
    batch["color"] = pd.Series(["blue", "purple", None, "x" * 100], dtype=object)
    result = det.check(batch)
    assert result.atypical.tolist() == [False, True, True, True]
    assert result.reasons[1] == ["color='purple' was never seen in training"]
    assert result.reasons[2] == ["color is missing (it never was in training)"]
    assert result.reasons[3][0].startswith("color='xxxx")
    assert len(result.reasons[3][0]) < 80  # a long value is cut, not echoed whole


def test_the_band_can_be_a_quantile_band(iris: pd.DataFrame) -> None:
    det = AtypicalDetector.fit(iris, exclude=["species"], range_quantiles=(0.05, 0.95))
    result = det.check(iris, quantile=1.0)
    assert 0 < result.count < len(iris) // 2
    assert any("petal_length" in r for reasons in result.reasons for r in reasons)


def test_json_round_trip_is_exact(detector: AtypicalDetector, iris: pd.DataFrame) -> None:
    text = detector.to_json()
    json.loads(text)  # plain JSON
    again = AtypicalDetector.from_json(text)
    batch = pd.concat([iris[FEATURES], row(petal_length=15.0)])
    np.testing.assert_array_equal(again.score(batch), detector.score(batch))
    assert again.reasons(batch) == detector.reasons(batch)
    assert again.to_json() == text


def test_save_and_load(detector: AtypicalDetector, tmp_path: Any) -> None:
    path = detector.save(tmp_path / "sub" / "atypical.json")
    assert AtypicalDetector.load(path).to_json() == detector.to_json()
    assert [p.name for p in path.parent.iterdir()] == ["atypical.json"]  # no temp file left


def _doc(detector: AtypicalDetector) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(detector.to_json())
    return data


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: "not json", "not JSON"),
        (lambda d: {**d, "format": "other"}, "no 'mloop.atypical' format marker"),
        (lambda d: {**d, "format_version": 2}, "format version 2 is not supported"),
        (
            lambda d: {**d, "multivariate": {**d["multivariate"], "whitening": [[1.0]]}},
            "whitening must be 4x4",
        ),
        (lambda d: {**d, "features": d["features"][:2]}, "each numeric and categorical"),
        (
            lambda d: {**d, "numeric": [{**d["numeric"][0], "scale": 0}, *d["numeric"][1:]]},
            "numeric.0.scale",
        ),
        (lambda d: {**d, "extra": 1}, "extra"),
    ],
)
def test_a_damaged_document_is_refused_before_anything_is_built(
    detector: AtypicalDetector, mutate: Any, needle: str
) -> None:
    changed = mutate(_doc(detector))
    text = changed if isinstance(changed, str) else json.dumps(changed)
    with pytest.raises(InvalidInput, match=needle):
        AtypicalDetector.from_json(text)


def test_nan_in_a_document_is_refused(detector: AtypicalDetector) -> None:
    text = detector.to_json().replace('"center":', '"center":NaN,"x":', 1)
    with pytest.raises(InvalidInput, match="malformed"):
        AtypicalDetector.from_json(text)


def test_bad_batches_say_what_is_wrong(detector: AtypicalDetector) -> None:
    with pytest.raises(InvalidInput, match="feature 'petal_width' is missing from the input"):
        detector.check({"sepal_length": [1.0], "sepal_width": [1.0], "petal_length": [1.0]})
    with pytest.raises(InvalidInput, match="has 3 columns but 4 features are named"):
        detector.check(np.zeros((2, 3)))
    with pytest.raises(InvalidInput, match="must be numeric"):
        detector.check({**{f: [1.0] for f in FEATURES}, "petal_width": ["wide"]})
    with pytest.raises(InvalidInput, match=r"quantile in \(0, 1\]"):
        detector.check(np.zeros((1, 4)), quantile=0)


def test_from_statistics_needs_no_rows(iris: pd.DataFrame) -> None:
    frame = iris.copy()
    frame["color"] = np.where(frame["species"] == 0, "blue", "red")
    stats = statistics_of_table(pa.Table.from_pandas(frame, preserve_index=False))
    det = AtypicalDetector.from_statistics(stats, exclude=["species"])
    assert det.doc.source == "statistics"
    assert set(det.features) == {*FEATURES, "color"}
    training = frame.drop(columns="species")
    result = det.check(training, quantile=0.999)
    assert not any("range" in r or "never" in r for reasons in result.reasons for r in reasons)
    assert result.count <= 3
    odd = det.check(pd.DataFrame([{**dict(row(petal_length=15.0).iloc[0]), "color": "purple"}]))
    assert odd.reasons[0][:2] == [
        "petal_length=15 is above the training range [1, 6.9]",
        "color='purple' was never seen in training",
    ]
    again = AtypicalDetector.from_json(det.to_json())
    np.testing.assert_array_equal(again.score(training), det.score(training))


def test_from_statistics_names_a_feature_it_does_not_have(iris: pd.DataFrame) -> None:
    stats = statistics_of_table(pa.Table.from_pandas(iris, preserve_index=False))
    with pytest.raises(InvalidInput, match="no feature 'colour'"):
        AtypicalDetector.from_statistics(stats, features=["colour"])


def test_a_tiny_or_flat_training_set_still_fits() -> None:
    flat = AtypicalDetector.fit({"a": [1.0, 1.0, 1.0], "b": [2.0, 2.0, 2.0]})
    assert flat.check({"a": [1.0], "b": [2.0]}).count == 0
    assert flat.reasons({"a": [1.5], "b": [2.0]})[0][0] == (
        "a=1.5 is above the training range [1, 1]"
    )


training_matrices = st.tuples(st.integers(12, 60), st.integers(1, 5)).flatmap(
    lambda shape: hnp.arrays(
        np.float64, shape, elements=st.floats(-1e3, 1e3, allow_nan=False, width=32)
    )
)


@settings(max_examples=60, deadline=None)
@given(train=training_matrices)
def test_no_training_row_is_atypical_at_the_top_quantile(train: np.ndarray) -> None:
    det = AtypicalDetector.fit(train)
    assert det.check(train, quantile=1.0).count == 0
    again = AtypicalDetector.from_json(det.to_json())
    np.testing.assert_array_equal(again.score(train), det.score(train))


@settings(max_examples=60, deadline=None)
@given(train=training_matrices, column=st.integers(0, 4), factor=st.floats(2.0, 100.0))
def test_a_value_beyond_the_range_is_named(train: np.ndarray, column: int, factor: float) -> None:
    det = AtypicalDetector.fit(train)
    column %= train.shape[1]
    probe = np.median(train, axis=0, keepdims=True)
    span = train[:, column].max() - train[:, column].min()
    probe[0, column] = train[:, column].max() + factor * (span + 1.0)
    (reasons,) = det.reasons(probe)
    assert reasons[0].startswith(f"x{column}=")
    assert "above the training range" in reasons[0]


def test_a_registered_version_gets_a_detector_from_its_training_data_lineage(
    iris: pd.DataFrame, tmp_path: Any
) -> None:
    """No extra file: the training dataset's stored statistics, the signature's columns."""
    import hashlib

    from sklearn.linear_model import LogisticRegression

    import mloop.data
    import mloop.registry
    from mloop.models import save_model
    from mloop.serving._atypical import detector_for_model_version

    data = mloop.data.register("iris", iris)
    model = LogisticRegression(max_iter=500).fit(iris[FEATURES], iris["species"])
    manifest = save_model(model, tmp_path / "pkg", input_example=iris[FEATURES].head(3))
    digest = hashlib.sha256(manifest.to_json()).hexdigest()
    mloop.registry.register_model_version(
        "iris", str(tmp_path / "pkg"), package_digest=digest, dataset_versions=[data.ref]
    )
    det = detector_for_model_version("iris", 1)
    assert list(det.features) == FEATURES  # the signature's inputs; the label is not one
    assert det.reasons(row(petal_length=15.0))[0][0] == (
        "petal_length=15 is above the training range [1, 6.9]"
    )
    mloop.registry.register_model_version(
        "iris", str(tmp_path / "pkg"), package_digest="0" * 64, description="no lineage"
    )
    with pytest.raises(InvalidInput, match="records no training dataset"):
        detector_for_model_version("iris", 2)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(
    key=st.sampled_from(
        ["numeric", "categorical", "multivariate", "features", "training_rows", "source"]
    ),
    value=json_values,
)
def test_any_change_to_a_document_loads_or_is_invalid_input(
    detector: AtypicalDetector, key: str, value: Any
) -> None:
    """Whatever a stored document was changed into, loading never fails another way."""
    doc = _doc(detector)
    doc[key] = value
    try:
        loaded = AtypicalDetector.from_json(json.dumps(doc))
    except InvalidInput:
        return
    columns = {name: np.zeros(2) for name in loaded.features}
    for feature in loaded.doc.categorical:
        columns[feature.name] = np.array(["a", "b"], dtype=object)
    assert loaded.check(columns).scores.shape == (2,)


@settings(max_examples=100, deadline=None)
@given(text=st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_arbitrary_bytes_are_invalid_input(text: bytes) -> None:
    with pytest.raises(InvalidInput):
        AtypicalDetector.from_json(text)


def test_pandas_nullable_columns_count_missing_values_as_missing(iris: pd.DataFrame) -> None:
    frame = iris.drop(columns="species").astype("Float64")
    frame["color"] = pd.Series(["blue"] * len(frame), dtype="string")
    det = AtypicalDetector.fit(frame)
    batch = frame.head(2).copy()
    batch.loc[1, "petal_width"] = pd.NA
    batch.loc[0, "color"] = pd.NA
    assert det.reasons(batch) == [
        ["color is missing (it never was in training)"],
        ["petal_width is missing (it never was in training)"],
    ]


@settings(max_examples=60, deadline=None)
@given(
    train=training_matrices,
    holes=st.lists(st.tuples(st.integers(0, 59), st.integers(0, 4)), max_size=15),
)
def test_training_rows_with_missing_values_are_typical_too(
    train: np.ndarray, holes: list[tuple[int, int]]
) -> None:
    train = train.copy()
    for row, column in holes:
        train[row % train.shape[0], column % train.shape[1]] = np.nan
    if np.isnan(train).all(axis=0).any():
        return  # a column with no value at all cannot be fitted (and says so)
    det = AtypicalDetector.fit(train)
    assert det.check(train, quantile=1.0).count == 0


def test_a_missing_value_is_judged_by_the_values_that_are_there(iris: pd.DataFrame) -> None:
    """With missing values seen in training, a setosa row missing its petal width is
    typical (no median petal width is invented for it), a bad mix still is not."""
    frame = iris.drop(columns="species")
    frame.loc[::10, "petal_width"] = np.nan
    det = AtypicalDetector.fit(frame)
    setosa = frame.iloc[[1]].copy()
    setosa["petal_width"] = np.nan
    assert det.check(setosa).count == 0
    odd = row(sepal_length=4.6, sepal_width=3.6, petal_length=6.4, petal_width=np.nan)
    assert det.reasons(odd)[0][0].startswith("outlier score")
