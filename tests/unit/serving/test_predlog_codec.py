"""Write-ahead payloads: arrays as bytes behind a JSON header, read back exactly."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mloop.serving._predlog import PredictionRecord, jsonable_arrays
from mloop.serving._predlog_codec import MARK, decode, encode

NATIVE = ["<f8", "<f4", "<f2", "<i8", "<i4", "<i1", "<u2", "|u1", "|b1"]


def _tensors(dtypes: list[str], min_dims: int) -> st.SearchStrategy[dict[str, Any]]:
    arrays = st.sampled_from(dtypes).flatmap(
        lambda dtype: hnp.arrays(
            np.dtype(dtype), hnp.array_shapes(min_dims=min_dims, max_dims=3, min_side=0, max_side=5)
        )
    )
    return st.dictionaries(st.text(min_size=1, max_size=8), arrays, max_size=4)


TENSORS = _tensors([*NATIVE, ">f8", ">i4"], min_dims=0)
REQUEST_TENSORS = _tensors(NATIVE, min_dims=1)  # as the OIP decoder makes them


def _record(inputs: Any, outputs: Any) -> PredictionRecord:
    return PredictionRecord(
        request_id="r-1", time_ms=1_700_000_000_000, deployment="iris", model="iris",
        version=3, role="primary", inputs=inputs, outputs=outputs, latency_ms=1.5,
        guards={"atypical": {"rows": 0, "max_score": 0.25}}, trace_id="ab" * 16,
    )  # fmt: skip


@given(inputs=TENSORS, outputs=TENSORS)
def test_arrays_come_back_with_their_dtype_shape_and_values(
    inputs: dict[str, np.ndarray[Any, Any]], outputs: dict[str, np.ndarray[Any, Any]]
) -> None:
    record = decode(encode(_record(inputs, outputs)))
    for sent, got in ((inputs, record["inputs"]), (outputs, record["outputs"])):
        assert sorted(got) == sorted(sent)
        for name, array in sent.items():
            assert got[name].shape == array.shape
            assert got[name].dtype == array.dtype.newbyteorder("<")
            np.testing.assert_array_equal(got[name], array)  # NaN equals NaN here
    assert record["guards"] == {"atypical": {"rows": 0, "max_score": 0.25}}
    assert record["version"] == 3


@given(inputs=REQUEST_TENSORS)
def test_a_record_reads_as_the_values_plain_json_would_have_given(
    inputs: dict[str, np.ndarray[Any, Any]],
) -> None:
    """Parquet keeps inputs as JSON text: a record logged as bytes must read back as the
    same values as one logged as JSON before this format (so old and new parts read alike)."""
    numpy = orjson.OPT_SERIALIZE_NUMPY
    old = orjson.loads(orjson.dumps(_record(inputs, None), option=numpy))
    new = decode(encode(_record(inputs, None)))
    assert orjson.loads(orjson.dumps(new["inputs"], option=numpy)) == old["inputs"]


def test_text_tensors_and_plain_values_stay_json() -> None:
    arrays = {"text": np.array([b"caf\xc3\xa9", "tea"], dtype=object), "x": np.arange(3.0)}
    payload = encode(_record(jsonable_arrays(arrays), {"label": np.int64(2)}))
    header = payload[: payload.index(b"\x00")]
    assert orjson.loads(header)["inputs"]["text"] == ["café", "tea"]
    record = decode(payload)
    assert record["inputs"]["text"] == ["café", "tea"]
    assert record["outputs"] == {"label": 2}
    np.testing.assert_array_equal(record["inputs"]["x"], [0.0, 1.0, 2.0])


def test_a_record_without_arrays_is_plain_json() -> None:
    payload = encode(_record(None, None))
    assert b"\x00" not in payload
    assert decode(payload) == orjson.loads(payload)


def test_old_payloads_written_as_json_read_as_before() -> None:
    old = orjson.dumps(
        _record({"x": np.arange(4.0).reshape(2, 2)}, None), option=orjson.OPT_SERIALIZE_NUMPY
    )
    assert decode(old)["inputs"] == {"x": [[0.0, 1.0], [2.0, 3.0]]}


@pytest.mark.parametrize(
    ("cut", "error"),
    [(-1, "end before their bytes"), (None, "bytes follow")],
)
def test_a_payload_whose_bytes_do_not_match_its_marks_is_refused(
    cut: int | None, error: str
) -> None:
    payload = encode(_record({"x": np.arange(4.0)}, None))
    damaged = payload[:cut] if cut is not None else payload + b"\x01"
    with pytest.raises(ValueError, match=error):
        decode(damaged)


@pytest.mark.parametrize(
    "mark",
    [["<U4", [2]], ["<f8", [-1]], ["not a dtype", [1]], "x", ["|O", [1]]],
)
def test_a_bad_mark_is_refused(mark: object) -> None:
    header = orjson.dumps({"time_ms": 1, "inputs": {"x": {MARK: mark}}})
    with pytest.raises(ValueError, match="bad array mark"):
        decode(header + b"\x00" + bytes(16))
