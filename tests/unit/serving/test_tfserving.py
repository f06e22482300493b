"""TF-Serving JSON: rows and columns into named arrays typed by the signature."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mloop.errors import InvalidInput
from mloop.models import ColumnSchema, ColumnSpec, ModelSignature, TensorSchema
from mloop.serving._tfserving import decode_predict, encode_predictions
from mloop.serving._validation import validate

TENSOR = ModelSignature(inputs=TensorSchema(dtype="float32", shape=(-1, 2)))
COLUMNS = ModelSignature(
    inputs=ColumnSchema(
        columns=(
            ColumnSpec(name="n", type="int32"),
            ColumnSpec(name="x", type="float64", nullable=True),
            ColumnSpec(name="s", type="string"),
        )
    )
)


def decode(document: Any, signature: ModelSignature | None) -> dict[str, Any]:
    arrays, _ = decode_predict(orjson.dumps(document), signature)
    return arrays


def test_rows_of_numbers_take_the_signature_width() -> None:
    arrays = decode({"instances": [[1, 2], [3.5, 4]]}, TENSOR)
    assert arrays["input-0"].dtype == np.float32
    assert validate(TENSOR, arrays).rows == 2


def test_rows_as_lists_or_objects_for_columns() -> None:
    as_lists = decode({"instances": [[1, 0.5, "a"], [2, None, "b"]]}, COLUMNS)
    as_objects = decode(
        {"instances": [{"n": 1, "x": 0.5, "s": "a"}, {"s": "b", "n": 2, "x": None}]}, COLUMNS
    )
    for arrays in (as_lists, as_objects):
        checked = validate(COLUMNS, arrays)
        assert checked.columns is not None
        assert checked.columns["n"].dtype == np.int32
        assert np.isnan(checked.columns["x"][1])
        assert checked.columns["s"].tolist() == ["a", "b"]


def test_columnar_inputs() -> None:
    arrays = decode({"inputs": {"n": [1, 2], "x": [1.0, 2.0], "s": ["a", "b"]}}, COLUMNS)
    assert validate(COLUMNS, arrays).rows == 2
    assert decode({"inputs": [[1, 2]]}, TENSOR)["input-0"].shape == (1, 2)


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ({"instances": []}, "non-empty"),
        ({"instances": [[1, 2]], "inputs": [[1, 2]]}, "exactly one"),
        ({}, "exactly one"),
        ([1], "JSON object"),
        ({"instances": [[1, 2], [3]]}, "ragged"),
        ({"instances": [{"a": 1}, [1]]}, "mixes"),
        ({"instances": [{"a": 1}, {"b": 1}]}, "same fields"),
        ({"instances": [[1, 2], [3, 4]], "id": 5}, "'id'"),
    ],
)
def test_malformed_bodies(document: Any, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        decode(document, TENSOR)


def test_a_wrong_row_width_for_columns_names_the_row() -> None:
    with pytest.raises(InvalidInput, match=r"instances\[1\]"):
        decode({"instances": [[1, 0.5, "a"], [2, 0.5]]}, COLUMNS)


def test_fractions_are_not_silently_truncated_into_integers() -> None:
    arrays = decode({"instances": [[1.5, 0.5, "a"]]}, COLUMNS)
    with pytest.raises(InvalidInput, match="'n'"):
        validate(COLUMNS, arrays)


def test_encoding_one_or_several_outputs() -> None:
    one = orjson.loads(encode_predictions({"predictions": np.array([1, 2])}, "r"))
    assert one == {"predictions": [1, 2], "id": "r"}
    several = orjson.loads(
        encode_predictions(
            {"predictions": np.array(["a", "b"], dtype=object), "score": np.array([0.5, 0.25])},
            "r",
        )
    )
    assert several["predictions"] == [
        {"predictions": "a", "score": 0.5},
        {"predictions": "b", "score": 0.25},
    ]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=3),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=2), children, max_size=3),
    max_leaves=15,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    document=st.one_of(
        json_values,
        st.fixed_dictionaries({"instances": json_values}),
        st.fixed_dictionaries({"inputs": json_values}),
    ),
    signature=st.sampled_from([TENSOR, COLUMNS, None]),
)
def test_any_json_is_decoded_and_validated_or_refused_as_invalid_input(
    document: Any, signature: ModelSignature | None
) -> None:
    with contextlib.suppress(InvalidInput):
        validate(signature, decode(document, signature))
