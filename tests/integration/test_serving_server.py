"""The inference server end to end: a live uvicorn on 127.0.0.1 serving a real scikit-learn
model logged with mloop.log_model on iris, and the same app in-process for the guards."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import mloop
from mloop._uvicorn_thread import serve_in_thread
from mloop.config import get_settings
from mloop.serving import create_app, create_deployment, read_predictions, update_deployment

START_TIMEOUT = 20.0


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve ``app`` (lifespan on: the revision poller runs) on a free port; yield its URL."""
    with serve_in_thread(
        app, lifespan="on", start_timeout=START_TIMEOUT, stop_timeout=15, name="mloop-serving-test"
    ) as url:
        yield url


def iris_models() -> tuple[np.ndarray[Any, Any], list[LogisticRegression]]:
    """Two versions of ``iris`` in the registry (v1: C=1, v2: C=0.01) and their models."""
    features, target = load_iris(return_X_y=True)
    models = [LogisticRegression(max_iter=500, C=c).fit(features, target) for c in (1.0, 0.01)]
    for model in models:
        with mloop.start_run():
            mloop.log_model(
                model, "model", input_example=features[:3], registered_model_name="iris"
            )
    return features, models


@pytest.fixture
def iris() -> tuple[np.ndarray[Any, Any], list[LogisticRegression]]:
    return iris_models()


def oip(rows: np.ndarray[Any, Any], **extra: Any) -> dict[str, Any]:
    tensor = {"name": "input-0", "shape": list(rows.shape), "datatype": "FP64"}
    return {"inputs": [{**tensor, "data": rows.tolist()}], **extra}


def _with_null() -> dict[str, Any]:
    body = oip(np.ones((1, 4)))
    body["inputs"][0]["data"] = [[1.0, None, 1.0, 1.0]]  # JSON's missing value
    return body


def call(app: Any, *requests: tuple[str, str, dict[str, Any]]) -> list[httpx.Response]:
    """Send requests to ``app`` in-process, one after the other."""

    async def scenario() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return [await client.request(m, p, **kw) for m, p, kw in requests]

    return asyncio.run(scenario())


def test_oip_and_tfserving_on_a_live_server(iris: Any) -> None:
    features, models = iris
    rows = features[[0, 60, 120]]
    expected = models[0].predict(rows).tolist()
    app = create_app("models:/iris/1", request_log=False)
    with serving(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/v2/health/live").json() == {"live": True}
        assert client.get("/v2/health/ready").status_code == 200
        server = client.get("/v2").json()
        assert server["name"] == "mloop"
        assert "binary_tensor_data" in server["extensions"]
        meta = client.get("/v2/models/iris").json()
        assert meta["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
        assert meta["outputs"][0] == {"name": "predictions", "datatype": "INT64", "shape": [-1]}
        assert meta["outputs"][1]["shape"] == [-1, 3]
        assert meta["versions"] == ["1"]
        assert client.get("/v2/models/iris/versions/1/ready").json()["ready"] is True
        assert client.get("/v2/models/iris/versions/9/ready").status_code == 404
        assert client.get("/v2/models/rose").status_code == 404

        answer = client.post("/v2/models/iris/infer", json=oip(rows, id="req-1"))
        assert answer.status_code == 200
        body = answer.json()
        assert body["id"] == "req-1"
        assert answer.headers["x-request-id"] == "req-1"
        assert (body["model_name"], body["model_version"]) == ("iris", "1")
        assert body["outputs"] == [
            {"name": "predictions", "datatype": "INT64", "shape": [3], "data": expected}
        ]
        flat = oip(rows, outputs=[{"name": "probabilities"}])
        flat["inputs"][0]["data"] = rows.reshape(-1).tolist()
        probabilities = client.post("/v2/models/iris/versions/1/infer", json=flat).json()
        (output,) = probabilities["outputs"]
        assert output["shape"] == [3, 3]
        np.testing.assert_allclose(
            np.reshape(output["data"], (3, 3)), models[0].predict_proba(rows)
        )
        assert len(probabilities["id"]) == 32  # generated when the client sent none

        by_header = client.post(
            "/v2/models/iris/infer", json=oip(rows), headers={"X-Request-ID": "trace-7"}
        )
        assert by_header.json()["id"] == "trace-7"
        assert by_header.headers["x-request-id"] == "trace-7"

        records = client.post("/v1/models/iris:predict", json={"instances": rows.tolist()})
        assert records.json()["predictions"] == expected
        columns = client.post("/v1/models/iris/versions/1:predict", json={"inputs": rows.tolist()})
        assert columns.json()["predictions"] == expected

        metrics = client.get("/metrics").text
        assert 'mloop_requests_total{deployment="iris",model="iris",role="primary"' in metrics
        assert "mloop_batch_size" in metrics

    logged = read_predictions(get_settings().resolved_prediction_log_uri, "iris")
    ids = logged.column("request_id").to_pylist()
    assert {"req-1", "trace-7"} <= set(ids)
    assert set(logged.column("role").to_pylist()) == {"primary"}


def test_every_error_is_oip_shaped_and_4xx(iris: Any) -> None:
    app = create_app("models:/iris/1", request_log=False)
    good = oip(np.ones((1, 4)))
    cases = [
        ("POST", "/v2/models/iris/infer", {"content": b"{not json"}),
        ("POST", "/v2/models/iris/infer", {"json": {"inputs": [{"name": "x"}]}}),
        ("POST", "/v2/models/iris/infer", {"json": oip(np.ones((1, 3)))}),
        ("POST", "/v2/models/iris/infer", {"json": _with_null()}),
        ("POST", "/v2/models/iris/infer", {"json": {**good, "outputs": [{"name": "nope"}]}}),
        ("POST", "/v2/models/iris/versions/7/infer", {"json": good}),
        ("POST", "/v2/models/rose/infer", {"json": good}),
        ("GET", "/v2/models/iris/infer", {}),
        ("GET", "/nowhere", {}),
        ("POST", "/v1/models/iris:explain", {"json": {"instances": [[1, 2, 3, 4]]}}),
        ("POST", "/v1/models/iris:predict", {"json": {"instances": [[1, 2, 3]]}}),
        ("POST", "/v1/models/iris:predict", {"json": {"instances": [["a", "b", "c", "d"]]}}),
        ("POST", "/v1/models/iris:predict", {"json": {"rows": []}}),
        (
            "POST",
            "/v2/models/iris/infer",
            {"content": b'{"inputs":[]}', "headers": {"Inference-Header-Content-Length": "x"}},
        ),
    ]
    responses = call(app, *cases)
    for (method, path, _), response in zip(cases, responses, strict=True):
        assert 400 <= response.status_code < 500, (method, path, response.text)
        assert response.status_code != 422
        assert set(response.json()) == {"error"}
        assert response.json()["error"]
    assert responses[2].status_code == 400
    assert "input-0" in responses[2].json()["error"]
    assert responses[5].status_code == 404
    assert responses[7].status_code == 405


def test_oversized_bodies_and_rate_limits(iris: Any) -> None:
    create_deployment(
        "guarded",
        {
            "members": [{"model": "iris", "version": 1}],
            "guards": {
                "max_request_bytes": 2000,
                "rate_limit_per_deployment": {"rate": 0.001, "burst": 3},
            },
        },
    )
    app = create_app("guarded", request_log=False, log_predictions=False)
    small = oip(np.ones((1, 4)))
    big = oip(np.ones((300, 4)))
    ok, too_big, ok_again, limited = call(
        app,
        ("POST", "/v2/models/guarded/infer", {"json": small}),
        ("POST", "/v2/models/guarded/infer", {"json": big}),
        ("POST", "/v1/models/guarded:predict", {"json": {"instances": [[1, 2, 3, 4]]}}),
        ("POST", "/v2/models/guarded/infer", {"json": small}),
    )
    assert ok.status_code == 200
    assert too_big.status_code == 413
    assert "max_request_bytes" in too_big.json()["error"]
    assert ok_again.status_code == 200
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert set(limited.json()) == {"error"}


def test_auth_with_api_keys_scoped_to_the_deployment(
    iris: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mloop.registry import create_api_key, create_user

    create_user("reader", roles=[("viewer", "deployment:iris")])
    create_user("other", roles=[("viewer", "deployment:roses")])
    reader = create_api_key("reader").key
    other = create_api_key("other").key
    monkeypatch.setenv("MLOOP_SERVER_AUTH", "on")
    app = create_app("models:/iris/1", request_log=False, log_predictions=False)
    body = {"json": oip(np.ones((1, 4)))}
    path = "/v2/models/iris/infer"
    missing, wrong, scoped_elsewhere, allowed, live, meta = call(
        app,
        ("POST", path, body),
        ("POST", path, {**body, "headers": {"Authorization": "Bearer mloop_nope_nope"}}),
        ("POST", path, {**body, "headers": {"Authorization": f"Bearer {other}"}}),
        ("POST", path, {**body, "headers": {"Authorization": f"Bearer {reader}"}}),
        ("GET", "/v2/health/live", {}),
        ("GET", "/v2/models/iris", {}),
    )
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert wrong.status_code == 401
    assert scoped_elsewhere.status_code == 403
    assert allowed.status_code == 200
    assert live.status_code == 200  # probes need no key
    assert meta.status_code == 401
    assert reader not in allowed.text


def test_shadow_answers_are_logged_never_returned(iris: Any) -> None:
    features, models = iris
    create_deployment(
        "mirrored",
        {
            "members": [
                {"model": "iris", "version": 1},
                {"model": "iris", "version": 2, "role": "shadow"},
            ]
        },
    )
    app = create_app("mirrored", request_log=False)
    rows = features[:5]
    with serving(app) as url:  # a live loop: the shadow finishes after the answer is sent
        answer = httpx.post(f"{url}/v2/models/mirrored/infer", json=oip(rows, id="m-1"))
        roles = _logged_roles("mirrored")
    assert answer.json()["model_version"] == "1"
    assert answer.json()["outputs"][0]["data"] == models[0].predict(rows).tolist()
    assert roles == {("primary", 1, "m-1"), ("shadow", 2, "m-1")}


def test_shadows_answer_in_a_low_priority_child_process_that_stops_with_the_server(
    iris: Any,
) -> None:
    import os

    import psutil

    features, models = iris
    create_deployment(
        "niced",
        {
            "members": [
                {"model": "iris", "version": 1},
                {"model": "iris", "version": 2, "role": "shadow"},
            ]
        },
    )
    app = create_app("niced", request_log=False)
    with serving(app) as url:
        shadows = app.state.serving._shadows
        assert shadows is not None  # started with the server: the deployment has a shadow
        child = psutil.Process(shadows.process.pid)
        assert child.pid != os.getpid()
        deadline = time.monotonic() + 60
        while child.nice() != 19 and time.monotonic() < deadline:  # it renices as it starts
            time.sleep(0.02)
        assert child.nice() == 19
        bodies = [oip(features[i : i + 1 + i % 3], id=f"n-{i}") for i in range(12)]
        with httpx.Client() as client:
            answers = [client.post(f"{url}/v2/models/niced/infer", json=b) for b in bodies]
        deadline = time.monotonic() + 60
        while shadows.pending and time.monotonic() < deadline:
            time.sleep(0.05)
        metrics = httpx.get(f"{url}/metrics").text
    assert [a.status_code for a in answers] == [200] * 12
    assert 'role="shadow",status="200",version="2"} 12.0' in metrics
    with contextlib.suppress(psutil.NoSuchProcess):
        child.wait(timeout=60)  # the server's shutdown stops it
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    table = read_predictions(get_settings().resolved_prediction_log_uri, "niced")
    shadow_rows = [r for r in table.to_pylist() if r["role"] == "shadow"]
    assert sorted(r["request_id"] for r in shadow_rows) == sorted(f"n-{i}" for i in range(12))
    for row in shadow_rows:  # each mirror answered with its own rows, by the shadow's model
        i = int(row["request_id"].split("-")[1])
        expected = models[1].predict(features[i : i + 1 + i % 3]).tolist()
        assert json.loads(row["outputs"])["predictions"] == expected


def _logged_roles(deployment: str) -> set[tuple[str, int, str]]:
    """(role, version, request id) of the logged records, once a shadow's is among them."""
    root = get_settings().resolved_prediction_log_uri
    deadline = time.monotonic() + 60  # the shadow process loads its model first
    while True:  # the shadow logs after the answer: poll for its record
        table = read_predictions(root, deployment)
        found = set(
            zip(
                table.column("role").to_pylist(),
                table.column("version").to_pylist(),
                table.column("request_id").to_pylist(),
                strict=True,
            )
        )
        if any(role == "shadow" for role, _, _ in found) or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_live_reload_follows_new_revisions_without_failing_requests(iris: Any) -> None:
    """Eight clients keep calling while the deployment moves to a new revision: every
    request is answered 200, and the answers move to the new version."""
    create_deployment("prod", {"members": [{"model": "iris", "version": 1}]})
    app = create_app("prod", request_log=False, log_predictions=False, poll_interval=0.05)
    body = oip(np.ones((1, 4)))
    statuses: list[int] = []
    versions: list[str] = []
    moved = threading.Event()

    def client_loop(url: str) -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                answer = client.post("/v2/models/prod/infer", json=body)
                statuses.append(answer.status_code)
                if answer.status_code != 200:
                    return
                versions.append(answer.json()["model_version"])
                if moved.is_set() and versions[-1] == "2":
                    return

    with serving(app) as url:
        clients = [threading.Thread(target=client_loop, args=(url,)) for _ in range(8)]
        for thread in clients:
            thread.start()
        deadline = time.monotonic() + 15
        while len(versions) < 20 and time.monotonic() < deadline:  # traffic on revision 1
            time.sleep(0.01)
        update_deployment("prod", {"members": [{"model": "iris", "version": 2}]})
        moved.set()
        for thread in clients:
            thread.join(timeout=30)
        metadata = httpx.get(f"{url}/v2/models/prod").json()
    assert set(statuses) == {200}
    assert versions[0] == "1"
    assert versions[-1] == "2"
    assert metadata["versions"] == ["2"]


def test_sticky_canary_routing_and_version_pinning(iris: Any) -> None:
    create_deployment(
        "split",
        {
            "members": [
                {"model": "iris", "version": 1},
                {"model": "iris", "version": 2, "role": "canary", "weight": 50},
            ]
        },
    )
    app = create_app("split", request_log=False, log_predictions=False)
    body = {"json": oip(np.ones((1, 4)))}
    keyed = [
        ("POST", "/v2/models/split/infer", {**body, "headers": {"X-Mloop-Route-Key": f"user-{i}"}})
        for i in range(12)
    ]
    first = [r.json()["model_version"] for r in call(app, *keyed)]
    again = [r.json()["model_version"] for r in call(app, *keyed)]
    assert first == again
    assert set(first) == {"1", "2"}
    (pinned,) = call(app, ("POST", "/v2/models/split/versions/2/infer", body))
    assert pinned.json()["model_version"] == "2"


def test_ensemble_mean_and_output_guards(iris: Any) -> None:
    features, models = iris
    create_deployment(
        "ensemble",
        {
            "members": [{"model": "iris", "version": 1}, {"model": "iris", "version": 2}],
            "combine": "mean",
        },
    )
    create_deployment(
        "labels",
        {"members": [{"model": "iris", "version": 1}], "guards": {"output": "label"}},
    )
    create_deployment(
        "topk",
        {"members": [{"model": "iris", "version": 1}], "guards": {"output": "top_k", "top_k": 2}},
    )
    rows = features[[0, 70, 140]]
    ask = oip(rows, outputs=[{"name": "predictions"}, {"name": "probabilities"}])
    (mean,) = call(
        create_app("ensemble", request_log=False, log_predictions=False),
        ("POST", "/v2/models/ensemble/infer", {"json": ask}),
    )
    outputs = {o["name"]: o for o in mean.json()["outputs"]}
    expected = (models[0].predict_proba(rows) + models[1].predict_proba(rows)) / 2
    np.testing.assert_allclose(np.reshape(outputs["probabilities"]["data"], (3, 3)), expected)
    assert outputs["predictions"]["data"] == expected.argmax(axis=1).tolist()
    assert "model_version" not in mean.json()

    (label,) = call(
        create_app("labels", request_log=False, log_predictions=False),
        ("POST", "/v2/models/labels/infer", {"json": ask}),
    )
    assert [o["name"] for o in label.json()["outputs"]] == ["predictions"]
    (top,) = call(
        create_app("topk", request_log=False, log_predictions=False),
        ("POST", "/v1/models/topk:predict", {"json": {"instances": rows.tolist()}}),
    )
    first = top.json()["predictions"][0]
    assert set(first) == {"predictions", "top_k_classes", "top_k_probabilities"}
    assert len(first["top_k_classes"]) == 2


def test_a_model_with_named_columns_takes_one_input_per_column() -> None:
    frame, target = load_iris(return_X_y=True, as_frame=True)
    model = LogisticRegression(max_iter=500).fit(frame, target)
    with mloop.start_run():
        mloop.log_model(model, "model", input_example=frame[:3], registered_model_name="flowers")
    app = create_app("models:/flowers/1", request_log=False, log_predictions=False)
    rows = frame.iloc[[0, 75, 149]]
    expected = model.predict(rows).tolist()
    inputs = [
        {"name": name, "shape": [3], "datatype": "FP64", "data": rows[name].tolist()}
        for name in frame.columns
    ]
    meta, by_column, records, missing = call(
        app,
        ("GET", "/v2/models/flowers", {}),
        ("POST", "/v2/models/flowers/infer", {"json": {"inputs": inputs}}),
        ("POST", "/v1/models/flowers:predict", {"json": {"instances": rows.to_dict("records")}}),
        ("POST", "/v2/models/flowers/infer", {"json": {"inputs": inputs[1:]}}),
    )
    assert [i["name"] for i in meta.json()["inputs"]] == list(frame.columns)
    assert by_column.json()["outputs"][0]["data"] == expected
    assert records.json()["predictions"] == expected
    assert missing.status_code == 400
    assert "sepal length (cm)" in missing.json()["error"]


def test_feedback_is_recorded_against_the_served_deployment(iris: Any) -> None:
    from mloop.serving import read_feedback

    app = create_app("models:/iris/1", request_log=False)
    answer, feedback, bad = call(
        app,
        ("POST", "/v2/models/iris/infer", {"json": oip(np.ones((1, 4)), id="fb-1")}),
        ("POST", "/v1/feedback", {"json": {"items": [{"request_id": "fb-1", "label": 2}]}}),
        ("POST", "/v1/feedback", {"json": {"items": [{"label": 2}]}}),
    )
    assert answer.status_code == 200
    assert feedback.json() == {"recorded": 1}
    assert bad.status_code == 400
    table = read_feedback(get_settings().resolved_prediction_log_uri, "iris")
    assert table.column("request_id").to_pylist() == ["fb-1"]


def test_concurrent_requests_with_one_new_key_check_it_once(
    iris: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mloop.registry import _identity, create_api_key, create_user

    create_user("caller", roles=[("viewer", "global")])
    key = create_api_key("caller").key
    checks: list[str] = []
    real = _identity.authenticate

    def counted(api_key: str, **kwargs: Any) -> Any:
        checks.append(api_key)
        return real(api_key, **kwargs)

    monkeypatch.setattr(_identity, "authenticate", counted)
    monkeypatch.setenv("MLOOP_SERVER_AUTH", "on")
    app = create_app("models:/iris/1", request_log=False, log_predictions=False)

    async def scenario() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            answers = await asyncio.gather(
                *(
                    client.post(
                        "/v2/models/iris/infer",
                        json=oip(np.ones((1, 4))),
                        headers={"Authorization": f"Bearer {key}"},
                    )
                    for _ in range(10)
                )
            )
        return [a.status_code for a in answers]

    assert asyncio.run(scenario()) == [200] * 10
    assert len(checks) == 1


def test_a_backlog_larger_than_the_pipe_reaches_the_shadow(iris: Any) -> None:
    """Mirrors the pipe cannot take at once wait in the server (the loop writes the rest when
    the child has read), and every one is answered."""
    from mloop.serving._shadow_process import Mirror, ShadowProcess

    features, _models = iris

    async def scenario() -> tuple[bool, list[Any]]:
        seen: list[Any] = []
        shadows = ShadowProcess(
            get_settings(), log_predictions=False, log_fsync="off", observe=seen.append
        )
        for i in range(40):  # 3,000 rows, 96 KB each, 3.8 MB in all: more than a pipe holds
            big = {"input-0": np.tile(features, (20, 1)) + i / 1000}
            mirror = Mirror("wide", "iris", 2, "models:/iris/2", big, False, f"w-{i}", 0)
            assert shadows.mirror(mirror, 1024)
        await asyncio.sleep(0)  # the loop sends what queued in this iteration
        waited = bool(shadows._unsent)
        deadline = time.monotonic() + 120
        while shadows.pending and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await shadows.aclose()
        return waited, seen

    waited, seen = asyncio.run(scenario())
    assert waited  # the pipe was full: the rest waited for the loop to write it
    assert [(o[0], o[1], o[2], o[4]) for o in seen] == [("wide", "iris", 2, 200)] * 40


def test_a_killed_shadow_process_means_skipped_mirrors_not_a_stuck_server(iris: Any) -> None:
    import os
    import signal

    from mloop.serving._shadow_process import Mirror, ShadowProcess

    features, _models = iris

    async def scenario() -> tuple[int, float]:
        shadows = ShadowProcess(
            get_settings(), log_predictions=False, log_fsync="off", observe=lambda _o: None
        )
        os.kill(shadows.process.pid, signal.SIGKILL)
        accepted = 0
        deadline = time.monotonic() + 30
        mirror = Mirror("gone", "iris", 2, "models:/iris/2", {"x": features[:1]}, False, "g", 0)
        while shadows.mirror(mirror, 1024) and time.monotonic() < deadline:
            accepted += 1  # until the server notices (it asks the OS once a second)
            await asyncio.sleep(0.01)
        started = time.monotonic()
        await shadows.aclose()
        return accepted, time.monotonic() - started

    accepted, closing = asyncio.run(scenario())
    assert accepted < 2000  # noticed: mirrors are skipped, not queued for ever
    assert closing < 10  # closing does not wait out the stop timeout for a dead child


def test_mirrors_are_skipped_not_queued_when_the_shadow_backlog_is_full(
    iris: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mloop.serving import _pipeline

    create_deployment(
        "busy",
        {
            "members": [
                {"model": "iris", "version": 1},
                {"model": "iris", "version": 2, "role": "shadow"},
            ]
        },
    )
    monkeypatch.setattr(_pipeline, "MAX_SHADOW_BACKLOG", 0)
    app = create_app("busy", request_log=False, log_predictions=False)
    answer, metrics = call(
        app,
        ("POST", "/v2/models/busy/infer", {"json": oip(np.ones((1, 4)))}),
        ("GET", "/metrics", {}),
    )
    assert answer.status_code == 200
    assert 'role="shadow",status="503",version="2"} 1.0' in metrics.text


FEATURES_MODULE = '''
import numpy as np

from mloop.models import PythonModel

RAW = ["sepal_mm", "sepal_width_mm", "petal_mm", "petal_width_mm"]


class Centimetres(PythonModel):
    """The features the model was trained on, from the raw fields clients send."""

    def predict(self, model_input):
        return model_input[RAW].to_numpy(dtype=float) / 10.0
'''


def test_preprocessing_computes_features_server_side(
    iris: Any, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    import pandas as pd

    features, models = iris
    name = f"serving_features_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(FEATURES_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = __import__(name)
    try:
        raw = pd.DataFrame(features * 10, columns=module.RAW)
        with mloop.start_run():
            mloop.log_model(
                module.Centimetres(), "features", input_example=raw.head(3),
                registered_model_name="iris-features",
            )  # fmt: skip
    finally:
        sys.modules.pop(name, None)
    create_deployment(
        "raw",
        {"members": [{"model": "iris", "version": 1}], "preprocessing": "models:/iris-features/1"},
    )
    app = create_app("raw", request_log=False, log_predictions=False)
    rows = raw.iloc[[0, 60, 120]]
    expected = models[0].predict(features[[0, 60, 120]]).tolist()
    inputs = [
        {"name": c, "shape": [3], "datatype": "FP64", "data": rows[c].tolist()} for c in module.RAW
    ]
    meta, by_record, by_column, missing = call(
        app,
        ("GET", "/v2/models/raw", {}),
        ("POST", "/v1/models/raw:predict", {"json": {"instances": rows.to_dict("records")}}),
        ("POST", "/v2/models/raw/infer", {"json": {"inputs": inputs}}),
        ("POST", "/v2/models/raw/infer", {"json": {"inputs": inputs[:3]}}),
    )
    assert [i["name"] for i in meta.json()["inputs"]] == module.RAW
    assert by_record.json()["predictions"] == expected
    assert by_column.json()["outputs"][0]["data"] == expected
    assert missing.status_code == 400
    assert "petal_width_mm" in missing.json()["error"]


def test_the_log_records_the_callers_trace_and_low_confidence_answers(iris: Any) -> None:
    features, models = iris
    confident = features[[0]]  # setosa, far from the others
    unsure = features[[70]]  # between versicolor and virginica
    high = models[0].predict_proba(confident).max()
    low = models[0].predict_proba(unsure).max()
    assert low < high
    create_deployment(
        "reviewed",
        {
            "members": [{"model": "iris", "version": 1}],
            "guards": {"review_threshold": float(low + high) / 2},
        },
    )
    app = create_app("reviewed", request_log=False)
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    call(
        app,
        (
            "POST",
            "/v2/models/reviewed/infer",
            {
                "json": oip(confident, id="sure"),
                "headers": {"traceparent": f"00-{trace}-00f067aa0ba902b7-01"},
            },
        ),
        ("POST", "/v2/models/reviewed/infer", {"json": oip(unsure, id="unsure")}),
    )
    table = read_predictions(get_settings().resolved_prediction_log_uri, "reviewed")
    rows = {r["request_id"]: r for r in table.to_pylist()}
    assert rows["sure"]["trace_id"] == trace
    assert rows["unsure"]["trace_id"] not in (None, trace)
    assert rows["sure"]["needs_review"] is False
    assert rows["unsure"]["needs_review"] is True


def test_metrics_add_up_every_worker_whichever_answers_the_scrape(iris: Any) -> None:
    import re
    import socket
    import subprocess
    import sys
    from pathlib import Path

    import psutil

    features, _ = iris
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mloop_command = str(Path(sys.executable).with_name("mloop"))
    server = subprocess.Popen(
        [mloop_command, "serve", "models:/iris/1", "--workers", "2", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        workers: list[psutil.Process] = []
        while True:  # both workers up and answering (each loads the model)
            assert server.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the workers did not start"
            workers = [
                c for c in psutil.Process(server.pid).children() if "spawn" in " ".join(c.cmdline())
            ]
            try:
                ready = httpx.get(f"{url}/v2/health/ready", timeout=5).status_code == 200
            except httpx.TransportError:
                ready = False
            if ready and len(workers) == 2:
                break
            time.sleep(0.1)
        for i in range(20):  # a new connection each: the kernel spreads them over the workers
            answer = httpx.post(f"{url}/v2/models/iris/infer", json=oip(features[i : i + 1]))
            assert answer.status_code == 200
        counted = re.compile(
            r'^mloop_requests_total\{deployment="iris",model="iris",role="primary",'
            r'status="200",version="1"\} (\S+)$',
            re.MULTILINE,
        )
        for _ in range(6):  # whichever worker answers the scrape, it reports all 20
            found = counted.search(httpx.get(f"{url}/metrics").text)
            assert found is not None
            assert float(found.group(1)) == 20.0
    finally:
        server.terminate()
        server.wait(timeout=30)
