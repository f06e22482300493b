"""XGBoost (JSON) and LightGBM (text): wrappers and bare Boosters predict as before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mloop.models import load_model, save_model


def _round_trip(model: Any, x: Any, folder: Path, flavor: str) -> Any:
    save_model(model, folder, input_example=x.head(3))
    loaded = load_model(folder)
    assert loaded.flavor == flavor
    return loaded


def test_xgboost_classifier_and_regressor(
    tmp_path: Path, iris: tuple[Any, Any], diabetes: tuple[Any, Any]
) -> None:
    import xgboost

    x, y = iris
    classifier = xgboost.XGBClassifier(n_estimators=5, max_depth=2).fit(x, y)
    loaded = _round_trip(classifier, x, tmp_path / "clf", "xgboost")
    np.testing.assert_array_equal(loaded.predict(x), classifier.predict(x))
    np.testing.assert_array_equal(loaded.predict_proba(x), classifier.predict_proba(x))
    model_json = json.loads((tmp_path / "clf" / "model.json").read_text())
    assert "learner" in model_json  # XGBoost's own format, not a pickle

    dx, dy = diabetes
    regressor = xgboost.XGBRegressor(n_estimators=5, max_depth=2).fit(dx, dy)
    loaded = _round_trip(regressor, dx, tmp_path / "reg", "xgboost")
    np.testing.assert_array_equal(loaded.predict(dx), regressor.predict(dx))
    assert not hasattr(loaded, "predict_proba")


def test_xgboost_booster(tmp_path: Path, diabetes: tuple[Any, Any]) -> None:
    import xgboost

    x, y = diabetes
    booster = xgboost.train({"max_depth": 2}, xgboost.DMatrix(x, label=y), num_boost_round=4)
    loaded = _round_trip(booster, x, tmp_path / "booster", "xgboost")
    np.testing.assert_array_equal(loaded.predict(x), booster.predict(xgboost.DMatrix(x)))


@pytest.mark.parametrize("classes", [3, 2])
def test_lightgbm_classifier(tmp_path: Path, iris: tuple[Any, Any], classes: int) -> None:
    import lightgbm

    x, y = iris
    keep = y < classes
    x, labels = x[keep], np.array(["setosa", "versicolor", "virginica"])[y[keep]]
    classifier = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(x, labels)
    loaded = _round_trip(classifier, x, tmp_path / "clf", "lightgbm")
    np.testing.assert_array_equal(loaded.predict(x), classifier.predict(x))
    np.testing.assert_allclose(loaded.predict_proba(x), classifier.predict_proba(x), rtol=1e-12)
    assert (tmp_path / "clf" / "model.txt").read_text().startswith("tree")


def test_lightgbm_regressor_and_booster(tmp_path: Path, diabetes: tuple[Any, Any]) -> None:
    import lightgbm

    x, y = diabetes
    regressor = lightgbm.LGBMRegressor(n_estimators=5, verbose=-1).fit(x, y)
    loaded = _round_trip(regressor, x, tmp_path / "reg", "lightgbm")
    np.testing.assert_array_equal(loaded.predict(x), regressor.predict(x))
    assert not hasattr(loaded, "predict_proba")

    booster = regressor.booster_
    loaded = _round_trip(booster, x, tmp_path / "booster", "lightgbm")
    np.testing.assert_array_equal(loaded.predict(x), booster.predict(x))
