"""A window of the prediction log as columns monitoring can compute on.

The log stores inputs and outputs as JSON text (one object per request, whatever the
protocol), so this is where requests become rows: a tensor input ``{"input-0": [[5.1,
3.5, …]]}`` gives one row per tensor row and one column per position (named after the
training data's features when the caller knows them), named columns ``{"age": [31,
40]}`` give one row per element. Outputs become one predicted value per request (the
first row's; feedback labels a request) and every row's values for the distribution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import polars as pl
import pyarrow as pa

PREDICTION_KEYS = ("predictions", "label", "labels", "prediction", "output-0")
"""Output names tried, in order, for the predicted value; else the first output that is
not a probability vector."""


def _scalar(value: Any) -> Any:
    while isinstance(value, list) and value:
        value = value[0]
    return None if isinstance(value, list) else value


def _prediction_values(outputs: Any) -> list[Any]:
    """Every row's predicted value of one answer (empty for a failed request)."""
    if not isinstance(outputs, dict) or not outputs:
        return []
    key = next((k for k in PREDICTION_KEYS if k in outputs), None)
    if key is None:
        key = next((k for k in outputs if "probabilit" not in k), None)
    if key is None:
        return []
    value = outputs[key]
    if not isinstance(value, list):
        return [value]
    return [_scalar(v) for v in value]


@dataclass(frozen=True)
class OutputColumn:
    """Predicted values of some requests: ``first`` per request (None where there is
    none, e.g. a failed request) and ``values``, every row's."""

    first: list[Any]
    values: list[Any]


def predictions_per_request(outputs_json: Sequence[str | None]) -> list[list[Any]]:
    """Every request's predicted values (one per row; empty for a failed request), decoded
    once per window. Uniform outputs go through Polars in one pass."""
    fast = _uniform_predictions(outputs_json)
    if fast is not None:
        return fast
    return [
        [v for v in _prediction_values(orjson.loads(text)) if v is not None] if text else []
        for text in outputs_json
    ]


def _uniform_predictions(texts: Sequence[str | None]) -> list[list[Any]] | None:
    frame = _decoded(texts)
    if frame is None:
        return None
    key = next((k for k in PREDICTION_KEYS if k in frame.columns), None)
    if key is None:
        key = next((k for k in frame.columns if "probabilit" not in k), None)
    if key is None or frame[key].null_count():
        return None
    kind = frame.schema[key]
    if not isinstance(kind, pl.List) or not _scalar_dtype(kind.inner) or kind.inner == pl.Null:
        return None
    column = frame[key]
    if column.explode().null_count() == 0 and all(texts):
        return column.to_list()  # the common case: nothing to drop, nothing to line up
    found = iter(column.to_list())
    return [[v for v in next(found) if v is not None] if text else [] for text in texts]


def output_values(outputs_json: Sequence[str | None]) -> OutputColumn:
    return outputs_of(predictions_per_request(outputs_json))


def outputs_of(per_request: Sequence[Sequence[Any]]) -> OutputColumn:
    return OutputColumn(
        [found[0] if found else None for found in per_request],
        [v for found in per_request for v in found],
    )


def is_regression(values: Sequence[Any]) -> bool:
    """Numbers that are not all whole are a regression's answers; labels (text, whole
    numbers, booleans) are a classifier's."""
    numeric = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if not numeric or len(numeric) < len(values):
        return False
    return any(isinstance(v, float) and not float(v).is_integer() for v in numeric)


def value_bin(value: float) -> str:
    """The bin of a numeric output: one significant digit in half steps (1, 1.5, 2, … 9.5
    times a power of ten), so bins are the same in every window and for every model
    version without knowing the range first, and about 18 per decade."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    digits, _, power = f"{abs(value):.17e}".partition("e")  # exact for tiny and huge values
    exponent = int(power)
    mantissa = math.floor(float(digits) * 2) / 2
    return f"{'-' if value < 0 else ''}{mantissa:g}e{exponent}"


def label_key(value: Any) -> str:
    """Text that compares labels and predictions: ``1``, ``1.0`` and ``"1"`` are one class."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def distribution(values: Sequence[Any]) -> dict[str, float]:
    """Share of each label, or of each numeric bin for a regression."""
    if not values:
        return {}
    regression = is_regression(values)
    counts: dict[str, int] = {}
    for value in values:
        key = value_bin(float(value)) if regression else label_key(value)
        counts[key] = counts.get(key, 0) + 1
    total = len(values)
    return {key: count / total for key, count in sorted(counts.items())}


def _columns_of(inputs: Any, names: Sequence[str] | None) -> dict[str, list[Any]] | None:
    """One request's inputs as equal-length columns, or None when they are not tabular."""
    if not isinstance(inputs, dict) or not inputs:
        return None
    columns: dict[str, list[Any]] = {}
    for name, value in inputs.items():
        if isinstance(value, list) and value and isinstance(value[0], list):
            width = len(value[0])
            labels = (
                list(names)
                if names is not None and len(names) == width and len(inputs) == 1
                else [f"{name}[{j}]" for j in range(width)]
            )
            for j, label in enumerate(labels):
                columns[label] = [_scalar(row[j]) if j < len(row) else None for row in value]
        elif isinstance(value, list):
            columns[name] = [_scalar(v) for v in value]
        else:
            columns[name] = [value]
    lengths = {len(c) for c in columns.values()}
    return columns if len(lengths) == 1 else None


def input_table(inputs_json: Sequence[str | None], names: Sequence[str] | None = None) -> pa.Table:
    """The rows of every request's inputs as one table (columns typed by Arrow; a column
    mixing numbers and text becomes text). Requests whose inputs are not tabular (ragged,
    nested deeper) are left out.

    Uniform logs (every request the same shape: what one deployment's clients send) are
    decoded by Polars in one vectorized pass; anything else goes through the per-request
    path, which gives the same table."""
    fast = _uniform_inputs(inputs_json, names)
    return fast if fast is not None else _input_table_per_request(inputs_json, names)


def _decoded(texts: Sequence[str | None]) -> pl.DataFrame | None:
    """The JSON objects as a frame of their fields (Arrow's multithreaded JSON reader), or
    None when they do not fit one schema (the per-request path decides then)."""
    import io

    import pyarrow.json as pa_json

    present = [t for t in texts if t]
    if not present:
        return None
    try:  # the log's JSON text is one line per object (orjson escapes newlines)
        table = pa_json.read_json(io.BytesIO("\n".join(present).encode()))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    if table.num_rows != len(present):
        return None
    frame = pl.from_arrow(table)
    return frame if isinstance(frame, pl.DataFrame) else None


def _scalar_dtype(dtype: Any) -> bool:
    return not isinstance(dtype, pl.List | pl.Array | pl.Struct | pl.Object)


def _uniform_inputs(texts: Sequence[str | None], names: Sequence[str] | None) -> pa.Table | None:
    frame = _decoded(texts)
    if frame is None or frame.width == 0 or any(frame[c].null_count() for c in frame.columns):
        return None
    kinds = {c: frame.schema[c] for c in frame.columns}
    if all(_scalar_dtype(k) for k in kinds.values()):
        return frame.to_arrow()
    if all(isinstance(k, pl.List) and _scalar_dtype(k.inner) for k in kinds.values()):
        lengths = frame.select(pl.col(c).list.len() for c in frame.columns)
        first = lengths[frame.columns[0]]
        if (first == 0).any() or any((lengths[c] != first).any() for c in frame.columns):
            return None  # ragged or empty requests: explode would not say what they mean
        return frame.explode(frame.columns).to_arrow()
    if len(kinds) == 1:
        ((name, kind),) = kinds.items()
        inner = kind.inner if isinstance(kind, pl.List) else None
        if not isinstance(inner, pl.List) or not _scalar_dtype(inner.inner):
            return None
        if (frame[name].list.len() == 0).any():
            return None
        rows = frame.explode(name)
        widths = rows[name].list.len()
        if rows[name].null_count() or widths.n_unique() != 1 or not rows.height:
            return None
        width = int(widths[0])
        labels = (
            list(names) if names is not None and len(names) == width
            else [f"{name}[{j}]" for j in range(width)]
        )  # fmt: skip
        return rows.select(
            pl.col(name).list.get(j).alias(label) for j, label in enumerate(labels)
        ).to_arrow()
    return None


def _input_table_per_request(
    inputs_json: Sequence[str | None], names: Sequence[str] | None
) -> pa.Table:
    collected: dict[str, list[Any]] = {}
    rows = 0
    for text in inputs_json:
        if not text:
            continue
        columns = _columns_of(orjson.loads(text), names)
        if columns is None:
            continue
        length = len(next(iter(columns.values())))
        for name, values in columns.items():
            column = collected.get(name)
            if column is None:
                column = collected[name] = [None] * rows
            column.extend(values)
        rows += length
        for column in collected.values():
            if len(column) < rows:
                column.extend([None] * (rows - len(column)))
    return pa.table({name: _array(values) for name, values in collected.items()})


def _array(values: list[Any]) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())
