"""Schema inference from statistics, the YAML format, and freezing."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mloop.data._schema import (
    FEATURE_TYPES,
    FORMAT_VERSION,
    Feature,
    Schema,
    feature_type_of,
    infer_schema,
)
from mloop.data._statistics import statistics_of_table
from mloop.errors import Conflict, InvalidInput


def known_table() -> pa.Table:
    rng = np.random.default_rng(7)
    n = 100
    return pa.table(
        {
            "age": pa.array([20 + (i * 37) % 50 for i in range(n)], pa.int64()),
            "rating": pa.array([1 + i % 5 for i in range(n)], pa.int32()),
            "income": pa.array(
                [None if i % 10 == 0 else float(1000 + 10 * i) for i in range(n)], pa.float64()
            ),
            "score": pa.array([math.nan if i == 3 else i / 100 - 0.25 for i in range(n)]),
            "country": pa.array(["DE", "FR", "US", "yes"] * 25),
            "user": pa.array([f"u{i}" for i in range(n)]),
            "tokens": pa.array([[1] * (1 + i % 3) for i in range(n)], pa.list_(pa.int64())),
            "seen": pa.array(
                [dt.datetime(2024, 1, 1) + dt.timedelta(hours=i) for i in range(n)],
                pa.timestamp("us"),
            ),
            "churned": pa.array(rng.random(n) < 0.3),
            "empty": pa.nulls(n),
        }
    )


EXPECTED_YAML = """\
# mloop schema: what each feature may look like. Edit freely; see docs/schema-validation.md.
# presence: minimum fraction of rows with a value (1.0 = required)
format_version: 1
frozen: false
features:
- name: age
  type: int
  presence: 1.0
  range: [15, 74]
- name: rating
  type: int
  presence: 1.0
  range: [1, 5]
- name: income
  type: float
  presence: 0.85
  range: [912.0, 2088.0]
  allow_nan: false
  allow_inf: false
- name: score
  type: float
  presence: 1.0
  range: [-0.349, 0.839]
  allow_nan: true
  allow_inf: false
- name: country
  type: string
  presence: 1.0
  domain:
  - DE
  - FR
  - US
  - 'yes'
- name: user
  type: string
  presence: 1.0
- name: tokens
  type: list
  presence: 1.0
  list_length: [0, 4]
- name: seen
  type: timestamp
  presence: 1.0
- name: churned
  type: bool
  presence: 1.0
- name: empty
  type: string
  presence: 0.0
"""


def test_infer_on_a_known_table_gives_the_expected_yaml() -> None:
    schema = infer_schema(statistics_of_table(known_table()))
    assert schema.to_yaml() == EXPECTED_YAML


def test_inference_rules() -> None:
    stats = statistics_of_table(known_table())
    narrow = infer_schema(stats, max_domain=3)
    assert narrow["country"].domain is None  # four values > max_domain
    assert narrow["rating"].range == (0, 6)  # five values > max_domain: not discrete
    schema = infer_schema(stats)
    assert schema["user"].domain is None  # 100 distinct values
    assert schema["age"].range == (15, 74)  # continuous: 10 % margin, rounded outward
    assert schema["rating"].range == (1, 5)  # discrete: exact bounds
    assert schema["seen"].range is None
    assert schema["score"].allow_nan
    assert not schema["income"].allow_nan
    assert schema["empty"].presence == 0.0


def test_a_non_negative_column_keeps_a_lower_bound_of_zero() -> None:
    stats = statistics_of_table(pa.table({"x": [0.5 + i for i in range(100)]}))
    low, high = infer_schema(stats).features[0].range or (None, None)
    assert low == 0.0
    assert high == pytest.approx(109.4)


def test_infinities_seen_are_allowed() -> None:
    stats = statistics_of_table(pa.table({"x": [1.0, math.inf, 2.0]}))
    assert infer_schema(stats).features[0].allow_inf


def test_yaml_round_trip() -> None:
    schema = infer_schema(statistics_of_table(known_table()))
    schema.features[0].environments = ["TRAINING", "SERVING"]
    schema.features[1].description = "stars: 1 to 5"
    assert Schema.from_yaml(schema.to_yaml()) == schema


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (pa.int8(), "int"),
        (pa.uint64(), "int"),
        (pa.float16(), "float"),
        (pa.float32(), "float"),
        (pa.float64(), "float"),
        (pa.decimal128(10, 2), "float"),
        (pa.string(), "string"),
        (pa.large_string(), "string"),
        (pa.binary(), "string"),
        (pa.dictionary(pa.int32(), pa.string()), "string"),
        (pa.bool_(), "bool"),
        (pa.timestamp("ms", tz="UTC"), "timestamp"),
        (pa.date32(), "timestamp"),
        (pa.duration("s"), "int"),
        (pa.list_(pa.int64()), "list"),
        (pa.large_list(pa.string()), "list"),
        (pa.list_(pa.float32(), 3), "list"),
        (pa.map_(pa.string(), pa.int64()), "list"),
        (pa.null(), None),
    ],
)
def test_feature_type_of_arrow_types(dtype: pa.DataType, expected: str | None) -> None:
    assert feature_type_of(str(dtype)) == expected


# -- reading: every error names the feature and the field ----------------------------------

VALID = """\
format_version: 1
features:
- name: age
  type: int
  range: [0, 120]
- name: country
  type: string
  domain: [DE, FR]
"""


def test_minimal_yaml_fills_defaults() -> None:
    schema = Schema.from_yaml(VALID)
    assert schema.features == [
        Feature("age", "int", range=(0, 120)),
        Feature("country", "string", domain=["DE", "FR"]),
    ]
    assert not schema.frozen
    assert schema.version == FORMAT_VERSION


def test_a_typo_in_a_field_name_names_the_feature_and_the_field() -> None:
    text = VALID.replace("domain:", "domian:")
    with pytest.raises(InvalidInput) as caught:
        Schema.from_yaml(text)
    message = str(caught.value)
    assert "feature 'country'" in message
    assert "'domian'" in message
    assert "did you mean 'domain'" in message


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("type: int", "type: integer", ["feature 'age'", "field 'type'", "'int'"]),
        ("range: [0, 120]", "range: [120, 0]", ["feature 'age'", "field 'range'", "above"]),
        ("range: [0, 120]", "range: [0, .nan]", ["feature 'age'", "NaN"]),
        ("domain: [DE, FR]", "domain: [DE, no]", ["feature 'country'", "quoted"]),
        ("domain: [DE, FR]", "domain: [DE, DE]", ["feature 'country'", "more than once"]),
        ("type: int\n", "type: int\n  presence: 1.5\n", ["feature 'age'", "'presence'"]),
        ("type: int\n", "type: int\n  domain: [a]\n", ["feature 'age'", "'domain' applies"]),
        ("- name: country", "- name: age", ["'age' is listed twice"]),
        ("- name: country\n", "- type: bool\n", ["feature #2", "'name'"]),
    ],
)
def test_bad_fields_are_explained(old: str, new: str, expected: list[str]) -> None:
    text = VALID.replace(old, new, 1)
    assert text != VALID
    with pytest.raises(InvalidInput) as caught:
        Schema.from_yaml(text)
    for part in expected:
        assert part in str(caught.value)


def test_numbers_in_a_domain_are_read_as_text() -> None:
    schema = Schema.from_yaml(VALID.replace("domain: [DE, FR]", "domain: [1, 2.5]"))
    assert schema["country"].domain == ["1", "2.5"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("format_version: 2\nfeatures: []\n", "format_version 2"),
        ("format_version: '1'\nfeatures: []\n", "format_version '1'"),
        ("features: []\n", "no 'format_version'"),
        ("- 1\n- 2\n", "not a schema"),
        ("format_version: 1\nfeatures: [\n", "not valid YAML at line"),
        ("format_version: 1\nfeatures: []\nfrozn: true\n", "did you mean 'frozen'"),
    ],
)
def test_bad_documents_are_rejected(text: str, expected: str) -> None:
    with pytest.raises(InvalidInput, match=r"schema\.yaml") as caught:
        Schema.from_yaml(text)
    assert expected in str(caught.value)


# -- freezing and updating --------------------------------------------------------------------


def test_update_from_widens_and_adds_new_columns_without_changing_the_original() -> None:
    base = infer_schema(
        statistics_of_table(pa.table({"c": ["a", "b"] * 10, "x": pa.array(range(20), pa.int64())}))
    )
    newer = statistics_of_table(
        pa.table(
            {
                "c": ["a", "z", None, "b"] * 5,
                "x": [-5.0, 3.0, math.nan, 99.0] * 5,
                "extra": [1, 2, 3, 4] * 5,
            }
        )
    )
    updated = base.update_from(newer)
    assert updated["c"].domain == ["a", "b", "z"]
    assert updated["c"].presence < 1.0
    assert updated["x"].type == "float"
    assert updated["x"].range == (-5.0, 99.0)
    assert updated["x"].allow_nan
    assert updated.names == ["c", "x", "extra"]
    assert base["c"].domain == ["a", "b"]
    assert base.names == ["c", "x"]


def test_a_frozen_schema_refuses_updates_and_stays_frozen_in_yaml() -> None:
    stats = statistics_of_table(pa.table({"c": ["a", "b"]}))
    schema = infer_schema(stats).freeze()
    assert schema.frozen
    with pytest.raises(Conflict, match="frozen"):
        schema.update_from(stats)
    again = Schema.from_yaml(schema.to_yaml())
    assert again.frozen
    with pytest.raises(Conflict):
        again.update_from(stats)


def test_duplicate_feature_names_are_refused() -> None:
    with pytest.raises(InvalidInput, match="more than once"):
        Schema([Feature("a", "int"), Feature("a", "float")])


def test_environments_are_case_insensitive() -> None:
    label = Feature("label", "bool", environments=["training"])
    assert label.expected_in("TRAINING")
    assert not label.expected_in("serving")
    assert Feature("x", "int").expected_in("ANYTHING")


# -- property: any schema survives the YAML round trip --------------------------------------

texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=12,
)
numbers = st.one_of(st.integers(-(2**53), 2**53), st.floats(allow_nan=False, allow_infinity=True))


@st.composite
def features(draw: st.DrawFn, name: str) -> Feature:
    ftype = draw(st.sampled_from(FEATURE_TYPES))
    feature = Feature(
        name=name,
        type=ftype,
        presence=draw(st.floats(0.0, 1.0)),
        environments=draw(
            st.none() | st.lists(st.sampled_from(["TRAINING", "SERVING", "EVAL"]), max_size=3)
        ),
        description=draw(texts),
    )
    if ftype in ("string", "bool"):
        feature.domain = draw(st.none() | st.lists(texts, max_size=6, unique=True))
    if ftype in ("int", "float", "timestamp") and draw(st.booleans()):
        low, high = sorted([draw(numbers), draw(numbers)])
        feature.range = (low, high)
    if ftype == "float":
        feature.allow_nan = draw(st.booleans())
        feature.allow_inf = draw(st.booleans())
    if ftype == "list" and draw(st.booleans()):
        low_len, high_len = sorted(draw(st.lists(st.integers(0, 10_000), min_size=2, max_size=2)))
        feature.list_length = (low_len, high_len)
    return feature


@st.composite
def schemas(draw: st.DrawFn) -> Schema:
    names = draw(st.lists(texts.filter(bool), max_size=6, unique=True))
    return Schema([draw(features(name)) for name in names], frozen=draw(st.booleans()))


@settings(max_examples=150, deadline=None)
@given(schemas())
def test_any_schema_survives_the_yaml_round_trip(schema: Schema) -> None:
    assert Schema.from_yaml(schema.to_yaml()) == schema
