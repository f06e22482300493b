"""ONNX models run with ONNX Runtime; graphs pointing at outside files are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mloop.errors import UnsafeModel
from mloop.models import load_model, save_model


def _onnx_logistic(iris: tuple[Any, Any]) -> tuple[Any, Any]:
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    x, y = iris
    model = LogisticRegression(max_iter=500).fit(x.to_numpy(np.float32), y)
    onnx_model = to_onnx(model, x.to_numpy(np.float32)[:1], options={"zipmap": False})
    return model, onnx_model


def test_a_converted_scikit_learn_model_predicts_the_same(
    tmp_path: Path, iris: tuple[Any, Any]
) -> None:
    x = iris[0].to_numpy(np.float32)
    model, onnx_model = _onnx_logistic(iris)
    save_model(onnx_model, tmp_path / "pkg", input_example=x[:3])
    loaded = load_model(tmp_path / "pkg")
    assert loaded.flavor == "onnx"
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    np.testing.assert_allclose(loaded.predict_proba(x), model.predict_proba(x), atol=1e-5)
    assert loaded.manifest.flavor_data["opset"]["ai.onnx"] >= 1


def test_a_model_with_external_data_is_refused(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    weights = helper.make_tensor("w", TensorProto.FLOAT, [1], [1.0])
    weights.data_location = TensorProto.EXTERNAL
    weights.ClearField("float_data")
    entry = weights.external_data.add()
    entry.key, entry.value = "location", "../../../etc/passwd"
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
        initializer=[weights],
    )
    model = helper.make_model(graph)
    assert isinstance(model, onnx.ModelProto)
    with pytest.raises(UnsafeModel, match="external file"):
        save_model(model, tmp_path / "pkg")
