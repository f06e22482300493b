"""The scikit-learn flavor: skops files, loaded only through mloop's own allow-list."""

from __future__ import annotations

import operator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from package_crafting import edit_skops_schema, nodes, swap_file

from mloop.errors import UnsafeModel
from mloop.models import load_model, save_model
from mloop.models._flavors._skops_allowlist import allowed_type_names, trusted_types_for

EXECUTED: list[str] = []


class Hostile:
    """Stands for attacker code: loading it would run ``__setstate__``."""

    def __setstate__(self, state: Any) -> None:
        EXECUTED.append("Hostile.__setstate__")


class CustomScaler:
    """A user's own transformer: fine in memory, but not on the allow-list."""

    def fit(self, x: Any, y: Any = None) -> CustomScaler:
        return self

    def transform(self, x: Any) -> Any:
        return x


@pytest.fixture(autouse=True)
def _nothing_executed() -> Any:
    EXECUTED.clear()
    yield
    assert EXECUTED == [], "a refused file ran code"


def _models(iris: tuple[Any, Any], diabetes: tuple[Any, Any]) -> dict[str, tuple[Any, Any]]:
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    x, y = iris
    dx, dy = diabetes
    return {
        "pipeline": (
            make_pipeline(
                FunctionTransformer(np.log1p), StandardScaler(), LogisticRegression(max_iter=300)
            ).fit(x, y),
            x,
        ),
        "gradient_boosting": (GradientBoostingClassifier(n_estimators=5).fit(x, y), x),
        "kd_tree_neighbours": (KNeighborsClassifier(algorithm="kd_tree").fit(x, y), x),
        "ridge": (Ridge().fit(dx, dy), dx),
    }


def test_models_round_trip_with_identical_predictions(
    tmp_path: Path, iris: tuple[Any, Any], diabetes: tuple[Any, Any], iris_forest: Any
) -> None:
    cases = {**_models(iris, diabetes), "forest": (iris_forest, iris[0])}
    for name, (model, x) in cases.items():
        save_model(model, tmp_path / name, input_example=x.head(3))
        loaded = load_model(tmp_path / name)
        assert loaded.flavor == "sklearn"
        np.testing.assert_array_equal(loaded.predict(x), model.predict(x), err_msg=name)
        if hasattr(model, "predict_proba"):
            np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
        else:
            assert not hasattr(loaded, "predict_proba"), name


def test_the_file_is_skops_not_pickle(tmp_path: Path, iris_forest: Any) -> None:
    import zipfile

    save_model(iris_forest, tmp_path / "pkg")
    assert zipfile.ZipFile(tmp_path / "pkg" / "model.skops").namelist().count("schema.json") == 1


def test_trusted_types_passed_to_skops_come_from_our_list(tmp_path: Path, iris_forest: Any) -> None:
    save_model(iris_forest, tmp_path / "pkg")
    trusted = trusted_types_for(tmp_path / "pkg" / "model.skops")
    # what skops did not trust by itself, each on our list (skops imported by mloop trusts
    # no estimator by default; imported before, by someone else, it trusts the public ones)
    named = {
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._tree.Tree",
    }
    assert "sklearn.tree._tree.Tree" in trusted
    assert set(trusted) <= named
    assert set(trusted) <= allowed_type_names()


def test_the_public_estimator_check_agrees_with_scikit_learns_list() -> None:
    from sklearn.utils import all_estimators

    from mloop.models._flavors._skops_allowlist import is_allowed_type

    for _, cls in all_estimators():
        assert is_allowed_type(f"{cls.__module__}.{cls.__qualname__}"), cls
    for name in (
        "sklearn.base.BaseEstimator",  # the base, not an estimator
        "sklearn.utils._testing.MinimalClassifier",  # a test helper
        "sklearn.linear_model._logistic._logistic_regression_path",  # a function
        "sklearn.linear_model._base.LinearModel",  # abstract
        "sklearn.linear_model._logistic.LogisticRegressionX",  # no such class
        "os.system",
        "sklearn..LogisticRegression",
        "sklearn.linear_model._logistic.__class__",
    ):
        assert not is_allowed_type(name), name


def _hostile_package(tmp_path: Path, iris_forest: Any, payload: Any) -> Path:
    import skops.io

    save_model(iris_forest, tmp_path / "pkg")
    swap_file(tmp_path / "pkg", "model.skops", skops.io.dumps(payload))
    return tmp_path / "pkg"


def test_a_type_off_the_list_is_refused_by_name_without_running_it(
    tmp_path: Path, iris_forest: Any
) -> None:
    package = _hostile_package(tmp_path, iris_forest, {"model": Hostile()})
    with pytest.raises(UnsafeModel, match=r"test_flavor_sklearn\.Hostile") as caught:
        load_model(package)
    assert caught.value.details["findings"] == [f"{Hostile.__module__}.Hostile"]


def test_refused_even_when_skops_own_audit_misses_it(
    tmp_path: Path, iris_forest: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our walk of the file does not depend on skops reporting the type (as in past
    bypasses, where skops' audit did not see what its loader would build)."""
    import skops.io

    package = _hostile_package(tmp_path, iris_forest, {"model": Hostile()})
    monkeypatch.setattr(skops.io, "get_untrusted_types", lambda **_: [])
    with pytest.raises(UnsafeModel, match="Hostile"):
        load_model(package)


def test_operator_callables_are_refused_outright(tmp_path: Path, iris_forest: Any) -> None:
    package = _hostile_package(tmp_path, iris_forest, {"f": operator.attrgetter("system")})
    with pytest.raises(UnsafeModel, match="operator callable"):
        load_model(package)


def test_a_function_other_than_a_ufunc_is_refused(tmp_path: Path, iris: tuple[Any, Any]) -> None:
    """A FunctionTransformer edited to call ``builtins.eval`` instead of ``numpy.log1p``."""
    import skops.io
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    model = make_pipeline(FunctionTransformer(np.log1p), LogisticRegression(max_iter=300))
    save_model(model.fit(*iris), tmp_path / "pkg")

    def to_eval(schema: Any) -> None:
        for node in nodes(schema):
            if node["__loader__"] == "FunctionNode":
                node["__module__"], node["__class__"] = "builtins", "eval"

    data = (tmp_path / "pkg" / "model.skops").read_bytes()
    swap_file(tmp_path / "pkg", "model.skops", edit_skops_schema(data, to_eval))
    assert "builtins.eval" in skops.io.get_untrusted_types(file=tmp_path / "pkg" / "model.skops")
    with pytest.raises(UnsafeModel, match=r"builtins\.eval \(function\)"):
        load_model(tmp_path / "pkg")


def test_an_unknown_skops_loader_is_refused(tmp_path: Path, iris_forest: Any) -> None:
    def relabel(schema: Any) -> None:
        schema["__loader__"] = "FutureNode"

    save_model(iris_forest, tmp_path / "pkg")
    data = (tmp_path / "pkg" / "model.skops").read_bytes()
    swap_file(tmp_path / "pkg", "model.skops", edit_skops_schema(data, relabel))
    with pytest.raises(UnsafeModel, match="unknown skops loader 'FutureNode'"):
        load_model(tmp_path / "pkg")


def test_a_file_that_is_not_a_skops_zip_is_refused(tmp_path: Path, iris_forest: Any) -> None:
    save_model(iris_forest, tmp_path / "pkg")
    swap_file(tmp_path / "pkg", "model.skops", b"\x80\x04K\x01.")  # a pickle
    with pytest.raises(UnsafeModel, match="not a readable skops file"):
        load_model(tmp_path / "pkg")


def test_a_model_holding_an_unlisted_type_is_refused_when_saved(
    tmp_path: Path, iris: tuple[Any, Any]
) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    model = make_pipeline(CustomScaler(), LogisticRegression(max_iter=300)).fit(*iris)
    with pytest.raises(UnsafeModel, match=r"not saved.*CustomScaler"):
        save_model(model, tmp_path / "pkg")
    assert not (tmp_path / "pkg").exists()


def test_hist_gradient_boosting_is_refused_when_saved(
    tmp_path: Path, iris: tuple[Any, Any]
) -> None:
    """Its TreePredictor indexes raw node arrays unchecked; skops leaves it out, so do we."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(max_iter=2).fit(*iris)
    with pytest.raises(UnsafeModel, match="TreePredictor"):
        save_model(model, tmp_path / "pkg")
