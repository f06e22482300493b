"""Ordinary scikit-learn, numpy, scipy and collections pickles produce no finding at all."""

from __future__ import annotations

import collections
import pickle
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import scipy.sparse as sp

from mloop.models import scan_path

PLAIN_OBJECTS: dict[str, Any] = {
    "arrays": [np.arange(5), np.zeros((2, 3), "f4"), np.array(["a", "bb"]), np.float64(1.5)],
    "objects": np.array([1, "x", None], dtype=object),
    "masked": np.ma.masked_array([1, 2], [0, 1]),
    "random": [np.random.RandomState(0), np.random.default_rng(0)],
    "structured": np.zeros(3, dtype=[("a", "f8"), ("b", "O")]),
    "sparse": [sp.csr_matrix(np.eye(3)), sp.coo_array(np.eye(2)), sp.lil_matrix((2, 2))],
    "containers": [
        {1, 2}, frozenset([3]), bytearray(b"x"), slice(1, 2), 1j, b"bytes", range(3),
        collections.OrderedDict(a=1), collections.defaultdict(list), collections.Counter("ab"),
        collections.deque([1]),
    ],
}  # fmt: skip


@pytest.mark.parametrize("protocol", range(6))
def test_fitted_models_pickled_with_every_protocol(
    tmp_path: Path, fitted_models: dict[str, Any], protocol: int
) -> None:
    for name, model in {**fitted_models, **PLAIN_OBJECTS}.items():
        path = tmp_path / f"{name}.pkl"
        path.write_bytes(pickle.dumps(model, protocol=protocol))
        report = scan_path(path)
        assert report.safe, (name, protocol, report.findings)


@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3), ("xz", 3)])
def test_fitted_models_through_joblib(
    tmp_path: Path, fitted_models: dict[str, Any], compress: Any
) -> None:
    path = tmp_path / "models.joblib"
    joblib.dump({**fitted_models, **PLAIN_OBJECTS}, path, compress=compress)
    report = scan_path(path)
    assert report.safe, report.findings
    assert any(g.startswith("sklearn.") for g in report.files[0].globals)


def test_a_model_package_folder_is_clean(tmp_path: Path, fitted_models: dict[str, Any]) -> None:
    package = tmp_path / "package"
    package.mkdir()
    (package / "mloop-model.json").write_text('{"format_version": 1, "files": {}}')
    (package / "requirements.txt").write_text("scikit-learn==1.9.1\n")
    joblib.dump(fitted_models["forest"], package / "model.joblib")
    np.save(package / "example.npy", np.ones((2, 5)))
    report = scan_path(package)
    assert report.safe, report.findings
    assert {f.file for f in report.files} == {
        "mloop-model.json", "requirements.txt", "model.joblib", "example.npy"
    }  # fmt: skip
