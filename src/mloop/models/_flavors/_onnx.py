"""ONNX models (``onnx.ModelProto``), run with ONNX Runtime on the CPU.

A graph may point at tensors stored in other files by path; such "external data" is
refused on save and on load, so a model can never make the runtime read a file outside
its package. The session is created from the verified bytes, not from a path.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloop.errors import InvalidInput, UnsafeModel
from mloop.models._flavors._base import Flavor, Predictor, package_file

if TYPE_CHECKING:
    import numpy as np

    from mloop.models._manifest import Manifest

MODEL_FILE = "model.onnx"
_NUMPY_TYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
    "tensor(string)": "object",
}


class OnnxFlavor(Flavor):
    name = "onnx"
    packages = ("onnx", "onnxruntime", "numpy")

    def can_save(self, model: Any) -> bool:
        cls = type(model)
        return cls.__module__.startswith("onnx") and cls.__name__ == "ModelProto"

    def save(self, model: Any, directory: Path) -> dict[str, Any]:
        _refuse_external_data(model, "the model")
        (directory / MODEL_FILE).write_bytes(model.SerializeToString())
        return {
            "model_file": MODEL_FILE,
            "opset": {o.domain or "ai.onnx": int(o.version) for o in model.opset_import},
        }

    def load(self, directory: Path, manifest: Manifest) -> Predictor:
        import onnx
        import onnxruntime

        path = package_file(directory, manifest, "model_file", MODEL_FILE)
        data = path.read_bytes()
        try:
            proto = onnx.load_model_from_string(data)
        except Exception as exc:  # protobuf raises its own DecodeError
            raise InvalidInput(f"{path.name} is not an ONNX model: {exc}") from None
        _refuse_external_data(proto, path.name)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(
            data, sess_options=options, providers=["CPUExecutionProvider"]
        )
        outputs = [o.name for o in session.get_outputs()]
        proba = next((n for n in outputs if "prob" in n.lower()), None)
        if proba is not None and len(outputs) > 1:
            return _OnnxClassifier(session, proba)
        return _OnnxPredictor(session)


def _refuse_external_data(model: Any, what: str) -> None:
    from onnx.external_data_helper import uses_external_data

    tensors = list(model.graph.initializer)
    for node in model.graph.node:
        tensors.extend(a.t for a in node.attribute if a.HasField("t"))
    for tensor in tensors:
        if uses_external_data(tensor):
            raise UnsafeModel(
                f"{what} keeps tensor {tensor.name!r} in an external file; mloop packages hold "
                "self-contained ONNX models only: load it with onnx.load(...) (which reads the "
                "external data in) and save the loaded model",
                details={"findings": [tensor.name]},
            )


class _OnnxPredictor:
    def __init__(self, session: Any) -> None:
        self.session = session
        self.inputs = session.get_inputs()

    def predict(self, model_input: Any) -> Any:
        return self._run(model_input)[0]

    def _run(self, model_input: Any) -> list[Any]:
        return list(self.session.run(None, self._feed(model_input)))

    def _feed(self, model_input: Any) -> dict[str, np.ndarray[Any, Any]]:
        import numpy as np

        if len(self.inputs) == 1:
            spec = self.inputs[0]
            if isinstance(model_input, dict):
                model_input = model_input.get(spec.name)
            values = model_input.to_numpy() if hasattr(model_input, "to_numpy") else model_input
            return {spec.name: np.asarray(values, dtype=_dtype(spec))}
        feed = {}
        for spec in self.inputs:
            try:
                column = model_input[spec.name]
            except (KeyError, TypeError, IndexError):
                raise InvalidInput(
                    f"the ONNX model has inputs {[i.name for i in self.inputs]}; give a "
                    f"DataFrame or dict with those names (missing {spec.name!r})"
                ) from None
            array = np.asarray(column, dtype=_dtype(spec))
            if len(spec.shape) == 2 and array.ndim == 1:
                array = array.reshape(-1, 1)
            feed[spec.name] = array
        return feed


class _OnnxClassifier(_OnnxPredictor):
    def __init__(self, session: Any, proba_output: str) -> None:
        super().__init__(session)
        self.proba_output = proba_output

    def predict_proba(self, model_input: Any) -> Any:
        import numpy as np

        (scores,) = self.session.run([self.proba_output], self._feed(model_input))
        if isinstance(scores, list):  # a ZipMap output: one {label: probability} per row
            labels = sorted(scores[0]) if scores else []
            return np.asarray([[row[label] for label in labels] for row in scores])
        return np.asarray(scores)


def _dtype(spec: Any) -> str:
    try:
        return _NUMPY_TYPES[spec.type]
    except KeyError:
        raise InvalidInput(
            f"ONNX input {spec.name!r} has type {spec.type}, which mloop cannot feed yet"
        ) from None
