"""Decoded request tensors checked against a model's signature, before any model runs.

A tensor signature takes exactly one input of shape ``[N, F…]``; a column signature takes
one input per column, each of shape ``[N]`` (or ``[N, 1]``). Types may widen where no
value can change meaning (the rule of :func:`mloop.models._signature_enforce.castable`),
and a NaN (JSON ``null``) is refused where the model was trained without any. Each refusal
is an :class:`~mloop.errors.InvalidInput` naming the input, so the client gets a 400 that
says what to fix — never a 500 from deep inside the model.

The checks are vectorized per tensor; the result (:class:`ModelInput`) is what the
micro-batcher concatenates and the model's ``predict`` receives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mloop.errors import InvalidInput, PayloadTooLarge
from mloop.models._signature import NUMERIC_TYPES, ColumnSchema, TensorSchema
from mloop.models._signature_enforce import castable

if TYPE_CHECKING:
    from starlette.requests import Request

    from mloop.models._signature import ModelSignature

DEFAULT_INPUT = "input-0"
"""The name a tensor input goes by when the signature gives none."""

OIP_TYPES = {
    "bool": "BOOL",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
    "string": "BYTES",
    "binary": "BYTES",
    "datetime": "BYTES",
}


@dataclass(slots=True)
class ModelInput:
    """Validated input of ``rows`` rows: one array (tensor signature), or columns (column
    signature, or no signature with named inputs)."""

    rows: int
    tensor: np.ndarray[Any, Any] | None = None
    columns: dict[str, np.ndarray[Any, Any]] | None = None


def tensor_name(schema: TensorSchema) -> str:
    return schema.name or DEFAULT_INPUT


def validate(
    signature: ModelSignature | None, inputs: Mapping[str, np.ndarray[Any, Any]]
) -> ModelInput:
    """The model input for these decoded tensors, or an :class:`InvalidInput` naming the
    input that does not fit."""
    if not inputs:
        raise InvalidInput("the request has no inputs")
    schema = None if signature is None else signature.inputs
    if isinstance(schema, ColumnSchema):
        return _columns(schema, inputs)
    if isinstance(schema, TensorSchema):
        return _tensor(schema, inputs)
    if len(inputs) == 1:  # no signature: pass the one tensor on as it is
        (array,) = inputs.values()
        if array.ndim == 0:
            raise InvalidInput("the input must have a batch axis (shape [N, …])")
        return ModelInput(int(array.shape[0]), tensor=array)
    return _unsigned_columns(inputs)


def _tensor(schema: TensorSchema, inputs: Mapping[str, np.ndarray[Any, Any]]) -> ModelInput:
    expected = tensor_name(schema)
    if len(inputs) != 1:
        raise InvalidInput(
            f"the model takes one input tensor ({expected!r}, shape {list(schema.shape)}), "
            f"got {len(inputs)}: {', '.join(repr(n) for n in inputs)}",
            details={"field": "inputs"},
        )
    ((name, array),) = inputs.items()
    if schema.name is not None and name != schema.name:
        raise InvalidInput(
            f"input {name!r} is unknown: the model's input is named {schema.name!r}",
            details={"field": name},
        )
    want = list(schema.shape)
    if array.ndim != len(want) or any(
        w != -1 and w != h for w, h in zip(want, array.shape, strict=False)
    ):
        raise InvalidInput(
            f"input {name!r} has shape {list(array.shape)} but the model expects {want} "
            "(-1 = any size)",
            details={"field": name, "expected_shape": want, "shape": list(array.shape)},
        )
    converted = _converted(name, array, schema.dtype, schema.nullable)
    return ModelInput(int(array.shape[0]), tensor=converted)


def _columns(schema: ColumnSchema, inputs: Mapping[str, np.ndarray[Any, Any]]) -> ModelInput:
    names = schema.names
    unknown = [n for n in inputs if n not in names]
    if unknown:
        raise InvalidInput(
            f"input {unknown[0]!r} is not a column of the model; it takes one input per "
            f"column: {', '.join(repr(n) for n in names)}",
            details={"field": unknown[0]},
        )
    missing = [n for n in names if n not in inputs]
    if missing:
        raise InvalidInput(
            f"input{'s' if len(missing) > 1 else ''} {', '.join(repr(m) for m in missing)} "
            f"missing: the model takes one input per column ({', '.join(repr(n) for n in names)})",
            details={"field": missing[0]},
        )
    rows: int | None = None
    columns: dict[str, np.ndarray[Any, Any]] = {}
    for spec in schema.columns:
        array = _column_shape(spec.name, inputs[spec.name])
        if rows is None:
            rows = len(array)
        elif len(array) != rows:
            raise InvalidInput(
                f"input {spec.name!r} has {len(array)} rows but {names[0]!r} has {rows}; "
                "every column needs one value per row",
                details={"field": spec.name},
            )
        columns[spec.name] = _converted(spec.name, array, spec.type, spec.nullable)
    return ModelInput(rows or 0, columns=columns)


def _unsigned_columns(inputs: Mapping[str, np.ndarray[Any, Any]]) -> ModelInput:
    columns = {name: _column_shape(name, array) for name, array in inputs.items()}
    lengths = {len(c) for c in columns.values()}
    if len(lengths) != 1:
        raise InvalidInput("every input needs the same number of rows")
    return ModelInput(lengths.pop(), columns=columns)


def _column_shape(name: str, array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    if array.ndim == 2 and array.shape[1] == 1:
        return array.reshape(-1)
    if array.ndim != 1:
        raise InvalidInput(
            f"input {name!r} has shape {list(array.shape)}; a column input has shape [N] "
            "(or [N, 1])",
            details={"field": name},
        )
    return array


def type_name(array: np.ndarray[Any, Any]) -> str:
    """The signature type name of an array's values (object arrays hold text or bytes)."""
    kind = array.dtype.kind
    if kind in "OUS":
        if kind == "S" or (kind == "O" and array.size and isinstance(array.flat[0], bytes)):
            return "binary"
        return "string"
    if kind == "M":
        return "datetime"
    return str(array.dtype.name)


def _converted(
    name: str, array: np.ndarray[Any, Any], expected: str, nullable: bool
) -> np.ndarray[Any, Any]:
    got = type_name(array)
    if expected in NUMERIC_TYPES:
        if got not in NUMERIC_TYPES or not castable(got, expected):
            raise InvalidInput(
                f"input {name!r} holds {got} values but the model expects {expected}, and "
                "they cannot be converted without changing them; send "
                f"{OIP_TYPES[expected]} (or a narrower type of the same kind)",
                details={"field": name, "expected": expected, "got": got},
            )
        if not nullable and array.dtype.kind == "f" and array.size:
            missing = np.isnan(array)
            if missing.any():
                raise InvalidInput(
                    f"input {name!r} has {int(missing.sum())} missing value"
                    f"{'s' if missing.sum() > 1 else ''} (null/NaN) at index "
                    f"{[int(i) for i in np.argwhere(missing)[0]]}, but the model was trained "
                    "without any; fill or drop them",
                    details={"field": name},
                )
        return array if got == expected else array.astype(expected)
    if got not in ("string", "binary"):
        raise InvalidInput(
            f"input {name!r} holds {got} values but the model expects {expected}; send "
            "BYTES (strings)",
            details={"field": name, "expected": expected, "got": got},
        )
    if expected == "binary":
        return array
    text = _as_text(name, array)
    if expected == "datetime":
        try:
            return np.asarray(text.astype(str), dtype="datetime64[ns]")
        except ValueError:
            raise InvalidInput(
                f"input {name!r} holds a value that is not an ISO 8601 date-time",
                details={"field": name},
            ) from None
    if not nullable and array.size and any(v is None for v in text.flat):
        raise InvalidInput(f"input {name!r} has missing values", details={"field": name})
    return text


def _as_text(name: str, array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    if array.dtype.kind != "O" or not array.size or not isinstance(array.flat[0], bytes):
        return array if array.dtype.kind == "O" else array.astype(object)
    try:
        decoded = [v.decode("utf-8") if isinstance(v, bytes) else v for v in array.flat]
    except UnicodeDecodeError:
        raise InvalidInput(
            f"input {name!r} is not UTF-8 text, which the model's string column needs",
            details={"field": name},
        ) from None
    out = np.empty(array.shape, dtype=object)
    out.flat[:] = decoded
    return out


# -- metadata ---------------------------------------------------------------------------------


def input_metadata(signature: ModelSignature | None) -> list[dict[str, Any]]:
    """The model's inputs as OIP metadata tensors (``-1`` for the batch axis)."""
    schema = None if signature is None else signature.inputs
    if isinstance(schema, TensorSchema):
        return [
            {
                "name": tensor_name(schema),
                "datatype": OIP_TYPES[schema.dtype],
                "shape": list(schema.shape),
            }
        ]
    if isinstance(schema, ColumnSchema):
        return [
            {"name": c.name, "datatype": OIP_TYPES[c.type], "shape": [-1]} for c in schema.columns
        ]
    return []


def output_metadata(
    signature: ModelSignature | None, classes: Sequence[Any] | np.ndarray[Any, Any] | None
) -> list[dict[str, Any]]:
    schema = None if signature is None else signature.outputs
    found: list[dict[str, Any]] = []
    if isinstance(schema, TensorSchema):
        found.append(
            {
                "name": "predictions",
                "datatype": OIP_TYPES[schema.dtype],
                "shape": list(schema.shape),
            }
        )
    else:
        found.append({"name": "predictions", "datatype": "BYTES", "shape": [-1]})
    if classes is not None:
        found.append({"name": "probabilities", "datatype": "FP64", "shape": [-1, len(classes)]})
    return found


# -- the body ---------------------------------------------------------------------------------


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with a 413 as soon as it passes ``limit`` bytes (read as a
    stream: an oversized body is never held whole in memory)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    from starlette.requests import ClientDisconnect

    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(size, limit)
            chunks.append(chunk)
    except ClientDisconnect:
        raise InvalidInput("the client disconnected before sending the whole body") from None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(size: int, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body is {'at least ' if size == limit + 1 else ''}{size} bytes, over "
        f"this deployment's limit of {limit} (guards.max_request_bytes); send fewer rows per "
        "request",
        details={"limit": limit},
    )


__all__ = [
    "DEFAULT_INPUT",
    "OIP_TYPES",
    "ModelInput",
    "input_metadata",
    "output_metadata",
    "read_body",
    "tensor_name",
    "type_name",
    "validate",
]
