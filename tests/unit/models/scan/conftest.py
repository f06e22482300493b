"""Fixtures for the scanner tests: a few fitted scikit-learn models, built once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mloop.models import ScanReport, scan_path


@pytest.fixture(scope="session")
def fitted_models() -> dict[str, Any]:
    import numpy as np
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.svm import SVC

    x, y = make_classification(n_samples=120, n_features=5, random_state=0)
    return {
        "forest": RandomForestClassifier(n_estimators=4, random_state=0).fit(x, y),
        "logistic": make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y),
        "hist_gb": HistGradientBoostingClassifier(max_iter=5).fit(x, y),
        "knn": KNeighborsClassifier(algorithm="kd_tree").fit(x, y),
        "svc": SVC(random_state=0).fit(x, y),
        "onehot": OneHotEncoder().fit(np.array([["a"], ["b"], [None]], dtype=object)),
    }


def scan_bytes(tmp_path: Path, data: bytes, name: str = "model.bin") -> ScanReport:
    path = tmp_path / name
    path.write_bytes(data)
    return scan_path(path)


def refused(report: ScanReport) -> set[tuple[str, str | None, str | None]]:
    return {(finding.kind, finding.module, finding.name) for finding in report.findings}
