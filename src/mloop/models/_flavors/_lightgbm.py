"""LightGBM models in LightGBM's own text format: scikit-learn wrappers and Boosters.

The text format holds the booster only, so a classifier's labels go into the flavor
data, and prediction maps the booster's probabilities back to them as the wrapper does.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloop.errors import InvalidInput
from mloop.models._flavors._base import Flavor, Predictor, package_file

if TYPE_CHECKING:
    from mloop.models._manifest import Manifest

MODEL_FILE = "model.txt"
_KINDS = {
    "LGBMClassifier": "classifier",
    "LGBMRegressor": "regressor",
    "LGBMRanker": "ranker",
    "Booster": "booster",
}


class LightGBMFlavor(Flavor):
    name = "lightgbm"
    packages = ("lightgbm", "numpy", "scipy")

    def can_save(self, model: Any) -> bool:
        cls = type(model)
        return cls.__module__.startswith("lightgbm.") and cls.__name__ in _KINDS

    def save(self, model: Any, directory: Path) -> dict[str, Any]:
        kind = _KINDS[type(model).__name__]
        booster = model if kind == "booster" else model.booster_
        booster.save_model(str(directory / MODEL_FILE))
        data: dict[str, Any] = {"model_file": MODEL_FILE, "kind": kind}
        if kind == "classifier":
            data["classes"] = [_plain(c) for c in model.classes_]
        return data

    def load(self, directory: Path, manifest: Manifest) -> Predictor:
        import lightgbm

        path = package_file(directory, manifest, "model_file", MODEL_FILE)
        booster = lightgbm.Booster(model_file=str(path))
        kind = manifest.flavor_data.get("kind")
        if kind == "classifier":
            classes = manifest.flavor_data.get("classes")
            if not isinstance(classes, list) or len(classes) < 2:
                raise InvalidInput("lightgbm classifier package has no list of class labels")
            return _Classifier(booster, classes)
        if kind not in _KINDS.values():
            raise InvalidInput(f"lightgbm package has unknown kind {kind!r}")
        return _Booster(booster)


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python value JSON can hold."""
    return value.item() if hasattr(value, "item") else value


class _Booster:
    def __init__(self, booster: Any) -> None:
        self.booster = booster

    def predict(self, model_input: Any) -> Any:
        return self.booster.predict(model_input)


class _Classifier(_Booster):
    def __init__(self, booster: Any, classes: list[Any]) -> None:
        super().__init__(booster)
        self.classes = classes

    def predict_proba(self, model_input: Any) -> Any:
        import numpy as np

        scores = np.asarray(self.booster.predict(model_input))
        if scores.ndim == 1:  # binary: the probability of the second class
            return np.column_stack([1.0 - scores, scores])
        return scores

    def predict(self, model_input: Any) -> Any:
        import numpy as np

        return np.asarray(self.classes)[np.argmax(self.predict_proba(model_input), axis=1)]
