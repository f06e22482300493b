"""Decoded tensors against signatures: each refusal names the input; body size bounded."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mloop.errors import InvalidInput, PayloadTooLarge
from mloop.models import ColumnSchema, ColumnSpec, ModelSignature, TensorSchema
from mloop.serving._validation import input_metadata, read_body, validate

TENSOR = ModelSignature(inputs=TensorSchema(dtype="float64", shape=(-1, 4)))
NAMED = ModelSignature(inputs=TensorSchema(dtype="float32", shape=(-1, 2), name="pixels"))
COLUMNS = ModelSignature(
    inputs=ColumnSchema(
        columns=(
            ColumnSpec(name="age", type="int64"),
            ColumnSpec(name="income", type="float64", nullable=True),
            ColumnSpec(name="city", type="string"),
        )
    )
)


def test_a_tensor_input_is_cast_when_no_value_changes() -> None:
    checked = validate(TENSOR, {"input-0": np.ones((3, 4), dtype=np.float32)})
    assert checked.rows == 3
    assert checked.tensor is not None
    assert checked.tensor.dtype == np.float64
    ints = validate(TENSOR, {"x": np.ones((1, 4), dtype=np.int32)})
    assert ints.tensor is not None
    assert ints.tensor.dtype == np.float64


def test_columns_become_named_arrays() -> None:
    checked = validate(
        COLUMNS,
        {
            "city": np.array([b"Oslo", b"Lima"], dtype=object),
            "age": np.array([[30], [41]], dtype=np.int32),
            "income": np.array([1.5, np.nan]),
        },
    )
    assert checked.rows == 2
    assert checked.columns is not None
    assert list(checked.columns) == ["age", "income", "city"]
    assert checked.columns["age"].dtype == np.int64
    assert checked.columns["city"].tolist() == ["Oslo", "Lima"]


@pytest.mark.parametrize(
    ("signature", "inputs", "field", "words"),
    [
        (TENSOR, {"a": np.ones((1, 4)), "b": np.ones((1, 4))}, "inputs", "one input tensor"),
        (TENSOR, {"x": np.ones((1, 3))}, "x", "expects [-1, 4]"),
        (TENSOR, {"x": np.ones(4)}, "x", "shape [4]"),
        (TENSOR, {"x": np.array([[1.0, np.nan, 1, 1]])}, "x", "missing value"),
        (TENSOR, {"x": np.array([["a", "b", "c", "d"]], dtype=object)}, "x", "string values"),
        (NAMED, {"image": np.ones((1, 2), dtype=np.float32)}, "image", "named 'pixels'"),
        (NAMED, {"pixels": np.ones((1, 2))}, "pixels", "float64 values"),
        (COLUMNS, {"age": np.ones(1, dtype=np.int64)}, "income", "missing"),
        (
            COLUMNS,
            {
                "age": np.ones(1, dtype=np.int64),
                "income": np.ones(1),
                "city": np.array(["x"], dtype=object),
                "zip": np.ones(1),
            },
            "zip",
            "not a column",
        ),
        (
            COLUMNS,
            {
                "age": np.ones(1),
                "income": np.ones(1),
                "city": np.array(["x"], dtype=object),
            },
            "age",
            "float64 values but the model expects int64",
        ),
        (
            COLUMNS,
            {
                "age": np.ones(2, dtype=np.int64),
                "income": np.ones(1),
                "city": np.array(["x"], dtype=object),
            },
            "income",
            "1 rows",
        ),
        (
            COLUMNS,
            {
                "age": np.ones(1, dtype=np.int64),
                "income": np.ones(1),
                "city": np.array([3]),
            },
            "city",
            "BYTES",
        ),
        (
            COLUMNS,
            {
                "age": np.ones((1, 2), dtype=np.int64),
                "income": np.ones(1),
                "city": np.array(["x"], dtype=object),
            },
            "age",
            "[N]",
        ),
    ],
)
def test_refusals_name_the_input(
    signature: ModelSignature, inputs: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate(signature, inputs)
    assert caught.value.details["field"] == field
    assert words in caught.value.message
    assert caught.value.http_status == 400


def test_without_a_signature_the_tensor_passes_as_it_is() -> None:
    array = np.arange(6).reshape(3, 2)
    assert validate(None, {"x": array}).tensor is array


def test_metadata_lists_the_signature() -> None:
    assert input_metadata(TENSOR) == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
    assert [m["name"] for m in input_metadata(COLUMNS)] == ["age", "income", "city"]
    assert input_metadata(COLUMNS)[2]["datatype"] == "BYTES"


def _echo_app(limit: int) -> Starlette:
    async def echo(request: Request) -> Response:
        try:
            body = await read_body(request, limit)
        except PayloadTooLarge as exc:
            return Response(exc.message, status_code=exc.http_status)
        return Response(str(len(body)))

    return Starlette(routes=[Route("/", echo, methods=["POST"])])


def test_body_over_the_limit_is_413_declared_or_streamed() -> None:
    async def chunks() -> Any:  # no Content-Length: the stream is cut once past the limit
        yield b"x" * 6
        yield b"x" * 6

    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=_echo_app(10))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return [
                await client.post("/", content=b"x" * 10),
                await client.post("/", content=b"x" * 11),
                await client.post("/", content=chunks()),
            ]

    fits, declared, streamed = asyncio.run(scenario())
    assert fits.text == "10"
    assert declared.status_code == 413
    assert "limit of 10" in declared.text
    assert streamed.status_code == 413
