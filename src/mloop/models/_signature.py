"""What a model accepts and returns: named, typed columns or one typed tensor.

A signature is recorded in the package manifest at save time and checked before every
prediction, so a serving mistake (a renamed column, strings where numbers were trained, a
null the model never saw) fails with the column's name instead of a silently wrong answer.
The types are a small, closed vocabulary so that the manifest means the same thing to every
reader; :mod:`mloop.models._signature_infer` maps data to it and
:mod:`mloop.models._signature_enforce` checks data against it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

DataType = Literal[
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "string",
    "binary",
    "datetime",
]
NUMERIC_TYPES: frozenset[str] = frozenset(get_args(DataType)) - {"string", "binary", "datetime"}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ColumnSpec(_Frozen):
    """One named input or output column: its type and whether it may hold nulls (or NaN)."""

    name: str = Field(min_length=1)
    type: DataType
    nullable: bool = False


class ColumnSchema(_Frozen):
    """Tabular data: a DataFrame, a dict of columns, or rows in this column order."""

    kind: Literal["columns"] = "columns"
    columns: tuple[ColumnSpec, ...] = Field(min_length=1)

    @field_validator("columns")
    @classmethod
    def _unique_names(cls, columns: tuple[ColumnSpec, ...]) -> tuple[ColumnSpec, ...]:
        seen: set[str] = set()
        for column in columns:
            if column.name in seen:
                raise ValueError(f"column {column.name!r} appears twice")
            seen.add(column.name)
        return columns

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


class TensorSchema(_Frozen):
    """One array; ``shape`` has ``-1`` for any size (the batch axis first, always -1)."""

    kind: Literal["tensor"] = "tensor"
    dtype: DataType
    shape: tuple[int, ...] = Field(min_length=1)
    nullable: bool = False
    name: str | None = None

    @field_validator("shape")
    @classmethod
    def _valid_shape(cls, shape: tuple[int, ...]) -> tuple[int, ...]:
        if shape[0] != -1:
            raise ValueError("the first (batch) axis of a tensor shape must be -1")
        if any(size < -1 or size == 0 for size in shape):
            raise ValueError(f"shape {list(shape)} has a size that is neither -1 nor positive")
        return shape


Schema = Annotated[ColumnSchema | TensorSchema, Field(discriminator="kind")]


class ModelSignature(_Frozen):
    """The inputs a model accepts and, when known, the outputs it returns."""

    inputs: Schema
    outputs: Schema | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSignature:
        return cls.model_validate(data)
