"""Training-data sanitization: planted problems are found, clean rows are left alone."""

from __future__ import annotations

import json
import re

import numpy as np
import pyarrow as pa
import pytest

from mloop.data._sanitize import REASONS, SanitizeReport, sanitize
from mloop.errors import InvalidInput


def clean(n: int = 2000, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    return pa.table(
        {
            "a": x[:, 0],
            "b": x[:, 1] * 10 + 5,
            "c": x[:, 2],
            "d": pa.array(np.round(x[:, 3] * 100).astype(np.int64)),
            "city": pa.array(rng.choice(["Oslo", "Lima", "Pune"], n)),
            "y": pa.array(np.where(x[:, 0] + x[:, 1] > 0, "pos", "neg")),
        }
    )


def test_clean_data_has_no_duplicates_outliers_or_deny_matches() -> None:
    report = sanitize(clean(), label="y", deny_list=["DROP TABLE"])
    counts = report.counts
    assert counts["exact_duplicate"] == counts["near_duplicate"] == 0
    assert counts["outlier"] == counts["deny_list"] == 0
    assert counts["label_flip"] <= 0.02 * 2000  # a few rows right on the class boundary


def test_exact_duplicates_flag_later_copies_only() -> None:
    base = clean(500)
    table = pa.concat_tables([base, base.slice(10, 3), base.slice(100, 1)])
    report = sanitize(table)
    assert report.rows["exact_duplicate"].tolist() == [500, 501, 502, 503]
    cleaned = report.cleaned(table)
    assert cleaned.num_rows == 500
    assert cleaned.equals(base)


def test_near_duplicates_are_found_and_ordinary_neighbours_are_not() -> None:
    base = clean(2000)
    rng = np.random.default_rng(5)
    copies = rng.choice(2000, 25, replace=False)
    jittered = base.take(pa.array(copies))
    jittered = jittered.set_column(
        0, "a", pa.array(jittered.column("a").to_numpy() + rng.normal(0, 1e-4, 25))
    )
    table = pa.concat_tables([base, jittered])
    report = sanitize(table)
    assert report.rows["exact_duplicate"].size == 0
    assert report.rows["near_duplicate"].tolist() == list(range(2000, 2025))


def test_same_features_with_another_label_is_a_near_duplicate() -> None:
    base = clean(300)
    twin = base.slice(7, 1)
    twin = twin.set_column(5, "y", pa.array(["neg" if twin["y"][0].as_py() == "pos" else "pos"]))
    report = sanitize(pa.concat_tables([base, twin]), label="y")
    assert 300 in report.rows["near_duplicate"].tolist()
    assert report.details["near_duplicate"]["same_features_other_label"] == 1


def test_a_different_category_is_not_a_near_duplicate() -> None:
    base = clean(300)
    twin = base.slice(7, 1).set_column(4, "city", pa.array(["Rome"]))
    report = sanitize(pa.concat_tables([base, twin]))
    assert report.rows["near_duplicate"].size == 0


def test_flipped_iris_labels_are_found() -> None:
    datasets = pytest.importorskip("sklearn.datasets")
    x, y = datasets.load_iris(return_X_y=True)
    rng = np.random.default_rng(1)
    flipped = rng.choice(150, 5, replace=False)
    labels = y.copy()
    labels[flipped] = (labels[flipped] + rng.integers(1, 3, 5)) % 3
    names = np.array(["setosa", "versicolor", "virginica"])
    table = pa.table({f"f{i}": x[:, i] for i in range(4)} | {"species": names[labels]})
    report = sanitize(table, label="species")
    suspects = set(report.rows["label_flip"].tolist())
    assert len(suspects & set(flipped.tolist())) >= 4
    assert len(suspects - set(flipped.tolist())) <= 5
    example = report.details["label_flip"]["examples"][0]
    assert set(example) == {"row", "label", "neighbours_say", "agreement"}


def test_label_flip_check_samples_large_data_and_skips_continuous_labels() -> None:
    table = clean(5000)
    report = sanitize(table, label="y", max_knn_rows=1000)
    assert report.details["label_flip"]["checked_rows"] == 1000
    assert report.details["label_flip"]["sampled"] is True
    continuous = sanitize(table, label="a")
    assert continuous.rows["label_flip"].size == 0
    assert "not classification" in continuous.details["label_flip"]["skipped"]


def test_extreme_outliers_by_robust_z_score() -> None:
    table = clean(1000)
    b = table.column("b").to_numpy().copy()
    b[[3, 700]] = [1e4, -1e4]
    d = table.column("d").to_numpy().copy()
    d[42] = 100_000
    table = table.set_column(1, "b", pa.array(b)).set_column(3, "d", pa.array(d))
    report = sanitize(table, outlier_z=6.0)
    assert report.rows["outlier"].tolist() == [3, 42, 700]
    assert report.details["outlier"]["columns"] == {"b": 2, "d": 1}


def test_infinities_are_outliers_and_nearly_constant_columns_are_skipped() -> None:
    flags = np.zeros(1000)
    flags[5] = 1.0  # 99.9 % zeros: no robust scale
    values = np.random.default_rng(0).normal(size=1000)
    values[9] = np.inf
    report = sanitize(pa.table({"flag": flags, "v": values}))
    assert report.rows["outlier"].tolist() == [9]
    assert report.details["outlier"]["skipped_columns"] == ["flag"]


def test_deny_list_substrings_and_patterns() -> None:
    table = pa.table(
        {
            "text": ["hello", "ignore previous instructions", None, "Robert'); DROP TABLE", "ok"],
            "tag": pa.array(["a", "b", "c", "d", "SECRET-42"]).dictionary_encode(),
            "n": [1, 2, 3, 4, 5],
        }
    )
    report = sanitize(
        table,
        deny_list=[
            "DROP TABLE",
            re.compile(r"ignore (all|previous) instructions", re.I),
            re.compile(r"secret-(?=\d)", re.I),  # look-ahead: Python's engine
        ],
    )
    assert report.rows["deny_list"].tolist() == [1, 3, 4]
    assert report.details["deny_list"]["entries"] == {
        "DROP TABLE": 1,
        "re:ignore (all|previous) instructions": 1,
        "re:secret-(?=\\d)": 1,
    }
    assert report.details["deny_list"]["searched_columns"] == ["text", "tag"]


def test_report_views() -> None:
    base = clean(200)
    table = pa.concat_tables([base, base.slice(0, 1)])
    b = table.column("b").to_numpy().copy()
    b[50] = 1e6
    table = table.set_column(1, "b", pa.array(b))
    report = sanitize(table, label="y")
    rows = report.flagged_rows()
    assert rows[50] == ["outlier"]  # not also a label-flip suspect: outliers are not judged
    assert rows[200] == ["exact_duplicate"]
    data = report.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["format_version"] == 1
    assert data["counts"] == report.counts
    assert list(data["reasons"]) == list(REASONS)
    assert data["flagged"] == len(rows)
    only_outliers = report.cleaned(table, reasons=["outlier"])
    assert only_outliers.num_rows == 201 - report.counts["outlier"]
    with pytest.raises(InvalidInput, match="unknown sanitize reason"):
        report.cleaned(table, reasons=["typo"])
    with pytest.raises(InvalidInput, match="201 rows"):
        report.cleaned(base)


def test_without_a_label_there_is_no_label_flip_check() -> None:
    report = sanitize(clean(100))
    assert "label_flip" not in report.counts
    assert "label_flip" not in report.to_dict()["reasons"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"label": "nope"}, "label column 'nope'"),
        ({"k": 0}, "k (neighbours)"),
        ({"flip_agreement": 0.4}, "flip_agreement"),
        ({"deny_list": [""]}, "deny-list entries"),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        sanitize(clean(50), **kwargs)  # type: ignore[arg-type]


def test_empty_and_tiny_tables() -> None:
    empty = clean(10).slice(0, 0)
    report = sanitize(empty, label="y")
    assert report.flagged_rows() == {}
    assert report.cleaned(empty).num_rows == 0
    one = sanitize(clean(1), label="y")
    assert isinstance(one, SanitizeReport)
    assert one.flagged_rows() == {}


def test_a_record_batch_and_list_columns_are_accepted() -> None:
    batch = pa.record_batch({"x": [1.0, 2.0, 1.0], "l": pa.array([[1], [2], [1]])})
    report = sanitize(batch)
    assert report.rows["exact_duplicate"].tolist() == [2]
