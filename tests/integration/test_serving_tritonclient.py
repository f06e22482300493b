"""A real third-party client, ``tritonclient.http``, against a live server: JSON mode and
its default binary mode, for inputs and outputs; answers equal the model's own."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mloop.serving import create_app
from tests.integration.test_serving_server import iris_models, serving

httpclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402


@pytest.fixture
def server_url() -> Any:
    features, models = iris_models()
    app = create_app("models:/iris/1", request_log=False)
    with serving(app) as url:
        yield url.removeprefix("http://"), features, models[0]


@pytest.mark.parametrize(
    ("binary_in", "binary_out"), [(False, False), (True, True), (True, False), (False, True)]
)
def test_infer_json_and_binary(server_url: Any, binary_in: bool, binary_out: bool) -> None:
    url, features, model = server_url
    rows = features[[3, 66, 133, 20]]
    client = httpclient.InferenceServerClient(url=url)
    try:
        tensor = httpclient.InferInput("input-0", list(rows.shape), "FP64")
        tensor.set_data_from_numpy(rows, binary_data=binary_in)
        outputs = [
            httpclient.InferRequestedOutput("predictions", binary_data=binary_out),
            httpclient.InferRequestedOutput("probabilities", binary_data=binary_out),
        ]
        result = client.infer("iris", [tensor], outputs=outputs, request_id="tc-1")
        assert result.get_response()["id"] == "tc-1"
        np.testing.assert_array_equal(result.as_numpy("predictions"), model.predict(rows))
        np.testing.assert_allclose(result.as_numpy("probabilities"), model.predict_proba(rows))
        binary = "parameters" in result.get_output("predictions")
        assert binary == binary_out
    finally:
        client.close()


def test_default_client_calls(server_url: Any) -> None:
    """What a Triton user does first: probes, metadata, and an infer with every default
    (binary input, no outputs named, so every output comes back binary)."""
    url, features, model = server_url
    client = httpclient.InferenceServerClient(url=url)
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("iris")
        assert client.is_model_ready("iris", "1")
        assert not client.is_model_ready("iris", "7")
        assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
        metadata = client.get_model_metadata("iris")
        assert metadata["inputs"][0]["shape"] == [-1, 4]
        rows = features[:2].astype(np.float32)  # FP32 widens safely to the model's float64
        tensor = httpclient.InferInput("input-0", [2, 4], "FP32")
        tensor.set_data_from_numpy(rows)
        result = client.infer("iris", [tensor])
        np.testing.assert_array_equal(result.as_numpy("predictions"), model.predict(rows))
        wrong = httpclient.InferInput("input-0", [1, 3], "FP64")
        wrong.set_data_from_numpy(np.ones((1, 3)))
        with pytest.raises(InferenceServerException, match="expects \\[-1, 4\\]"):
            client.infer("iris", [wrong])
    finally:
        client.close()
