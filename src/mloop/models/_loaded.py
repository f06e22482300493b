"""``LoadedModel``: one interface over every flavor, with the signature checked first."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mloop.models._flavors import Predictor
from mloop.models._manifest import Manifest
from mloop.models._signature import ModelSignature
from mloop.models._signature_enforce import enforce


class LoadedModel:
    """A verified package, ready to predict.

    ``predict`` (and ``predict_proba``, where the model gives probabilities) first check the
    input against the signature, raising :class:`~mloop.errors.SignatureMismatch` naming the
    column, and pass the model the columns it was trained on, in order and type.
    ``hasattr(model, "predict_proba")`` is false for models without probabilities.
    """

    def __init__(self, predictor: Predictor, manifest: Manifest, path: Path, uri: str) -> None:
        self._predictor = predictor
        self.manifest = manifest
        self.path = path
        self.uri = uri

    @property
    def signature(self) -> ModelSignature | None:
        return self.manifest.signature

    @property
    def flavor(self) -> str:
        return self.manifest.flavor

    @property
    def model(self) -> Predictor:
        """The flavor's own object (an estimator, a Booster, an ONNX session wrapper, …)."""
        return self._predictor

    def predict(self, model_input: Any) -> Any:
        return self._predictor.predict(self._checked(model_input))

    @property
    def predict_proba(self) -> Callable[[Any], Any]:
        method = getattr(self._predictor, "predict_proba", None)
        if method is None:
            raise AttributeError(
                f"the {self.flavor} model at {self.uri} gives no class probabilities "
                "(no predict_proba); use predict"
            )

        def predict_proba(model_input: Any) -> Any:
            return method(self._checked(model_input))

        return predict_proba

    def _checked(self, model_input: Any) -> Any:
        signature = self.manifest.signature
        return model_input if signature is None else enforce(signature.inputs, model_input)

    def __repr__(self) -> str:
        return f"<LoadedModel {self.uri} flavor={self.flavor}>"
