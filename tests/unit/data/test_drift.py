"""The drift engine: verdicts, presence, config, report formats and the HTML page."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from mloop.data._drift import (
    DriftConfig,
    DriftReport,
    FeatureDrift,
    MethodChoice,
    detect_drift,
    render_drift_html,
)
from mloop.data._model import FeatureKind
from mloop.data._statistics import DatasetStatistics, statistics_of_table
from mloop.errors import InvalidInput

N = 20_000


def table(
    rng: np.random.Generator, *, shift: float = 0.0, missing: float = 0.0, new_category: float = 0.0
) -> pa.Table:
    x = rng.normal(10 + shift, 2, N)
    mask = rng.random(N) < missing if missing else None
    labels = np.array(["red", "green", "blue", "new"])
    probs = np.array([0.5, 0.3, 0.2, 0.0])
    if new_category:
        probs = np.append(probs[:3] * (1 - new_category), new_category)
    colors = labels[rng.choice(4, size=N, p=probs)]
    return pa.table(
        {
            "x": pa.array(x, pa.float64(), mask=mask),
            "y": pa.array(rng.exponential(1, N)),
            "color": pa.array(colors, pa.string()),
        }
    )


@pytest.fixture(scope="module")
def reference() -> DatasetStatistics:
    return statistics_of_table(table(np.random.default_rng(1)))


def stats(**kwargs: Any) -> DatasetStatistics:
    return statistics_of_table(table(np.random.default_rng(2), **kwargs))


def by_name(report: DriftReport) -> dict[str, FeatureDrift]:
    return {f.name: f for f in report.features}


def test_same_distribution_is_not_drift(reference: DatasetStatistics) -> None:
    report = detect_drift(reference, stats())
    assert not report.drifted
    assert report.drifted_features() == []
    methods = {f.name: f.method for f in report.features}
    assert methods == {"x": "wasserstein", "y": "wasserstein", "color": "linf"}


def test_mean_shift_is_drift(reference: DatasetStatistics) -> None:
    report = detect_drift(reference, stats(shift=1.0))
    assert report.drifted
    assert report.drifted_features() == ["x"]
    x = by_name(report)["x"]
    assert x.score == pytest.approx(0.5, abs=0.05)  # 1.0 shift / std 2
    assert x.details["reasons"] == ["wasserstein"]


def test_presence_change_is_drift(reference: DatasetStatistics) -> None:
    report = detect_drift(reference, stats(missing=0.1))
    x = by_name(report)["x"]
    assert x.drifted
    assert x.score < x.threshold
    assert x.details["reasons"] == ["presence"]
    assert x.details["presence"]["current"]["missing"] == pytest.approx(0.1, abs=0.01)
    off = DriftConfig(presence_threshold=None)
    assert not detect_drift(reference, stats(missing=0.1), off).drifted


def test_unseen_category_is_drift(reference: DatasetStatistics) -> None:
    report = detect_drift(reference, stats(new_category=0.05))
    color = by_name(report)["color"]
    assert color.drifted
    assert "new" in color.details["unseen_in_reference"]


def test_absent_feature_and_skip(reference: DatasetStatistics) -> None:
    current = statistics_of_table(table(np.random.default_rng(2)).drop(["y"]))
    y = by_name(detect_drift(reference, current))["y"]
    assert (y.method, y.drifted) == ("presence", True)
    assert "absent from the current" in y.details["reason"]
    config = DriftConfig.from_dict({"features": {"y": {"skip": True}}})
    report = detect_drift(reference, current, config)
    assert "y" not in by_name(report)
    assert not report.drifted


def test_kind_change_is_drift(reference: DatasetStatistics) -> None:
    t = table(np.random.default_rng(2))
    t = t.set_column(0, "x", pa.array([str(v) for v in range(N)]))
    x = by_name(detect_drift(reference, statistics_of_table(t)))["x"]
    assert (x.method, x.drifted) == ("type", True)


def test_per_feature_override(reference: DatasetStatistics) -> None:
    config = DriftConfig.from_dict(
        {
            "defaults": {"numeric": {"method": "ks", "threshold": 0.05}},
            "features": {
                "x": {"method": "psi", "threshold": 0.2, "params": {"bins": 10}},
                "y": {"threshold": 0.5},
            },
        }
    )
    report = by_name(detect_drift(reference, stats(shift=1.0), config))
    assert (report["x"].method, report["x"].threshold) == ("psi", 0.2)
    assert report["x"].details["bins"] == 10
    assert (report["y"].method, report["y"].threshold) == ("ks", 0.5)
    assert report["color"].method == "linf"


def test_method_for_wrong_kind_is_refused(reference: DatasetStatistics) -> None:
    config = DriftConfig.from_dict({"features": {"color": {"method": "ks"}}})
    with pytest.raises(InvalidInput, match=r"'color'.*categorical"):
        detect_drift(reference, stats(), config)


def test_drift_share_verdict(reference: DatasetStatistics) -> None:
    current = stats(shift=1.0)
    assert detect_drift(reference, current).drifted
    half = DriftConfig(drift_share=0.5)
    report = detect_drift(reference, current, half)
    assert report.drifted_features() == ["x"]
    assert not report.drifted
    assert detect_drift(reference, current, DriftConfig(drift_share=0.3)).drifted


def test_to_dict_is_strict_json(reference: DatasetStatistics) -> None:
    empty = statistics_of_table(pa.table({"x": pa.array([None] * 10, pa.float64())}))
    report = detect_drift(reference, stats(shift=1.0))
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["drifted"] is True
    assert data["drifted_features"] == ["x"]
    first = data["features"][0]
    assert set(first) >= {"name", "type", "method", "score", "threshold", "drifted"}
    assert first["type"] == "numeric"
    inf_report = detect_drift(reference, empty, DriftConfig(presence_threshold=None))
    x = json.loads(json.dumps(inf_report.to_dict(), allow_nan=False))["features"][0]
    assert x["score"] == "inf"


def test_defaults_are_documented_distances() -> None:
    config = DriftConfig()
    assert config.defaults[FeatureKind.NUMERIC] == MethodChoice("wasserstein", 0.05)
    assert config.defaults[FeatureKind.CATEGORICAL] == MethodChoice("linf", 0.01)
    assert config.presence_threshold == 0.01
    assert DriftConfig.from_dict(config.to_dict()) == config


# -- config files ------------------------------------------------------------------------


def test_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "drift.yaml"
    path.write_text(
        "version: 1\n"
        "defaults:\n"
        "  numeric: {method: jensen_shannon, threshold: 0.1, params: {bins: 30}}\n"
        "  categorical: {method: chi_square}\n"
        "presence_threshold: 0.05\n"
        "drift_share: 0.5\n"
        "features:\n"
        "  label: {skip: true}\n"
        "  age: {method: psi, threshold: 0.25}\n"
    )
    config = DriftConfig.from_yaml(path)
    assert config.defaults[FeatureKind.NUMERIC] == MethodChoice("jensen_shannon", 0.1, {"bins": 30})
    assert config.defaults[FeatureKind.CATEGORICAL] == MethodChoice("chi_square")
    assert config.choice_for("color", FeatureKind.CATEGORICAL).resolve()[1] == 0.05
    assert config.features["label"].skip
    assert config.choice_for("age", FeatureKind.NUMERIC) == MethodChoice("psi", 0.25)
    assert (config.presence_threshold, config.drift_share) == (0.05, 0.5)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert DriftConfig.from_yaml(empty) == DriftConfig()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"treshold": 1}, r"treshold is not a known key"),
        (
            {"defaults": {"numeric": {"methd": "ks"}}},
            r"defaults\.numeric\.methd is not a known key",
        ),
        (
            {"defaults": {"numeric": {"method": "linf"}}},
            r"defaults\.numeric\.method names 'linf'.*not numeric",
        ),
        ({"defaults": {"tensor": {"method": "ks"}}}, r"defaults\.tensor is not a feature kind"),
        ({"defaults": {"numeric": {"threshold": 1}}}, r"defaults\.numeric\.method is required"),
        (
            {"defaults": {"numeric": {"method": "nope"}}},
            r"defaults\.numeric\.method names unknown method 'nope'",
        ),
        (
            {"features": {"age": {"threshold": "high"}}},
            r"features\.age\.threshold must be a number",
        ),
        ({"features": {"age": {"threshold": -1}}}, r"features\.age\.threshold must be >= 0"),
        ({"features": {"age": {"skip": "yes"}}}, r"features\.age\.skip must be true or false"),
        ({"features": {"age": {"params": [1]}}}, r"features\.age\.params must be a mapping"),
        ({"features": ["age"]}, r"features must be a mapping"),
        ({"presence_threshold": 2}, r"presence_threshold must be between 0 and 1"),
        ({"drift_share": 0}, r"drift_share must be above 0"),
        ({"version": 2}, r"version is 2"),
    ],
)
def test_bad_config_names_the_key(data: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        DriftConfig.from_dict(data)


def test_bad_yaml_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot read drift config"):
        DriftConfig.from_yaml(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("defaults: [\n")
    with pytest.raises(InvalidInput, match="not valid YAML"):
        DriftConfig.from_yaml(broken)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n")
    with pytest.raises(InvalidInput, match="top level must be a mapping"):
        DriftConfig.from_yaml(listed)


# -- HTML --------------------------------------------------------------------------------


def test_html_is_self_contained_with_overlaid_histograms(reference: DatasetStatistics) -> None:
    t = table(np.random.default_rng(2), shift=1.0, new_category=0.05)
    t = t.append_column("<b>odd</b>", pa.array(["v"] * N))
    ref = statistics_of_table(
        table(np.random.default_rng(1)).append_column("<b>odd</b>", pa.array(["w"] * N))
    )
    current = statistics_of_table(t)
    report = detect_drift(ref, current)
    page = render_drift_html(report, ref, current)
    assert page.startswith("<!DOCTYPE html>")
    assert "drift detected" in page
    assert page.count("<svg") == len(report.drifted_features()) == 3
    assert "<b>odd</b>" not in page
    assert "&lt;b&gt;odd&lt;/b&gt;" in page
    assert "<script" not in page
    urls = set(re.findall(r"(?:src|href)=\"([^\"]+)\"", page))
    assert urls == set()
    assert "new" in page  # the unseen category is drawn


def test_html_without_drift(reference: DatasetStatistics) -> None:
    current = stats()
    page = render_drift_html(detect_drift(reference, current), reference, current)
    assert "no drift" in page
    assert "<svg" not in page


def test_list_features_compare_their_items() -> None:
    rng = np.random.default_rng(3)

    def lists(shift: float) -> DatasetStatistics:
        values = rng.normal(shift, 1, 3 * 2000).reshape(2000, 3).tolist()
        return statistics_of_table(pa.table({"v": pa.array(values, pa.list_(pa.float64()))}))

    same = by_name(detect_drift(lists(0.0), lists(0.0)))["v"]
    moved = by_name(detect_drift(lists(0.0), lists(1.0)))["v"]
    assert (same.kind, same.method, same.drifted) == (FeatureKind.LIST, "wasserstein", False)
    assert same.details["compared"] == "list items (numeric)"
    assert moved.drifted
    with pytest.raises(InvalidInput, match=r"defaults\.list cannot be set"):
        DriftConfig.from_dict({"defaults": {"list": {"method": "ks"}}})
