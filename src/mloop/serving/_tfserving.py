"""TF-Serving's JSON REST format: ``POST /v1/models/{name}:predict``.

Requests are ``{"instances": [...]}`` (rows: lists in the signature's column order, or
objects of named columns) or ``{"inputs": ...}`` (columnar: one list per named input, or
the one tensor). The answer is ``{"predictions": [...]}``: one value per row, or one
object per row when the deployment returns several outputs (``top_k`` guards).

JSON numbers carry no width, so numbers are given the signature's own numeric type when
every value fits it (an integer-valued request to a float32 model is fine; a fraction to
an integer column is still refused by :mod:`._validation`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson

from mloop.errors import InvalidInput
from mloop.models._signature import NUMERIC_TYPES, ColumnSchema, TensorSchema
from mloop.serving._oip import _with_nulls
from mloop.serving._validation import DEFAULT_INPUT, tensor_name

Arrays = dict[str, np.ndarray[Any, Any]]


def decode_predict(body: bytes, signature: Any) -> tuple[Arrays, str | None]:
    """Named input arrays from a ``:predict`` body, and the ``id`` if the client sent one."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidInput('the body must be a JSON object: {"instances": [...]} or {"inputs": …}')
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput("'id' must be a string")
    schema = None if signature is None else signature.inputs
    if ("instances" in document) == ("inputs" in document):
        raise InvalidInput('give exactly one of "instances" (rows) or "inputs" (columns)')
    if "instances" in document:
        return _instances(document["instances"], schema), request_id
    return _inputs(document["inputs"], schema), request_id


def _instances(rows: Any, schema: Any) -> Arrays:
    if not isinstance(rows, list) or not rows:
        raise InvalidInput("'instances' must be a non-empty list of rows")
    if all(isinstance(r, dict) for r in rows):
        names = list(rows[0])
        for index, row in enumerate(rows):
            if list(row) != names and set(row) != set(names):
                raise InvalidInput(
                    f"instances[{index}] has the fields {sorted(row)} but instances[0] has "
                    f"{sorted(names)}; every row needs the same fields"
                )
        columns = {name: [row[name] for row in rows] for name in names}
        return _named(columns, schema)
    if any(isinstance(r, dict) for r in rows):
        raise InvalidInput("'instances' mixes objects and lists; use one form for every row")
    if isinstance(schema, ColumnSchema):
        width = len(schema.columns)
        for index, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != width:
                raise InvalidInput(
                    f"instances[{index}] must be a list of {width} values "
                    f"({', '.join(schema.names)}), or an object naming them",
                    details={"field": f"instances[{index}]"},
                )
        return {
            spec.name: _typed([row[j] for row in rows], spec.type, spec.name)
            for j, spec in enumerate(schema.columns)
        }
    name = tensor_name(schema) if isinstance(schema, TensorSchema) else DEFAULT_INPUT
    dtype = schema.dtype if isinstance(schema, TensorSchema) else None
    return {name: _typed(rows, dtype, "instances")}


def _inputs(value: Any, schema: Any) -> Arrays:
    if isinstance(value, dict):
        return _named(value, schema)
    name = tensor_name(schema) if isinstance(schema, TensorSchema) else DEFAULT_INPUT
    dtype = schema.dtype if isinstance(schema, TensorSchema) else None
    return {name: _typed(value, dtype, "inputs")}


def _named(columns: Mapping[str, Any], schema: Any) -> Arrays:
    types: dict[str, str] = {}
    if isinstance(schema, ColumnSchema):
        types = {c.name: c.type for c in schema.columns}
    elif isinstance(schema, TensorSchema):
        types = {tensor_name(schema): schema.dtype}
    return {name: _typed(values, types.get(name), name) for name, values in columns.items()}


def _typed(values: Any, expected: str | None, where: str) -> np.ndarray[Any, Any]:
    if not isinstance(values, list):
        values = [values]
    try:
        array = np.asarray(values)
    except ValueError:
        raise InvalidInput(
            f"{where} is ragged: every row needs the same number of values",
            details={"field": where},
        ) from None
    kind = array.dtype.kind
    if kind == "U":
        return array.astype(object)
    if kind == "O" and expected is not None and expected.startswith("float"):
        array, kind = _with_nulls(array, where), "f"
    if expected not in NUMERIC_TYPES or kind not in "biuf" or array.size == 0:
        return array
    target = np.dtype(expected)
    if target.kind == "f" and kind in "iuf":
        with np.errstate(over="ignore"):
            narrowed = array.astype(target)
        if (np.isinf(narrowed) & np.isfinite(array)).any():
            return array  # beyond the model's float width: validation refuses it
        return narrowed
    if target.kind in "iu" and kind in "iu":
        info = np.iinfo(target)
        if array.min() >= info.min and array.max() <= info.max:
            return array.astype(target)
    return array


def encode_predictions(outputs: Mapping[str, np.ndarray[Any, Any]], request_id: str) -> bytes:
    """``{"predictions": [...], "id": ...}``: the one output's rows, or one object per row."""
    if list(outputs) == ["predictions"]:
        predictions: Any = _plain(outputs["predictions"])
    else:
        lists = {name: _plain(value) for name, value in outputs.items()}
        rows = len(next(iter(lists.values()))) if lists else 0
        predictions = [{name: values[i] for name, values in lists.items()} for i in range(rows)]
    return orjson.dumps({"predictions": predictions, "id": request_id})


def _plain(array: np.ndarray[Any, Any]) -> list[Any]:
    if array.dtype.kind == "O":
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in array.tolist()]
    result: list[Any] = array.tolist()
    return result


__all__ = ["decode_predict", "encode_predictions"]
