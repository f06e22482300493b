"""Fixtures for the package, flavor, signature and log/load tests: scikit-learn's bundled
datasets (no download) and a few fitted models, built once per session."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def iris() -> tuple[Any, Any]:
    """Iris as a DataFrame of four float columns and an integer target."""
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True, as_frame=True)
    return x, y


@pytest.fixture(scope="session")
def diabetes() -> tuple[Any, Any]:
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True, as_frame=True)
    return x, y


@pytest.fixture(scope="session")
def iris_forest(iris: tuple[Any, Any]) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    x, y = iris
    return RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(x, y)
