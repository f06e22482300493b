"""Signatures from example data: pandas and Polars frames, dicts of columns, arrays.

Tables give a :class:`ColumnSchema` (a column is nullable when the example holds a null or
NaN in it); arrays give one :class:`TensorSchema` whose batch axis is ``-1``. Ambiguous data
(an object column mixing strings and numbers, a column with no values at all) is refused
with the column's name rather than guessed, because a guess becomes a contract.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from mloop.errors import InvalidInput
from mloop.models._signature import (
    ColumnSchema,
    ColumnSpec,
    DataType,
    ModelSignature,
    TensorSchema,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import polars as pl

_NUMPY_NAMES: dict[str, DataType] = {
    "bool": "bool",
    "int8": "int8",
    "int16": "int16",
    "int32": "int32",
    "int64": "int64",
    "uint8": "uint8",
    "uint16": "uint16",
    "uint32": "uint32",
    "uint64": "uint64",
    "float16": "float16",
    "float32": "float32",
    "float64": "float64",
}


def infer_signature(model_input: Any, model_output: Any = None) -> ModelSignature:
    """The signature of a model trained on ``model_input`` and answering ``model_output``.

    ``model_input`` is a pandas or Polars DataFrame, a dict of columns, or an array-like of
    shape ``[N, ...]``; ``model_output`` (optional) is what ``predict`` returned for it.
    """
    outputs = schema_of(model_output, role="output") if model_output is not None else None
    return ModelSignature(inputs=schema_of(model_input, role="input"), outputs=outputs)


def schema_of(data: Any, *, role: str = "input") -> ColumnSchema | TensorSchema:
    """The schema of one piece of data, as the signature would record it."""
    if is_pandas_frame(data):
        return _frame_schema(cast("pd.DataFrame", data))
    if is_pandas_series(data):
        series = cast("pd.Series[Any]", data)
        name = str(series.name) if series.name is not None else role
        return ColumnSchema(columns=(_series_spec(name, series),))
    if is_polars_frame(data):
        return _polars_schema(cast("pl.DataFrame", data))
    if isinstance(data, Mapping):
        return _dict_schema(data)
    return _tensor_schema(data, role)


def is_pandas_frame(data: Any) -> bool:
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(data, pandas.DataFrame)


def is_pandas_series(data: Any) -> bool:
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(data, pandas.Series)


def is_polars_frame(data: Any) -> bool:
    polars = sys.modules.get("polars")
    return polars is not None and isinstance(data, polars.DataFrame)


def _frame_schema(frame: pd.DataFrame) -> ColumnSchema:
    if frame.shape[1] == 0:
        raise InvalidInput("the example DataFrame has no columns; give the data the model reads")
    names = [str(name) for name in frame.columns]
    if len(set(names)) != len(names):
        raise InvalidInput(f"the example DataFrame repeats a column name: {names}")
    return ColumnSchema(
        columns=tuple(_series_spec(name, frame.iloc[:, i]) for i, name in enumerate(names))
    )


def _series_spec(name: str, series: pd.Series[Any]) -> ColumnSpec:
    import pandas as pd

    dtype = series.dtype
    nullable = bool(series.isna().any())
    if isinstance(dtype, pd.CategoricalDtype):
        return ColumnSpec(
            name=name, type=_series_spec(name, series.astype(dtype.categories.dtype)).type,
            nullable=nullable,
        )  # fmt: skip
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return ColumnSpec(name=name, type="datetime", nullable=nullable)
    if pd.api.types.is_bool_dtype(dtype):
        return ColumnSpec(name=name, type="bool", nullable=nullable)
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        numpy_name = str(getattr(dtype, "numpy_dtype", dtype))
        if numpy_name in _NUMPY_NAMES:
            return ColumnSpec(name=name, type=_NUMPY_NAMES[numpy_name], nullable=nullable)
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        return ColumnSpec(name=name, type=_object_type(name, series.dropna()), nullable=nullable)
    raise InvalidInput(
        f"column {name!r} has dtype {dtype}, which a model signature cannot describe; "
        "cast it to a number, bool, string or datetime column"
    )


def _object_type(name: str, values: Sequence[Any] | pd.Series[Any]) -> DataType:
    """The type of a column of Python objects: all str, all bytes, or all numbers."""
    kinds: set[str] = set()
    for value in values:
        if isinstance(value, str):
            kinds.add("string")
        elif isinstance(value, bytes | bytearray):
            kinds.add("binary")
        elif isinstance(value, bool):
            kinds.add("bool")
        elif isinstance(value, int):
            kinds.add("int64")
        elif isinstance(value, float):
            kinds.add("float64")
        else:
            kinds.add(type(value).__name__)
        if len(kinds) > 1:
            break
    if not kinds:
        raise InvalidInput(
            f"{_label(name)} holds no values in the example, so its type cannot be inferred; "
            "give an example with values, or a signature"
        )
    if len(kinds) > 1 or next(iter(kinds)) not in _OBJECT_KINDS:
        raise InvalidInput(
            f"{_label(name)} mixes or holds values a signature cannot describe "
            f"({', '.join(sorted(kinds))}); cast it to one type"
        )
    return cast(DataType, next(iter(kinds)))


_OBJECT_KINDS = {"string", "binary", "bool", "int64", "float64"}


def _label(name: str) -> str:
    return name if name.startswith("the ") else f"column {name!r}"


def _polars_schema(frame: pl.DataFrame) -> ColumnSchema:
    import polars as pl

    if frame.width == 0:
        raise InvalidInput("the example DataFrame has no columns; give the data the model reads")
    specs = []
    for series in frame.get_columns():
        dtype = series.dtype
        nullable = series.null_count() > 0
        if dtype.is_float():
            nullable = nullable or bool(series.is_nan().any())
        if dtype == pl.Boolean:
            kind: str = "bool"
        elif dtype.is_integer() or dtype.is_float():
            kind = _POLARS_NUMERIC.get(str(dtype), "")
        elif dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
            kind = "string"
        elif dtype == pl.Binary:
            kind = "binary"
        elif isinstance(dtype, pl.Datetime) or dtype == pl.Date:
            kind = "datetime"
        else:
            kind = ""
        if not kind:
            raise InvalidInput(
                f"column {series.name!r} has dtype {dtype}, which a model signature cannot "
                "describe; cast it to a number, bool, string or datetime column"
            )
        specs.append(ColumnSpec(name=series.name, type=cast(DataType, kind), nullable=nullable))
    return ColumnSchema(columns=tuple(specs))


_POLARS_NUMERIC = {
    "Int8": "int8",
    "Int16": "int16",
    "Int32": "int32",
    "Int64": "int64",
    "UInt8": "uint8",
    "UInt16": "uint16",
    "UInt32": "uint32",
    "UInt64": "uint64",
    "Float32": "float32",
    "Float64": "float64",
}


def _dict_schema(columns: Mapping[Any, Any]) -> ColumnSchema:
    if not columns:
        raise InvalidInput("the example dict has no columns; give the data the model reads")
    specs = []
    for key, values in columns.items():
        name = str(key)
        array = _as_array(values, f"column {name!r}")
        if array.ndim != 1:
            raise InvalidInput(
                f"column {name!r} of the example dict is not one-dimensional "
                f"(shape {list(array.shape)}); give one list or array per column"
            )
        kind, nullable = array_type(array, name)
        specs.append(ColumnSpec(name=name, type=kind, nullable=nullable))
    return ColumnSchema(columns=tuple(specs))


def _tensor_schema(data: Any, role: str) -> TensorSchema:
    array = _as_array(data, f"the {role}")
    if array.ndim == 0:
        raise InvalidInput(
            f"the {role} is a single value; give a batch: an array of shape [N, ...], a "
            "DataFrame or a dict of columns"
        )
    kind, nullable = array_type(array, f"the {role}")
    return TensorSchema(dtype=kind, shape=(-1, *array.shape[1:]), nullable=nullable)


def _as_array(data: Any, label: str) -> np.ndarray[Any, Any]:
    import numpy as np

    if isinstance(data, np.ndarray):
        return data
    if isinstance(data, str | bytes) or not (
        hasattr(data, "__len__") or hasattr(data, "__array__")
    ):
        raise InvalidInput(
            f"{label} is a {type(data).__name__}; give a DataFrame, a dict of columns or an "
            "array of shape [N, ...]"
        )
    try:
        return np.asarray(data)
    except ValueError as exc:
        raise InvalidInput(f"{label} is not a rectangular array: {exc}") from exc


def array_type(array: np.ndarray[Any, Any], name: str) -> tuple[DataType, bool]:
    """The signature type of an array's elements, and whether it holds null or NaN;
    ``name`` (a column name, or "the input") is what an error message points at."""
    import numpy as np

    label = _label(name)
    kind = array.dtype.kind
    if kind == "O":
        flat = array.ravel()
        present = [v for v in flat if v is not None and not (isinstance(v, float) and v != v)]
        return _object_type(name, present), len(present) < len(flat)
    if kind == "f":
        if array.dtype.name not in _NUMPY_NAMES:
            raise InvalidInput(f"{label} has dtype {array.dtype}; cast it to float64")
        return cast(DataType, array.dtype.name), bool(np.isnan(array).any())
    if kind in "biu":
        return _NUMPY_NAMES[array.dtype.name], False
    if kind == "U":
        return "string", False
    if kind == "S":
        return "binary", False
    if kind == "M":
        return "datetime", bool(np.isnat(array).any())
    raise InvalidInput(
        f"{label} has dtype {array.dtype}, which a model signature cannot describe; cast it "
        "to a number, bool, string or datetime"
    )
