"""Requests' JSON inputs and outputs as columns: the vectorized path and the per-request
path give the same table, whatever the shape of the log."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from mloop.monitoring._logframes import (
    _input_table_per_request,
    distribution,
    input_table,
    output_values,
    value_bin,
)

numbers = st.one_of(st.integers(-1000, 1000), st.floats(-1e6, 1e6, allow_nan=False))
columns = st.dictionaries(st.sampled_from(["a", "b", "c"]), st.lists(numbers, min_size=0, max_size=3),
                          min_size=1, max_size=3)  # fmt: skip
tensor = (
    st.integers(1, 3)
    .flatmap(
        lambda width: st.lists(
            st.lists(numbers, min_size=width, max_size=width), min_size=1, max_size=3
        )
    )
    .map(lambda rows: {"input-0": rows})
)
scalars = st.dictionaries(st.sampled_from(["a", "b"]), st.one_of(numbers, st.text(max_size=3)),
                          min_size=1, max_size=2)  # fmt: skip


def _same(texts: list[str | None], names: list[str] | None = None) -> None:
    fast = input_table(texts, names)
    slow = _input_table_per_request(texts, names)
    assert sorted(fast.column_names) == sorted(slow.column_names)
    for name in slow.column_names:
        a, b = fast.column(name).to_pylist(), slow.column(name).to_pylist()
        assert [None if v is None else float(v) if not isinstance(v, str) else v for v in a] == [
            None if v is None else float(v) if not isinstance(v, str) else v for v in b
        ]


@settings(deadline=None)  # the first call imports Polars' JSON decoder
@given(st.lists(st.one_of(columns, tensor, scalars, st.none()), max_size=6))
def test_any_log_reads_the_same_both_ways(records: list[Any]) -> None:
    _same([None if r is None else orjson.dumps(r).decode() for r in records])


@settings(deadline=None)
@given(st.lists(tensor, min_size=1, max_size=5))
def test_tensor_columns_take_the_training_names_when_the_width_matches(records: list[Any]) -> None:
    texts: list[str | None] = [orjson.dumps(r).decode() for r in records]
    _same(texts, ["f0", "f1"])
    _same(texts, ["f0", "f1", "f2"])


def test_outputs_first_and_every_value() -> None:
    got = output_values(
        [
            orjson.dumps(
                {"predictions": ["a", "b"], "probabilities": [[0.9, 0.1], [0.2, 0.8]]}
            ).decode(),
            None,  # a failed request
            orjson.dumps({"label": ["c"]}).decode(),
        ]
    )
    assert got.first == ["a", None, "c"]
    assert got.values == ["a", "b", "c"]


@given(st.floats(-1e9, 1e9, allow_nan=False).filter(lambda v: abs(v) > 1e-300))
def test_value_bins_hold_their_values(value: float) -> None:
    key = value_bin(value)
    mantissa, _, exponent = key.lstrip("-").partition("e")
    low = float(mantissa) * 10 ** int(exponent)
    assert low <= abs(value) * (1 + 1e-12)
    assert abs(value) < (float(mantissa) + 0.5) * 10 ** int(exponent) * (1 + 1e-12)


def test_distribution_of_labels_and_numbers() -> None:
    assert distribution(["a", "b", "a", 1, 1.0]) == {"1": 0.4, "a": 0.4, "b": 0.2}
    shares = distribution([0.11, 0.12, 0.5, 250.0])
    assert shares == {"1e-1": 0.5, "5e-1": 0.25, "2.5e2": 0.25}


def test_uniform_logs_take_the_vectorized_path() -> None:
    from mloop.monitoring._logframes import _uniform_inputs

    tensors = [orjson.dumps({"input-0": [[1.0, 2.5], [3, 4]]}).decode()] * 3
    named = [orjson.dumps({"a": [1, 2], "b": ["x", "y"]}).decode()] * 3
    ragged = [orjson.dumps({"a": [1, 2], "b": ["x"]}).decode()]
    assert _uniform_inputs(tensors, ["f0", "f1"]).column_names == ["f0", "f1"]  # type: ignore[union-attr]
    assert _uniform_inputs(named, None).num_rows == 6  # type: ignore[union-attr]
    assert _uniform_inputs(ragged, None) is None
    assert input_table(ragged).num_rows == 0  # not tabular: left out
