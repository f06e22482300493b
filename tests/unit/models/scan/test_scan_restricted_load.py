"""restricted_load: clean files load, anything else is refused before or during unpickling."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from scan_crafting import Ops, reduce_to, torch_zip
from test_scan_tricks import Reduces

from mloop.errors import InvalidInput, UnsafeModel
from mloop.models import restricted_load
from mloop.models._unpickler import RestrictedUnpickler


@pytest.mark.parametrize("compress", [0, 3, ("gzip", 3), ("xz", 3)])
def test_joblib_models_load_and_predict_the_same(
    tmp_path: Path, fitted_models: dict[str, Any], compress: Any
) -> None:
    from sklearn.datasets import make_classification

    x, _ = make_classification(n_samples=20, n_features=5, random_state=1)
    path = tmp_path / "model.joblib"
    joblib.dump(fitted_models["forest"], path, compress=compress)
    loaded = restricted_load(path)
    assert (loaded.predict(x) == fitted_models["forest"].predict(x)).all()


@pytest.mark.parametrize("protocol", range(6))
def test_plain_pickles_load(tmp_path: Path, fitted_models: dict[str, Any], protocol: int) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(fitted_models["logistic"], protocol=protocol))
    assert type(restricted_load(path)).__name__ == "Pipeline"


def test_object_npy_loads(tmp_path: Path) -> None:
    np.save(tmp_path / "o.npy", np.array([1, "a", None], dtype=object))
    assert restricted_load(tmp_path / "o.npy").tolist() == [1, "a", None]


def test_a_refused_global_is_named(tmp_path: Path) -> None:
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(Reduces(os.system, "echo pwned")))
    with pytest.raises(UnsafeModel, match=rf"refused to import {os.system.__module__}\.system"):
        restricted_load(path)


def test_an_unparsable_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cut.pkl"
    path.write_bytes(pickle.dumps([1, 2, 3], protocol=4)[:-2])
    with pytest.raises(UnsafeModel, match="not a valid pickle"):
        restricted_load(path)


def test_archives_and_data_are_not_loaded(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="folder or an archive"):
        restricted_load(torch_zip(tmp_path / "model.pt"))
    (tmp_path / "m.json").write_text("{}")
    with pytest.raises(InvalidInput, match="is data"):
        restricted_load(tmp_path / "m.json")


def test_the_unpickler_itself_refuses_what_the_scan_would(tmp_path: Path) -> None:
    """Second lock: even handed a stream directly, find_class resolves allowed names only."""
    import io

    for data in (reduce_to("os", "system", "id"), Ops(2).call("__builtin__", "eval").bytes()):
        with pytest.raises(UnsafeModel, match="refused to import"):
            RestrictedUnpickler(io.BytesIO(data)).load()
    allowed = Ops(2).call("collections", "OrderedDict").STOP().bytes()
    assert RestrictedUnpickler(io.BytesIO(allowed)).load() == {}
