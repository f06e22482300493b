"""Flavors: the built-ins register through the same interface a plugin uses.

Registration order matters only when several flavors accept a model: the last one
registered wins. XGBoost and LightGBM wrappers are scikit-learn estimators too, so they
are registered after scikit-learn; the python-function flavor, which accepts any
:class:`~mloop.models.PythonModel`, is registered last.
"""

from mloop.models._flavors._base import Flavor, Predictor
from mloop.models._flavors._lightgbm import LightGBMFlavor
from mloop.models._flavors._onnx import OnnxFlavor
from mloop.models._flavors._python_function import PythonFunctionFlavor
from mloop.models._flavors._registry import (
    flavor_for,
    flavor_names,
    get_flavor,
    register_flavor,
)
from mloop.models._flavors._sklearn import SklearnFlavor
from mloop.models._flavors._xgboost import XGBoostFlavor

for _builtin in (
    SklearnFlavor(),
    OnnxFlavor(),
    LightGBMFlavor(),
    XGBoostFlavor(),
    PythonFunctionFlavor(),
):
    register_flavor(_builtin)

__all__ = ["Flavor", "Predictor", "flavor_for", "flavor_names", "get_flavor", "register_flavor"]
