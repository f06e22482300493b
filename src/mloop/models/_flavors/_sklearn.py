"""scikit-learn models, saved with skops (never pickle) and loaded through our allow-list.

The allow-list check runs at save time too: a model holding something the loader would
refuse (a custom class, a lambda in a FunctionTransformer) fails when it is saved, with the
type named, instead of producing a package nobody can load.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloop.errors import InvalidInput, UnsafeModel
from mloop.models._flavors._base import Flavor, Predictor, module_of, package_file
from mloop.models._flavors._skops_allowlist import skops_io, trusted_types_for

if TYPE_CHECKING:
    from mloop.models._manifest import Manifest

MODEL_FILE = "model.skops"


class SklearnFlavor(Flavor):
    name = "sklearn"
    packages = ("sklearn", "skops", "numpy", "scipy")

    def can_save(self, model: Any) -> bool:
        return "sklearn" in module_of(model) and hasattr(model, "predict")

    def save(self, model: Any, directory: Path) -> dict[str, Any]:
        target = directory / MODEL_FILE
        try:
            skops_io().dump(model, target)
        except (TypeError, ValueError, AttributeError, RuntimeError) as exc:
            raise InvalidInput(
                f"skops cannot save this {type(model).__name__}: {exc}; wrap it in a "
                "mloop.models.PythonModel or export it to ONNX"
            ) from exc
        try:
            trusted_types_for(target)
        except UnsafeModel as exc:
            raise UnsafeModel(
                f"this {type(model).__name__} would not load safely, so it was not saved: "
                f"{exc.message}",
                details=exc.details,
            ) from None
        return {
            "model_file": MODEL_FILE,
            "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
        }

    def load(self, directory: Path, manifest: Manifest) -> Predictor:
        path = package_file(directory, manifest, "model_file", MODEL_FILE)
        model = skops_io().load(path, trusted=trusted_types_for(path))
        if not hasattr(model, "predict"):
            raise InvalidInput(f"{path.name} holds a {type(model).__name__}, which cannot predict")
        return model  # type: ignore[no-any-return]
