"""Signatures: inferred from example data, stored, and enforced with the column named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest

from mloop.errors import InvalidInput, SignatureMismatch
from mloop.models import (
    ColumnSchema,
    ColumnSpec,
    ModelSignature,
    TensorSchema,
    infer_signature,
    load_model,
    save_model,
)
from mloop.models._signature_enforce import castable, enforce

FRAME = pd.DataFrame(
    {
        "age": np.array([30, 41, 52], dtype=np.int64),
        "income": [1.5, np.nan, 3.0],
        "city": ["Oslo", "Lima", None],
        "member": [True, False, True],
        "joined": pd.to_datetime(["2020-01-01", "2021-06-01", "2022-03-04"]),
        "size": pd.Categorical(["S", "M", "S"]),
    }
)


def test_columns_types_and_nullability_from_pandas() -> None:
    schema = infer_signature(FRAME).inputs
    assert schema == ColumnSchema(
        columns=(
            ColumnSpec(name="age", type="int64"),
            ColumnSpec(name="income", type="float64", nullable=True),
            ColumnSpec(name="city", type="string", nullable=True),
            ColumnSpec(name="member", type="bool"),
            ColumnSpec(name="joined", type="datetime"),
            ColumnSpec(name="size", type="string"),
        )
    )


def test_polars_and_dicts_give_the_same_columns() -> None:
    frame = pl.DataFrame({"a": [1, 2], "b": [0.5, float("nan")], "c": ["x", None]})
    expected = ColumnSchema(
        columns=(
            ColumnSpec(name="a", type="int64"),
            ColumnSpec(name="b", type="float64", nullable=True),
            ColumnSpec(name="c", type="string", nullable=True),
        )
    )
    assert infer_signature(frame).inputs == expected
    as_dict = {"a": np.array([1, 2]), "b": [0.5, float("nan")], "c": ["x", None]}
    assert infer_signature(as_dict).inputs == expected


def test_an_array_is_one_tensor_with_any_batch_size() -> None:
    signature = infer_signature(np.zeros((5, 4), dtype=np.float32), np.zeros(5, dtype=np.int64))
    assert signature.inputs == TensorSchema(dtype="float32", shape=(-1, 4))
    assert signature.outputs == TensorSchema(dtype="int64", shape=(-1,))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (pd.DataFrame({"mixed": ["a", 1]}), "column 'mixed' mixes"),
        (pd.DataFrame({"empty": [None, None]}), "column 'empty' holds no values"),
        (pd.DataFrame({"delta": pd.to_timedelta([1, 2], unit="s")}), "column 'delta' has dtype"),
        (np.float64(1.0), "single value"),
    ],
)
def test_ambiguous_examples_are_refused_naming_the_column(data: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        infer_signature(data)


def test_signature_json_round_trip() -> None:
    signature = infer_signature(FRAME, np.zeros((3, 2)))
    assert ModelSignature.from_dict(signature.to_dict()) == signature


SCHEMA = ColumnSchema(
    columns=(
        ColumnSpec(name="a", type="float64"),
        ColumnSpec(name="b", type="int64"),
        ColumnSpec(name="c", type="string", nullable=True),
    )
)


def test_a_missing_column_is_named() -> None:
    with pytest.raises(SignatureMismatch, match="missing column 'b'") as caught:
        enforce(SCHEMA, pd.DataFrame({"a": [1.0], "c": ["x"]}))
    assert caught.value.details["column"] == "b"


def test_a_type_that_cannot_be_cast_safely_is_named() -> None:
    with pytest.raises(SignatureMismatch, match=r"column 'b' holds float64.*expects int64"):
        enforce(SCHEMA, pd.DataFrame({"a": [1.0], "b": [1.5], "c": ["x"]}))
    with pytest.raises(SignatureMismatch, match="column 'a' holds string"):
        enforce(SCHEMA, pd.DataFrame({"a": ["1.0"], "b": [1], "c": ["x"]}))


def test_nulls_in_a_non_nullable_column_are_named() -> None:
    with pytest.raises(SignatureMismatch, match=r"column 'a' has 1 missing value \(null/NaN\)"):
        enforce(SCHEMA, pd.DataFrame({"a": [np.nan, 2.0], "b": [1, 2], "c": [None, None]}))


def test_the_wrong_number_of_features_is_named() -> None:
    with pytest.raises(SignatureMismatch, match=r"expects 3 features per row \(a, b, c\), got 2"):
        enforce(SCHEMA, np.zeros((4, 2)))
    tensor = TensorSchema(dtype="float64", shape=(-1, 4))
    with pytest.raises(SignatureMismatch, match="expects 4 features per row, got 3"):
        enforce(tensor, np.zeros((2, 3)))
    with pytest.raises(SignatureMismatch, match="dimensions"):
        enforce(tensor, np.zeros(4))


def test_safe_casts_order_and_extra_columns() -> None:
    given = pd.DataFrame(
        {"extra": [0, 0], "c": ["x", "y"], "b": np.array([1, 2], np.int32), "a": [1, 2]}
    )
    out = enforce(SCHEMA, given)
    assert list(out.columns) == ["a", "b", "c"]
    assert out["a"].dtype == np.float64
    assert out["b"].dtype == np.int64
    records = enforce(SCHEMA, [{"a": 1.0, "b": 2, "c": "z"}])
    assert records.to_dict("records") == [{"a": 1.0, "b": 2, "c": "z"}]
    assert enforce(SCHEMA, {"a": [0.5], "b": [3], "c": [None]})["b"].tolist() == [3]


def test_tensor_nan_is_named_by_feature_and_cast_is_checked() -> None:
    tensor = TensorSchema(dtype="float32", shape=(-1, 3))
    data = np.ones((2, 3), dtype=np.float32)
    data[1, 2] = np.nan
    with pytest.raises(SignatureMismatch, match=r"feature 2 \(row 1") as caught:
        enforce(tensor, data)
    assert caught.value.details["feature"] == 2
    with pytest.raises(
        SignatureMismatch, match="holds float64 values but the model expects float32"
    ):
        enforce(tensor, np.ones((2, 3)))
    assert enforce(tensor, np.ones((2, 3), dtype=np.int16)).dtype == np.float32


@pytest.mark.parametrize(
    ("got", "expected", "ok"),
    [
        ("int64", "float64", True),
        ("int64", "float32", True),
        ("float32", "float64", True),
        ("int32", "int64", True),
        ("bool", "int64", True),
        ("float64", "int64", False),
        ("float64", "float32", False),
        ("int64", "int32", False),
        ("int64", "string", False),
        ("string", "datetime", False),
        ("bool", "float64", True),
        ("float64", "bool", False),
    ],
)
def test_castable(got: str, expected: str, ok: bool) -> None:
    assert castable(got, expected) is ok


def test_predict_enforces_the_stored_signature(
    tmp_path: Path, iris_forest: Any, iris: tuple[Any, Any]
) -> None:
    x = iris[0]
    save_model(iris_forest, tmp_path / "pkg", input_example=x.head())
    loaded = load_model(tmp_path / "pkg")
    assert loaded.signature is not None
    assert loaded.signature.outputs == TensorSchema(dtype="int64", shape=(-1,))
    with pytest.raises(SignatureMismatch, match="missing column 'petal width \\(cm\\)'"):
        loaded.predict(x.drop(columns="petal width (cm)"))
    with pytest.raises(SignatureMismatch, match="column 'sepal length \\(cm\\)' has 1 missing"):
        loaded.predict_proba(x.head(3).assign(**{"sepal length (cm)": [1.0, np.nan, 2.0]}))
    reordered = x[list(reversed(x.columns))]
    np.testing.assert_array_equal(loaded.predict(reordered), iris_forest.predict(x))
    np.testing.assert_array_equal(loaded.predict(x.to_numpy()), iris_forest.predict(x))
