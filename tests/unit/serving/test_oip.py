"""The OIP codec: every datatype round-trips in JSON and binary, malformed bodies name the field."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mloop.errors import InvalidInput
from mloop.serving._oip import (
    DATATYPES,
    DTYPES,
    RequestedOutput,
    Tensor,
    binary_bytes,
    datatype_of,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)

shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4)


@st.composite
def tensors(draw: st.DrawFn, binary: bool) -> Tensor:
    datatype = draw(st.sampled_from(DATATYPES))
    shape = draw(shapes)
    if datatype == "BYTES":
        size = int(np.prod(shape))
        items: list[Any] = draw(
            st.lists(
                st.binary(max_size=8) if binary else st.text(max_size=8),
                min_size=size,
                max_size=size,
            )
        )
        data = np.empty(size, dtype=object)
        data[:] = items
        return Tensor(draw(st.text(min_size=1, max_size=5)), datatype, data.reshape(shape))
    dtype = DTYPES[datatype].newbyteorder("=")
    elements = None
    if datatype.startswith("FP"):
        # JSON has no NaN/inf (NaN travels as null, tested below)
        elements = hnp.from_dtype(dtype, allow_nan=False, allow_infinity=False)
    data = draw(hnp.arrays(dtype, shape, elements=elements))
    return Tensor(draw(st.text(min_size=1, max_size=5)), datatype, data)


def _same(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> None:
    assert a.shape == b.shape
    if a.dtype == object:
        assert a.reshape(-1).tolist() == b.reshape(-1).tolist()
    else:
        assert a.dtype == b.dtype.newbyteorder("=")
        np.testing.assert_array_equal(a, b)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), binary=st.booleans())
def test_request_round_trip(data: st.DataObject, binary: bool) -> None:
    inputs = data.draw(
        st.lists(tensors(binary), min_size=1, max_size=3, unique_by=lambda t: t.name)
    )
    body, header = encode_request(inputs, binary=binary, request_id="r-1")
    assert (header is not None) == binary
    decoded = decode_request(body, header)
    assert decoded.id == "r-1"
    assert [t.name for t in decoded.inputs] == [t.name for t in inputs]
    for sent, got in zip(inputs, decoded.inputs, strict=True):
        assert got.datatype == sent.datatype
        _same(sent.data, got.data)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), binary=st.booleans())
def test_response_round_trip(data: st.DataObject, binary: bool) -> None:
    outputs = data.draw(
        st.lists(tensors(binary), min_size=1, max_size=3, unique_by=lambda t: t.name)
    )
    body, header = encode_response("iris", "1", "abc", [(t, binary) for t in outputs])
    decoded = decode_response(body, header)
    assert (decoded["model_name"], decoded["model_version"], decoded["id"]) == ("iris", "1", "abc")
    for sent, got in zip(outputs, decoded["outputs"], strict=True):
        assert got["datatype"] == sent.datatype
        assert got["shape"] == list(sent.data.shape)
        _same(sent.data, got["data"])


def test_nested_and_flat_data_are_the_same_tensor() -> None:
    def body(data: Any) -> bytes:
        tensor = {"name": "x", "shape": [2, 2], "datatype": "FP32", "data": data}
        return orjson.dumps({"inputs": [tensor]})

    flat = decode_request(body([1, 2, 3, 4])).inputs[0].data
    nested = decode_request(body([[1, 2], [3, 4]])).inputs[0].data
    np.testing.assert_array_equal(flat, nested)
    assert flat.dtype == np.float32
    assert flat.shape == (2, 2)


def test_null_is_a_missing_float() -> None:
    body = orjson.dumps(
        {"inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "data": [1.5, None]}]}
    )
    data = decode_request(body).inputs[0].data
    assert data[0] == 1.5
    assert np.isnan(data[1])


def test_requested_outputs_and_binary_flags() -> None:
    x = Tensor("x", "FP64", np.zeros((1, 4)))
    body, header = encode_request(
        [x], outputs=[RequestedOutput("predictions", True), RequestedOutput("probabilities", False)]
    )
    request = decode_request(body, header)
    assert request.output_binary("predictions")
    assert not request.output_binary("probabilities")
    body, header = encode_request([x], binary_output=True)
    request = decode_request(body, header)
    assert request.outputs is None
    assert request.output_binary("anything")


def test_bytes_binary_layout_is_length_prefixed() -> None:
    array = np.array([b"ab", b""], dtype=object)
    assert binary_bytes(array, "BYTES") == b"\x02\x00\x00\x00ab\x00\x00\x00\x00"
    assert binary_bytes(np.array([True, False]), "BOOL") == b"\x01\x00"
    assert binary_bytes(np.array([1], dtype=">i4"), "INT32") == b"\x01\x00\x00\x00"


def test_datatype_of() -> None:
    assert datatype_of(np.zeros(2, dtype=np.float32)) == "FP32"
    assert datatype_of(np.zeros(2, dtype=np.int64)) == "INT64"
    assert datatype_of(np.array(["a"])) == "BYTES"
    assert datatype_of(np.array([True])) == "BOOL"


def _input(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}
    base.update(fields)
    return {key: value for key, value in base.items() if value is not ...}


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"inputs": []}, "'inputs'"),
        ({"inputs": "x"}, "'inputs'"),
        ([], "JSON object"),
        ({"inputs": [_input()], "id": 3}, "'id'"),
        ({"inputs": [_input(name=...)]}, "inputs[0].name"),
        ({"inputs": [_input(datatype="fp32")]}, "inputs[0] ('x').datatype"),
        ({"inputs": [_input(shape=[1, -2])]}, "inputs[0] ('x').shape"),
        ({"inputs": [_input(shape=[True, 2])]}, "inputs[0] ('x').shape"),
        ({"inputs": [_input(shape=[3, 2])]}, "inputs[0] ('x').data has 2 elements"),
        ({"inputs": [_input(data=...)]}, "has no 'data'"),
        ({"inputs": [_input(data=["a", "b"])]}, "inputs[0] ('x').data must hold only numbers"),
        ({"inputs": [_input(data=[[1], [2, 3]])]}, "ragged"),
        ({"inputs": [_input(datatype="INT8", data=[1, 300])]}, "outside the INT8 range"),
        ({"inputs": [_input(datatype="INT32", data=[1.5, 2])]}, "non-integer"),
        ({"inputs": [_input(datatype="BOOL", data=[1, 0])]}, "true/false"),
        ({"inputs": [_input(datatype="BYTES", shape=[2], data=["a", 1])]}, "only strings"),
        ({"inputs": [_input(), _input()]}, "given twice"),
        ({"inputs": [_input(parameters=[1])]}, "inputs[0] ('x').parameters"),
        ({"inputs": [_input()], "outputs": [{"nam": "y"}]}, "outputs[0]"),
        ({"inputs": [_input()], "parameters": {"binary_data_output": "yes"}}, "binary_data_output"),
        ({"inputs": [_input(shape=[1 << 20, 1 << 20])]}, "more than"),
    ],
)
def test_malformed_requests_name_the_field(document: Any, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        decode_request(orjson.dumps(document))
    assert field in caught.value.message


def test_malformed_binary_requests() -> None:
    x = Tensor("x", "FP32", np.zeros((2, 2), dtype=np.float32))
    body, header = encode_request([x], binary=True)
    with pytest.raises(InvalidInput, match="binary_data_size is 16 but only 15"):
        decode_request(body[:-1], header)
    with pytest.raises(InvalidInput, match="add up to 16"):
        decode_request(body + b"\x00", header)
    with pytest.raises(InvalidInput, match="Inference-Header-Content-Length"):
        decode_request(body, "lots")
    with pytest.raises(InvalidInput, match="Inference-Header-Content-Length is"):
        decode_request(body, len(body) + 1)
    with pytest.raises(InvalidInput, match="not valid JSON"):
        decode_request(body, header + 3)  # the header cut in the wrong place
    words = Tensor("w", "BYTES", np.array([b"abc"], dtype=object))
    body, header = encode_request([words], binary=True)
    assert header is not None
    wrong = body.replace(b'"binary_data_size":7', b'"binary_data_size":6')
    with pytest.raises(InvalidInput, match="fewer remain"):
        decode_request(wrong[:-1], header)


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=200), header=st.one_of(st.none(), st.integers(-5, 250)))
def test_garbage_is_invalid_input_never_another_error(body: bytes, header: int | None) -> None:
    with contextlib.suppress(InvalidInput):
        decode_request(body, header)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=4),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["name", "shape", "datatype", "data", "parameters", "binary_data_size"]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)
input_like = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.text(max_size=3), json_values),
        "shape": st.one_of(st.lists(st.integers(-1, 5), max_size=3), json_values),
        "datatype": st.one_of(st.sampled_from(DATATYPES), json_values),
        "data": json_values,
        "parameters": st.one_of(
            st.fixed_dictionaries({"binary_data_size": st.integers(-2, 40)}), json_values
        ),
    },
)


@settings(max_examples=300, deadline=None)
@given(
    inputs=st.lists(input_like, max_size=3),
    tail=st.binary(max_size=40),
    binary=st.booleans(),
)
def test_structured_garbage_is_invalid_input(
    inputs: list[dict[str, Any]], tail: bytes, binary: bool
) -> None:
    header = orjson.dumps({"inputs": inputs})
    with contextlib.suppress(InvalidInput):
        decode_request(header + tail if binary else header, len(header) if binary else None)


def test_numbers_beyond_a_float_width_are_refused_not_made_infinite() -> None:
    body = orjson.dumps(
        {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1e300]}]}
    )
    with pytest.raises(InvalidInput, match="beyond the FP32 range"):
        decode_request(body)


def test_the_largest_float32_survives_a_json_round_trip() -> None:
    largest = np.array([np.finfo(np.float32).max, -np.finfo(np.float32).max], dtype=np.float32)
    body, _ = encode_request([Tensor("x", "FP32", largest)])
    np.testing.assert_array_equal(decode_request(body).inputs[0].data, largest)
