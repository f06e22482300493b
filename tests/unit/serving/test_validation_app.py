"""Garbage never yields a 500: random bodies and headers at every prediction endpoint of a
real app are answered 2xx or 4xx with the OIP error shape (never 422)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import numpy as np
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import mloop
from mloop.serving import create_app
from mloop.serving._atypical import AtypicalDetector
from mloop.serving._spec import Guards

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=3),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(
        st.sampled_from(["name", "shape", "datatype", "data", "parameters", "inputs", "outputs",
                         "binary_data_size", "binary_data", "instances", "id"]),
        children,
        max_size=5,
    ),
    max_leaves=25,
)  # fmt: skip
tensor = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["input-0", "x"]),
        "shape": st.lists(st.integers(0, 5), max_size=3),
        "datatype": st.sampled_from(["FP64", "FP32", "INT64", "BOOL", "BYTES", "FP16", "UINT8"]),
    },
    optional={"data": json_values, "parameters": json_values},
)
bodies = st.one_of(
    st.binary(max_size=100),
    json_values.map(orjson.dumps),
    st.fixed_dictionaries({"inputs": st.lists(tensor, max_size=2)}, optional={"outputs": json_values}).map(orjson.dumps),
    st.fixed_dictionaries({"instances": json_values}).map(orjson.dumps),
)  # fmt: skip
paths = st.sampled_from(
    [
        "/v2/models/iris/infer",
        "/v2/models/iris/versions/1/infer",
        "/v1/models/iris:predict",
        "/v1/feedback",
    ]
)


def _iris_app() -> Any:
    features, target = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=300).fit(features, target)
    with mloop.start_run():
        mloop.log_model(model, "model", input_example=features[:2], registered_model_name="iris")
    return create_app("models:/iris/1", request_log=False), features


def test_garbage_never_yields_a_500() -> None:
    app, _ = _iris_app()
    transport = httpx.ASGITransport(app=app)

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        body=bodies,
        path=paths,
        header=st.one_of(st.none(), st.integers(-3, 150).map(str), st.text(max_size=4)),
    )
    def check(body: bytes, path: str, header: str | None) -> None:
        headers = {}
        if header is not None and header.isascii() and header.isprintable():
            headers["Inference-Header-Content-Length"] = header

        async def send() -> httpx.Response:
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await client.post(path, content=body, headers=headers)

        response = asyncio.run(send())
        assert response.status_code < 500, response.text
        assert response.status_code != 422
        if response.status_code >= 400:
            assert set(response.json()) == {"error"}

    check()


def test_atypical_input_is_logged_flagged_or_refused() -> None:
    app, features = _iris_app()
    state = app.state.serving
    served = state.current
    served.detector = AtypicalDetector.fit(features)
    typical = {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": features[0].tolist()}
    odd = {**typical, "data": [50.0, -3.0, 0.0, 40.0]}

    async def send(tensor: dict[str, Any]) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.post("/v2/models/iris/infer", json={"inputs": [tensor]})

    served.guards = Guards(atypical="flag")
    assert "x-mloop-atypical" not in asyncio.run(send(typical)).headers
    assert asyncio.run(send(odd)).headers["x-mloop-atypical"] == "1"
    served.guards = Guards(atypical="reject")
    assert asyncio.run(send(typical)).status_code == 200
    refused = asyncio.run(send(odd))
    assert refused.status_code == 400
    assert "unlike the training data" in refused.json()["error"]
    served.guards = Guards(atypical="log")
    logged = asyncio.run(send(odd))
    assert logged.status_code == 200
    assert "x-mloop-atypical" not in logged.headers
    state.prediction_log.compact_now()
    from mloop.serving import read_predictions

    table = read_predictions(state.prediction_log.root_uri, "iris")
    decisions = [orjson.loads(g) for g in table.column("guards").to_pylist()]
    assert [d["atypical"]["rows"] for d in decisions] == [0, 1, 0, 1, 1]
    # the refused request is logged too, with its status and error code
    assert table.column("status").to_pylist() == [200, 200, 200, 400, 200]
    assert table.column("error").to_pylist() == [None, None, None, "INVALID_INPUT", None]
    assert np.isfinite(decisions[1]["atypical"]["max_score"])
