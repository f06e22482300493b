"""Slices (single columns, crosses, quartiles of numbers, missing values) and the
reference tables slices are held to."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mloop.errors import InvalidInput, NotFound
from mloop.evaluation._reference import gap, load_reference, normalize_key
from mloop.evaluation._slices import MISSING, parse_slice, slice_rows


def test_a_cross_has_one_slice_per_combination_present_covering_every_row() -> None:
    frame = pd.DataFrame(
        {"sex": ["F", "M", "F", "M", "F"], "age": ["<30", "<30", "50+", "50+", "<30"]}
    )
    found = slice_rows(frame, "sex*age")
    keys = [s.key for s in found]  # largest first, then by key
    assert keys == ["sex=F & age=<30", "sex=F & age=50+", "sex=M & age=50+", "sex=M & age=<30"]
    assert {s.key: s.rows.tolist() for s in found}["sex=F & age=<30"] == [0, 4]
    assert sorted(np.concatenate([s.rows for s in found]).tolist()) == list(range(5))


def test_many_valued_numbers_are_cut_into_quartiles_and_missing_values_kept() -> None:
    values = np.arange(100, dtype=float)
    values[:3] = np.nan
    found = slice_rows(pd.DataFrame({"income": values}), "income")
    keys = [s.key for s in found]
    assert f"income={MISSING}" in keys
    assert len(keys) == 5  # four quartiles and the missing rows
    assert sum(s.rows.size for s in found) == 100
    assert any(k.startswith("income=[") and k.endswith("]") for k in keys)  # last bin is closed


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b", "c", None]), min_size=1, max_size=50),
    st.lists(st.integers(0, 3), min_size=1, max_size=50),
)
def test_slices_partition_the_rows(left: list[str | None], right: list[int]) -> None:
    n = min(len(left), len(right))
    frame = pd.DataFrame({"x": left[:n], "y": right[:n]})
    for spec in ("x", "y", "x*y"):
        rows = np.concatenate([s.rows for s in slice_rows(frame, spec)])
        assert sorted(rows.tolist()) == list(range(n))


@pytest.mark.parametrize("bad", ["", "sex*", "sex*sex", "a=b", "*"])
def test_bad_slice_specs_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput, match="slice"):
        parse_slice(bad)


def test_reference_tables_in_every_format_agree(tmp_path: Path) -> None:
    wide = tmp_path / "wide.csv"
    wide.write_text("slice,accuracy,f1\noverall,0.95,0.93\nsex = F,0.94,\n")
    long = tmp_path / "long.csv"
    long.write_text(
        "slice,metric,value\noverall,accuracy,0.95\noverall,f1,0.93\nsex=F,accuracy,0.94\n"
    )
    yaml_file = tmp_path / "human.yaml"
    yaml_file.write_text("overall: {accuracy: 0.95, f1: 0.93}\n'sex=F': 0.94\n")
    expected = {"overall": {"accuracy": 0.95, "f1": 0.93}, "sex=F": {"accuracy": 0.94}}
    assert load_reference(wide, metric="accuracy") == expected
    assert load_reference(long, metric="accuracy") == expected
    assert load_reference(yaml_file, metric="accuracy") == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("slice,accuracy\nsex=F,high\n", "line 2, accuracy: 'high' is not a number"),
        ("slice,acc\nsex=F,0.9\n", "unknown metric 'acc'"),
        ("group,accuracy\nF,0.9\n", "needs a 'slice' column"),
        ("slice,accuracy\nF,0.9\n", "is not 'column=value'"),
    ],
)
def test_reference_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "ref.csv"
    path.write_text(text)
    with pytest.raises(InvalidInput, match=r"ref\.csv") as raised:
        load_reference(path, metric="accuracy")
    assert message in raised.value.message
    with pytest.raises(NotFound):
        load_reference(tmp_path / "none.csv", metric="accuracy")


def test_keys_are_normalized_and_gaps_follow_the_metric_direction() -> None:
    assert normalize_key(" sex = F &age=<30 ") == "sex=F & age=<30"
    assert normalize_key("Overall") == "overall"
    assert gap(0.90, 0.95, "accuracy") == pytest.approx(0.05)  # behind a better human
    assert gap(0.30, 0.20, "log_loss") == pytest.approx(0.10)  # lower is better


def test_bare_values_take_the_main_metric_once_it_is_known(tmp_path: Path) -> None:
    from mloop.evaluation._reference import MAIN_METRIC, main_metric_is

    path = tmp_path / "human.yaml"
    path.write_text("'sex=F': 0.9\n'sex=M': {f1: 0.8, accuracy: 0.85}\n")
    early = load_reference(path, metric=MAIN_METRIC)  # read before any model loads
    assert main_metric_is(early, "f1") == {
        "sex=F": {"f1": 0.9},
        "sex=M": {"f1": 0.8, "accuracy": 0.85},
    }
