"""Validation against a schema: each anomaly kind on crafted data, none on clean data."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from mloop.data._schema import Feature, Schema, infer_schema
from mloop.data._statistics import statistics_of_table
from mloop.data._validation import Anomaly, AnomalyKind, Severity, validate_statistics

COUNTRIES = ["DE", "FR", "US", "IT", "ES"]


def sample(n: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10, 0.5, n)
    income[rng.random(n) < 0.03] = np.nan  # NaN is part of this data
    ages = rng.integers(18, 90, n)
    return {
        "age": pa.array(ages, pa.int64()),
        "income": pa.array(income),
        "score": pa.array(rng.normal(0, 1, n)),
        "rating": pa.array(rng.integers(1, 6, n), pa.int32()),
        "country": pa.array(rng.choice(COUNTRIES, n, p=[0.4, 0.3, 0.2, 0.05, 0.05])),
        "phone": pa.array(
            [None if m else "555" for m in rng.random(n) < 0.1], pa.string()
        ),  # 10 % missing
        "tags": pa.array([["a"] * int(k) for k in rng.integers(0, 4, n)], pa.list_(pa.string())),
        "label": pa.array(rng.random(n) < 0.2),
    }


def table(n: int = 4000, seed: int = 0, **changes: Any) -> pa.Table:
    columns = sample(n, seed)
    for name, value in changes.items():
        if value is None:
            columns.pop(name)
        else:
            columns[name] = value
    return pa.table(columns)


@pytest.fixture(scope="module")
def schema() -> Schema:
    inferred = infer_schema(statistics_of_table(table()))
    inferred["label"].environments = ["TRAINING"]
    return inferred


def check(data: pa.Table, schema: Schema, environment: str = "TRAINING") -> list[Anomaly]:
    return validate_statistics(statistics_of_table(data), schema, environment=environment)


def only(anomalies: list[Anomaly]) -> Anomaly:
    assert len(anomalies) == 1, anomalies
    return anomalies[0]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_clean_data_from_the_same_distribution_has_no_anomalies(schema: Schema, seed: int) -> None:
    assert check(table(seed=seed), schema) == []
    assert check(table(n=500, seed=seed), schema) == []


def test_missing_column(schema: Schema) -> None:
    anomaly = only(check(table(seed=1, score=None), schema))
    assert (anomaly.feature, anomaly.kind, anomaly.severity) == (
        "score",
        AnomalyKind.MISSING_COLUMN,
        Severity.ERROR,
    )
    assert "environments" in anomaly.description


def test_new_column_is_a_warning(schema: Schema) -> None:
    extra = pa.array(np.arange(4000))
    anomaly = only(check(table(seed=1, extra=extra), schema))
    assert (anomaly.feature, anomaly.kind, anomaly.severity) == (
        "extra",
        AnomalyKind.NEW_COLUMN,
        Severity.WARNING,
    )
    assert "mloop data infer-schema" in anomaly.description


def test_type_change(schema: Schema) -> None:
    ages = pa.array([str(a) for a in range(4000)])
    anomaly = only(check(table(seed=1, age=ages), schema))
    assert (anomaly.kind, anomaly.severity, anomaly.share) == (
        AnomalyKind.TYPE_CHANGE,
        Severity.ERROR,
        1.0,
    )
    assert "type string" in anomaly.description
    assert "says int" in anomaly.description


def test_integers_are_valid_floats_and_all_missing_columns_have_no_type() -> None:
    schema = Schema([Feature("x", "float", presence=0.0)])
    assert check(pa.table({"x": pa.array([1, 2, 3])}), schema) == []
    assert check(pa.table({"x": pa.nulls(3)}), schema) == []


def test_unseen_categories_report_share_and_values(schema: Schema) -> None:
    countries = ["DE"] * 3900 + ["XX"] * 60 + ["YY"] * 40
    anomaly = only(check(table(seed=1, country=pa.array(countries)), schema))
    assert anomaly.kind is AnomalyKind.UNSEEN_CATEGORIES
    assert anomaly.share == pytest.approx(0.025)
    assert anomaly.values == ["XX", "YY"]
    assert "2.5% of rows" in anomaly.description
    assert "add 'XX' to the domain of 'country' in schema.yaml" in anomaly.description
    assert "mloop data infer-schema" in anomaly.description


def test_out_of_range_share_below_and_above(schema: Schema) -> None:
    assert schema["age"].range is not None
    low, high = schema["age"].range
    ages = np.full(4000, 40)
    ages[:40] = low - 10  # 1 % below
    ages[40:60] = high + 1  # 0.5 % above
    anomaly = only(check(table(seed=1, age=pa.array(ages)), schema))
    assert anomaly.kind is AnomalyKind.OUT_OF_RANGE
    # shares come from the quantile sketch: within its rank error (about 0.7 %)
    assert anomaly.share == pytest.approx(0.015, abs=0.007)
    assert f"of rows below the minimum {low}" in anomaly.description
    assert f"above the maximum {high}" in anomaly.description
    assert "widen 'range'" in anomaly.description


def test_values_on_the_bounds_are_in_range() -> None:
    schema = Schema([Feature("x", "int", range=(0, 10))])
    assert check(pa.table({"x": [0, 10, 10, 10, 5]}), schema) == []


def test_presence_drop(schema: Schema) -> None:
    phones = pa.array([None if i % 4 == 0 else "555" for i in range(4000)])  # 25 % missing
    anomaly = only(check(table(seed=1, phone=phones), schema))
    assert anomaly.kind is AnomalyKind.PRESENCE_DROP
    assert anomaly.share == pytest.approx(0.25)
    assert "lower 'presence'" in anomaly.description


def test_unexpected_nan_and_inf(schema: Schema) -> None:
    scores = np.random.default_rng(1).normal(0, 1, 4000)
    scores[:8] = np.nan
    scores[8:10] = np.inf
    anomalies = check(table(seed=1, score=pa.array(scores)), schema)
    assert [(a.kind, a.share) for a in anomalies] == [
        (AnomalyKind.UNEXPECTED_NAN, pytest.approx(0.002)),
        (AnomalyKind.UNEXPECTED_INF, pytest.approx(0.0005)),
    ]
    assert "allow_nan: true" in anomalies[0].description
    assert "allow_inf: true" in anomalies[1].description


def test_nan_is_fine_where_allowed(schema: Schema) -> None:
    assert schema["income"].allow_nan
    income = pa.array([math.nan] * 100 + [20000.0] * 3900)
    assert check(table(seed=1, income=income), schema) == []


def test_list_length(schema: Schema) -> None:
    tags = pa.array([["a"] * 40] + [["a"]] * 3999, pa.list_(pa.string()))
    anomaly = only(check(table(seed=1, tags=tags), schema))
    assert anomaly.kind is AnomalyKind.LIST_LENGTH
    assert "40" in anomaly.description


# -- environments ---------------------------------------------------------------------------


def test_the_label_may_be_absent_in_serving(schema: Schema) -> None:
    assert check(table(seed=1, label=None), schema, environment="SERVING") == []


def test_the_label_is_required_in_training(schema: Schema) -> None:
    anomaly = only(check(table(seed=1, label=None), schema, environment="TRAINING"))
    assert (anomaly.feature, anomaly.kind) == ("label", AnomalyKind.MISSING_COLUMN)


def test_a_label_present_in_serving_is_a_warning(schema: Schema) -> None:
    anomaly = only(check(table(seed=1), schema, environment="serving"))
    assert (anomaly.feature, anomaly.kind, anomaly.severity) == (
        "label",
        AnomalyKind.UNEXPECTED_COLUMN,
        Severity.WARNING,
    )
    assert "add 'SERVING' to its 'environments'" in anomaly.description


def test_an_optional_feature_may_be_absent() -> None:
    schema = Schema([Feature("a", "int"), Feature("b", "string", presence=0.0)])
    assert check(pa.table({"a": [1, 2]}), schema) == []


def test_anomalies_serialize() -> None:
    schema = Schema([Feature("c", "string", presence=0.5, domain=["a"])])
    (anomaly,) = check(pa.table({"c": ["a", "b", None, "b"]}), schema)
    assert anomaly.to_dict() == {
        "feature": "c",
        "kind": "unseen_categories",
        "severity": "ERROR",
        "description": anomaly.description,
        "share": 0.5,
        "values": ["b"],
    }
