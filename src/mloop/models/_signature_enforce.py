"""Check prediction input against a signature and hand the model what it was trained on.

Column schemas turn any accepted table (pandas, Polars, a dict of columns, records, or an
array with the right number of columns) into a pandas DataFrame with the signature's
columns, in its order, cast to its types; tensor schemas give a NumPy array. Every refusal
is a :class:`~mloop.errors.SignatureMismatch` naming the column (or feature index).

Casting is allowed only where no value can change meaning: integers to floats, narrower to
wider numbers of the same kind, bool to numbers. Floats to integers, numbers to strings and
strings to dates are refused: the caller knows which conversion is right, the model does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from mloop.errors import ConfigError, InvalidInput, SignatureMismatch
from mloop.models._signature import NUMERIC_TYPES, ColumnSchema, ColumnSpec, TensorSchema
from mloop.models._signature_infer import (
    array_type,
    is_pandas_frame,
    is_polars_frame,
    schema_of,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


def enforce(schema: ColumnSchema | TensorSchema, data: Any) -> Any:
    """``data`` checked and converted for a model whose inputs follow ``schema``."""
    if isinstance(schema, ColumnSchema):
        return _enforce_columns(schema, data)
    return _enforce_tensor(schema, data)


def castable(got: str, expected: str) -> bool:
    """Whether values of type ``got`` convert to ``expected`` without changing meaning."""
    if got == expected:
        return True
    if got not in NUMERIC_TYPES or expected not in NUMERIC_TYPES:
        return False
    import numpy as np

    if expected.startswith("float") and got.startswith(("int", "uint")):
        return True  # counts become floats everywhere (JSON, pandas); no value changes kind
    return bool(np.can_cast(got, expected, "safe"))


# -- columns ----------------------------------------------------------------------------------


def _enforce_columns(schema: ColumnSchema, data: Any) -> pd.DataFrame:
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - pandas comes with every tabular flavor
        raise ConfigError("checking tabular input needs pandas: `pip install 'mloop[ml]'`") from exc

    frame = _as_frame(schema, data)
    present = {str(c) for c in frame.columns}
    missing = [name for name in schema.names if name not in present]
    if missing:
        raise SignatureMismatch(
            f"input is missing column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(m) for m in missing)}; the model expects "
            f"{', '.join(repr(n) for n in schema.names)}",
            details={"column": missing[0], "missing": missing},
        )
    named = frame.rename(columns=str)
    given = {spec.name: named[spec.name] for spec in schema.columns}
    converted = {spec.name: _enforce_column(spec, given[spec.name]) for spec in schema.columns}
    if list(frame.columns) == schema.names and all(
        converted[name] is given[name] for name in schema.names
    ):
        return frame  # already what the model was trained on: pass it on untouched
    return pd.DataFrame(converted, index=frame.index)


def _as_frame(schema: ColumnSchema, data: Any) -> pd.DataFrame:
    import pandas as pd

    if is_pandas_frame(data):
        return cast("pd.DataFrame", data)
    if is_polars_frame(data):
        return cast("pd.DataFrame", data.to_pandas())
    if isinstance(data, Mapping):
        try:
            return pd.DataFrame({str(k): v for k, v in data.items()})
        except ValueError as exc:
            raise SignatureMismatch(f"the input columns do not form a table: {exc}") from exc
    if isinstance(data, list) and data and all(isinstance(row, Mapping) for row in data):
        return pd.DataFrame.from_records(data)
    import numpy as np

    try:
        array = np.asarray(data)
    except ValueError as exc:
        raise SignatureMismatch(f"the input is not a table or rectangular array: {exc}") from exc
    if array.ndim != 2 or array.shape[1] != len(schema.columns):
        got = f"{array.shape[1]}" if array.ndim == 2 else f"an array of shape {list(array.shape)}"
        raise SignatureMismatch(
            f"the model expects {len(schema.columns)} features per row "
            f"({', '.join(schema.names)}), got {got}; pass a DataFrame or dict with these "
            "columns, or rows of that many values",
            details={"expected_features": len(schema.columns)},
        )
    return pd.DataFrame(array, columns=schema.names)


def _enforce_column(spec: ColumnSpec, series: pd.Series[Any]) -> pd.Series[Any]:
    nulls = int(series.isna().sum())
    if nulls and not spec.nullable:
        raise SignatureMismatch(
            f"column {spec.name!r} has {nulls} missing value{'s' if nulls > 1 else ''} "
            "(null/NaN), but the model was trained without any there; fill or drop them",
            details={"column": spec.name, "nulls": nulls},
        )
    if nulls == len(series):
        return series  # nothing to check; the model sees all-missing, which it allows
    try:
        got = schema_of(series.dropna().rename(spec.name)).columns[0].type  # type: ignore[union-attr]
    except InvalidInput as exc:
        raise SignatureMismatch(exc.message, details={"column": spec.name}) from None
    if not castable(got, spec.type):
        raise SignatureMismatch(
            f"column {spec.name!r} holds {got} values but the model expects {spec.type}, "
            "and they cannot be converted without changing them; cast the column first",
            details={"column": spec.name, "expected": spec.type, "got": got},
        )
    if got == spec.type or spec.type not in NUMERIC_TYPES:
        return series
    if nulls and not spec.type.startswith("float"):
        return series  # NumPy integers and bools have no null; the values already fit
    return series.astype(cast(Any, spec.type))


# -- tensors ----------------------------------------------------------------------------------


def _enforce_tensor(schema: TensorSchema, data: Any) -> np.ndarray[Any, Any]:
    import numpy as np

    if is_pandas_frame(data) or is_polars_frame(data):
        data = data.to_numpy()
    try:
        array = np.asarray(data)
    except ValueError as exc:
        raise SignatureMismatch(f"the input is not a rectangular array: {exc}") from exc
    expected = list(schema.shape)
    if array.ndim != len(expected):
        raise SignatureMismatch(
            f"the input has shape {list(array.shape)} but the model expects {len(expected)} "
            f"dimension{'s' if len(expected) > 1 else ''} (shape {expected}, -1 = any)",
            details={"expected_shape": expected, "shape": list(array.shape)},
        )
    for axis, (want, have) in enumerate(zip(expected, array.shape, strict=True)):
        if want != -1 and want != have:
            what = "features per row" if axis == 1 and len(expected) == 2 else f"on axis {axis}"
            raise SignatureMismatch(
                f"the model expects {want} {what}, got {have} (input shape "
                f"{list(array.shape)}, expected {expected})",
                details={"axis": axis, "expected": want, "got": have},
            )
    if array.size == 0:
        return array.astype(schema.dtype) if schema.dtype in NUMERIC_TYPES else array
    try:
        got, has_nulls = array_type(array, "the input")
    except InvalidInput as exc:
        raise SignatureMismatch(exc.message) from None
    if has_nulls and not schema.nullable:
        raise SignatureMismatch(
            f"the input has missing values (null/NaN) at {_where_missing(array)}, but the "
            "model was trained without any; fill or drop them",
            details={"feature": _first_missing_feature(array)},
        )
    if not castable(got, schema.dtype):
        raise SignatureMismatch(
            f"the input holds {got} values but the model expects {schema.dtype}, and they "
            "cannot be converted without changing them; cast the array first",
            details={"expected": schema.dtype, "got": got},
        )
    if got != schema.dtype and schema.dtype in NUMERIC_TYPES:
        return array.astype(schema.dtype)
    return array


def _missing_mask(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    import numpy as np

    if array.dtype.kind == "f":
        mask = np.isnan(array)
    elif array.dtype.kind == "M":
        mask = np.isnat(array)
    else:
        mask = np.frompyfunc(lambda v: v is None or (isinstance(v, float) and v != v), 1, 1)(array)
    return np.asarray(mask, dtype=bool)


def _first_missing_feature(array: np.ndarray[Any, Any]) -> int | None:
    import numpy as np

    mask = _missing_mask(array)
    if array.ndim < 2 or not mask.any():
        return None
    return int(np.argwhere(mask)[0][1])


def _where_missing(array: np.ndarray[Any, Any]) -> str:
    import numpy as np

    mask = _missing_mask(array)
    first = [int(i) for i in np.argwhere(mask)[0]]
    if array.ndim == 2:
        return f"feature {first[1]} (row {first[0]}; {int(mask.sum())} in all)"
    return f"index {first} ({int(mask.sum())} in all)"
