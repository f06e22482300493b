"""Serving targets other than deployments, and how ensembles combine answers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import mloop
from mloop.models import save_model
from mloop.serving import create_app
from mloop.serving._served import _package_name, combine


class _Member:
    def __init__(self, classes: Any) -> None:
        self.classes = classes


def _infer(app: Any, name: str) -> httpx.Response:
    body = {
        "inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]
    }

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.post(f"/v2/models/{name}/infer", json=body)

    return asyncio.run(send())


def test_a_package_folder_and_a_run_uri_serve_as_one_model(tmp_path: Path) -> None:
    features, target = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=300).fit(features, target)
    save_model(model, tmp_path / "my model", input_example=features[:2])
    with mloop.start_run():
        info = mloop.log_model(model, "classifier", input_example=features[:2])
    expected = model.predict(np.array([[1.0, 2, 3, 4]])).tolist()
    by_path = create_app(str(tmp_path / "my model"), request_log=False, log_predictions=False)
    by_run = create_app(info.model_uri, request_log=False, log_predictions=False)
    answer = _infer(by_path, "my-model")
    assert answer.json()["outputs"][0]["data"] == expected
    assert answer.json()["model_version"] == "0"
    assert _infer(by_run, "classifier").json()["outputs"][0]["data"] == expected


def test_package_names_are_safe_deployment_names() -> None:
    assert _package_name("runs:/abc/model") == "model"
    assert _package_name("/x/y/My Model!/") == "My-Model"
    assert _package_name("./...") == "model"


@settings(max_examples=100, deadline=None)
@given(
    labels=hnp.arrays(
        np.int64, st.tuples(st.integers(1, 5), st.integers(1, 6)), elements=st.integers(0, 3)
    )
)
def test_vote_takes_the_most_frequent_label_ties_to_the_first_member(labels: Any) -> None:
    members, rows = labels.shape
    answers = [{"predictions": labels[m]} for m in range(members)]
    voted = combine("vote", answers, [_Member(None)] * members)["predictions"]
    for row in range(rows):
        column = labels[:, row].tolist()
        best = max(column.count(v) for v in column)
        first = next(v for v in column if column.count(v) == best)
        assert voted[row] == first


@settings(max_examples=100, deadline=None)
@given(
    probabilities=hnp.arrays(
        np.float64,
        st.tuples(st.integers(2, 4), st.integers(1, 5), st.just(3)),
        elements=st.floats(0, 1),
    )
)
def test_mean_averages_probabilities_and_picks_the_best_class(probabilities: Any) -> None:
    classes = np.array(["a", "b", "c"])
    answers = [
        {"predictions": classes[p.argmax(axis=1)], "probabilities": p} for p in probabilities
    ]
    out = combine("mean", answers, [_Member(classes)] * len(answers))
    mean = probabilities.mean(axis=0)
    np.testing.assert_allclose(out["probabilities"], mean)
    assert out["predictions"].tolist() == classes[mean.argmax(axis=1)].tolist()


def test_mean_of_regressors_averages_predictions() -> None:
    answers = [{"predictions": np.array([1.0, 2.0])}, {"predictions": np.array([3.0, 4.0])}]
    out = combine("mean", answers, [_Member(None), _Member(None)])
    assert out["predictions"].tolist() == [2.0, 3.0]
