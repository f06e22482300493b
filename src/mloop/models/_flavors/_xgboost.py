"""XGBoost models in XGBoost's own JSON format: scikit-learn wrappers and bare Boosters.

The class to rebuild is looked up by name in a fixed table, never imported from a name
in the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloop.errors import InvalidInput
from mloop.models._flavors._base import Flavor, Predictor, package_file

if TYPE_CHECKING:
    from mloop.models._manifest import Manifest

MODEL_FILE = "model.json"
_CLASSES = ("XGBClassifier", "XGBRegressor", "XGBRanker", "XGBRFClassifier", "XGBRFRegressor")


class XGBoostFlavor(Flavor):
    name = "xgboost"
    packages = ("xgboost", "numpy", "scipy")

    def can_save(self, model: Any) -> bool:
        cls = type(model)
        return cls.__module__.startswith("xgboost.") and (
            cls.__name__ in _CLASSES or cls.__name__ == "Booster"
        )

    def save(self, model: Any, directory: Path) -> dict[str, Any]:
        model.save_model(str(directory / MODEL_FILE))
        return {"model_file": MODEL_FILE, "model_class": type(model).__name__}

    def load(self, directory: Path, manifest: Manifest) -> Predictor:
        import xgboost

        path = package_file(directory, manifest, "model_file", MODEL_FILE)
        kind = manifest.flavor_data.get("model_class")
        if kind == "Booster":
            booster = xgboost.Booster()
            booster.load_model(str(path))
            return _BoosterPredictor(booster)
        if kind not in _CLASSES:
            raise InvalidInput(
                f"xgboost package names model class {kind!r}; known: Booster, {', '.join(_CLASSES)}"
            )
        model = getattr(xgboost, str(kind))()
        model.load_model(str(path))
        return model  # type: ignore[no-any-return]


class _BoosterPredictor:
    """A bare Booster predicts from a DMatrix; build one from whatever we are given."""

    def __init__(self, booster: Any) -> None:
        self.booster = booster

    def predict(self, model_input: Any) -> Any:
        import xgboost

        return self.booster.predict(xgboost.DMatrix(model_input))
