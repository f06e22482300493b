"""Property tests: whatever table the model was trained on passes its own signature
unchanged, and each kind of damage is reported with the damaged column's name."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mloop.errors import SignatureMismatch
from mloop.models import ModelSignature, infer_signature
from mloop.models._signature_enforce import enforce

names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=8
)
dtypes = st.sampled_from(["int8", "int32", "int64", "uint16", "float32", "float64", "bool", "str"])


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    columns = draw(st.lists(names, min_size=1, max_size=5, unique=True))
    rows = draw(st.integers(min_value=1, max_value=6))
    data: dict[str, Any] = {}
    for column in columns:
        kind = draw(dtypes)
        if kind == "str":
            values = draw(st.lists(st.text(max_size=3), min_size=rows, max_size=rows))
            data[column] = pd.Series(values, dtype=object)
        else:
            data[column] = draw(hnp.arrays(np.dtype(kind), rows))
    return pd.DataFrame(data)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames())
def test_training_data_passes_its_own_signature_unchanged(frame: pd.DataFrame) -> None:
    signature = infer_signature(frame)
    assert ModelSignature.from_dict(signature.to_dict()) == signature
    out = enforce(signature.inputs, frame)
    pd.testing.assert_frame_equal(out, frame)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames(), st.data())
def test_a_dropped_column_is_named(frame: pd.DataFrame, data: st.DataObject) -> None:
    column = data.draw(st.sampled_from(list(frame.columns)))
    signature = infer_signature(frame)
    with pytest.raises(SignatureMismatch) as caught:
        enforce(signature.inputs, frame.drop(columns=column))
    assert caught.value.details["column"] == column
    assert repr(column) in caught.value.message


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames(), st.data())
def test_a_null_where_training_had_none_is_named(frame: pd.DataFrame, data: st.DataObject) -> None:
    signature = infer_signature(frame)
    clean = [c.name for c in signature.inputs.columns if not c.nullable]  # type: ignore[union-attr]
    assume(clean)  # a frame whose every column already has a null has nothing to damage
    column = data.draw(st.sampled_from(clean))
    damaged = frame.astype({column: object})
    damaged.loc[damaged.index[0], column] = None
    with pytest.raises(SignatureMismatch, match="missing value") as caught:
        enforce(signature.inputs, damaged)
    assert caught.value.details["column"] == column


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(
        st.sampled_from([np.dtype("float32"), np.dtype("int64")]),
        hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=4),
    )
)
def test_an_array_passes_its_own_tensor_signature(array: np.ndarray[Any, Any]) -> None:
    signature = infer_signature(array)
    np.testing.assert_array_equal(enforce(signature.inputs, array), array)
    with pytest.raises(SignatureMismatch):
        enforce(signature.inputs, np.concatenate([array, array[:, :1]], axis=1))
