"""The tracking server's REST API: in-process over ASGI, and through RestBackend live."""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import logging
import math
import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import pytest

from mloop.config import get_settings
from mloop.errors import (
    Conflict,
    FilterSyntaxError,
    InvalidInput,
    NotFound,
    RemoteError,
    UnsafePath,
)
from mloop.server import create_app
from mloop.server._auth import ROUTES
from mloop.tracking import ALL, DELETED_ONLY, Metric, Param, RunInput, RunStatus, RunTag
from mloop.tracking._rest_backend import RestBackend, error_from_response

ERROR_KEYS = {"error"}
ERROR_DETAIL_KEYS = {"code", "message", "details"}


class Api:
    """A synchronous face over an in-process ``httpx.AsyncClient`` + ``ASGITransport``."""

    def __init__(self, portal: anyio.from_thread.BlockingPortal, client: httpx.AsyncClient):
        self._portal = portal
        self._client = client

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self._portal.call(functools.partial(self._client.request, method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)


@pytest.fixture
def api() -> Iterator[Api]:
    app = create_app()
    with anyio.from_thread.start_blocking_portal() as portal:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
        try:
            yield Api(portal, client)
        finally:
            portal.call(client.aclose)


@pytest.fixture
def remote(live_server: str) -> Iterator[RestBackend]:
    backend = RestBackend(live_server)
    yield backend
    backend.close()


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert set(body["error"]) == ERROR_DETAIL_KEYS
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    return dict(body["error"])


def _experiment(api: Api, name: str = "exp") -> str:
    response = api.post("/api/v1/experiments", json={"name": name, "tags": {"team": "ml"}})
    assert response.status_code == 201
    return str(response.json()["experiment_id"])


def _run(api: Api, experiment_id: str, **extra: Any) -> str:
    response = api.post(
        "/api/v1/runs", json={"experiment_id": experiment_id, "start_time": 1000, **extra}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["info"]["run_id"])


# -- in-process: every endpoint ----------------------------------------------------------------


def test_health(api: Api) -> None:
    response = api.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_experiment_endpoints_round_trip(api: Api) -> None:
    exp_id = _experiment(api, "first")
    got = api.get(f"/api/v1/experiments/{exp_id}").json()
    assert got["name"] == "first"
    assert got["tags"] == {"team": "ml"}
    assert got["lifecycle_stage"] == "active"
    by_name = api.get("/api/v1/experiments/by-name", params={"name": "first"}).json()
    assert by_name["experiment"]["experiment_id"] == exp_id
    missing = api.get("/api/v1/experiments/by-name", params={"name": "nope"})
    assert missing.status_code == 200
    assert missing.json() == {"experiment": None}
    listed = api.get("/api/v1/experiments").json()["experiments"]
    assert [e["name"] for e in listed] == ["first"]

    assert api.request("DELETE", f"/api/v1/experiments/{exp_id}").status_code == 204
    assert api.get("/api/v1/experiments").json()["experiments"] == []
    deleted = api.get("/api/v1/experiments", params={"view_type": DELETED_ONLY}).json()
    assert [e["experiment_id"] for e in deleted["experiments"]] == [exp_id]
    assert len(api.get("/api/v1/experiments", params={"view_type": ALL}).json()["experiments"]) == 1


def test_run_endpoints_round_trip(api: Api) -> None:
    exp_id = _experiment(api)
    parent = _run(api, exp_id, run_name="parent")
    created = api.post(
        "/api/v1/runs",
        json={
            "experiment_id": exp_id,
            "run_name": "child",
            "user_id": "ada",
            "start_time": 2000,
            "tags": {"stage": "dev"},
            "parent_run_id": parent,
        },
    )
    assert created.status_code == 201
    run = created.json()
    run_id = run["info"]["run_id"]
    assert run["info"]["status"] == "RUNNING"
    assert run["info"]["parent_run_id"] == parent
    assert run["data"]["tags"] == {"stage": "dev"}

    batch = {
        "metrics": [
            {"key": "loss", "value": 1.0, "timestamp": 10, "step": 0},
            {"key": "loss", "value": "nan", "timestamp": 11, "step": 1},
            {"key": "loss", "value": 0.25, "timestamp": 12, "step": 2},
            {"key": "peak", "value": "inf", "timestamp": 12},
        ],
        "params": [{"key": "lr", "value": "0.1"}],
        "tags": [{"key": "note", "value": "hello"}],
    }
    response = api.post(f"/api/v1/runs/{run_id}/log-batch", json=batch)
    assert response.status_code == 204
    assert response.content == b""

    history = api.get(f"/api/v1/runs/{run_id}/metrics/history", params={"key": "loss"}).json()
    assert [m["value"] for m in history["metrics"]] == [1.0, "nan", 0.25]
    assert [m["step"] for m in history["metrics"]] == [0, 1, 2]

    got = api.get(f"/api/v1/runs/{run_id}").json()
    assert got["data"]["metrics"] == {"loss": 0.25, "peak": "inf"}
    assert got["data"]["params"] == {"lr": "0.1"}
    assert got["data"]["tags"] == {"stage": "dev", "note": "hello"}

    updated = api.request(
        "PATCH", f"/api/v1/runs/{run_id}", json={"status": "FINISHED", "end_time": 3000}
    )
    assert updated.status_code == 200
    assert updated.json()["status"] == "FINISHED"
    assert updated.json()["end_time"] == 3000
    renamed = api.request("PATCH", f"/api/v1/runs/{run_id}", json={"run_name": "renamed"})
    assert renamed.json()["run_name"] == "renamed"
    assert renamed.json()["status"] == "FINISHED"

    assert api.request("DELETE", f"/api/v1/runs/{run_id}").status_code == 204
    assert api.get(f"/api/v1/runs/{run_id}").json()["info"]["lifecycle_stage"] == "deleted"
    assert api.post(f"/api/v1/runs/{run_id}/restore").status_code == 204
    assert api.get(f"/api/v1/runs/{run_id}").json()["info"]["lifecycle_stage"] == "active"


def test_search_runs_pages_filters_and_orders(api: Api) -> None:
    exp_id = _experiment(api)
    ids = []
    for i in range(5):
        run_id = _run(api, exp_id, run_name=f"r{i}")
        ids.append(run_id)
        api.post(
            f"/api/v1/runs/{run_id}/log-batch",
            json={"metrics": [{"key": "acc", "value": i / 10, "timestamp": 1}]},
        )
    pages: list[str] = []
    token = None
    while True:
        body = {
            "experiment_ids": [exp_id],
            "max_results": 2,
            "order_by": ["metrics.acc DESC"],
            "page_token": token,
        }
        answer = api.post("/api/v1/runs/search", json=body).json()
        pages.extend(r["info"]["run_id"] for r in answer["runs"])
        token = answer["next_page_token"]
        if token is None:
            break
    assert pages == list(reversed(ids))
    found = api.post(
        "/api/v1/runs/search", json={"experiment_ids": [exp_id], "filter": "metrics.acc >= 0.3"}
    ).json()
    assert {r["info"]["run_name"] for r in found["runs"]} == {"r3", "r4"}

    api.request("DELETE", f"/api/v1/runs/{ids[0]}")
    deleted = api.post(
        "/api/v1/runs/search", json={"experiment_ids": [exp_id], "view_type": DELETED_ONLY}
    ).json()
    assert [r["info"]["run_id"] for r in deleted["runs"]] == [ids[0]]


def test_inputs_round_trip(api: Api) -> None:
    run_id = _run(api, _experiment(api))
    inputs = [
        {"ref": "dataset:iris@3", "context": "train", "digest": "ab" * 32, "attributes": {"n": 3}},
        {"ref": "dataset:iris@3", "context": "eval"},
    ]
    assert api.post(f"/api/v1/runs/{run_id}/inputs", json={"inputs": inputs}).status_code == 204
    got = api.get(f"/api/v1/runs/{run_id}/inputs").json()["inputs"]
    assert {(i["ref"], i["context"], i["kind"]) for i in got} == {
        ("dataset:iris@3", "train", "dataset"),
        ("dataset:iris@3", "eval", "dataset"),
    }
    assert next(i for i in got if i["context"] == "train")["attributes"] == {"n": 3}


def test_artifact_upload_list_download(api: Api) -> None:
    run_id = _run(api, _experiment(api))
    payload = bytes(range(256)) * 10_000  # 2.5 MB: crosses the 1 MiB spool threshold
    response = api.request(
        "PUT",
        f"/api/v1/runs/{run_id}/artifact",
        params={"path": "model/weights.bin"},
        content=payload,
    )
    assert response.status_code == 201, response.text
    info = response.json()
    assert info == {
        "path": "model/weights.bin",
        "is_dir": False,
        "size": len(payload),
        "digest": hashlib.sha256(payload).hexdigest(),
    }
    api.request(
        "PUT", f"/api/v1/runs/{run_id}/artifact", params={"path": "notes.txt"}, content=b"hi"
    )
    top = api.get(f"/api/v1/runs/{run_id}/artifacts").json()["artifacts"]
    assert [(a["path"], a["is_dir"]) for a in top] == [("model", True), ("notes.txt", False)]
    inner = api.get(f"/api/v1/runs/{run_id}/artifacts", params={"path": "model"}).json()
    assert [a["path"] for a in inner["artifacts"]] == ["model/weights.bin"]

    download = api.get(f"/api/v1/runs/{run_id}/artifact", params={"path": "model/weights.bin"})
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.content == payload


def test_openapi_documents_every_operation_without_422(api: Api) -> None:
    schema = api.get("/openapi.json").json()
    operations = {
        (method.upper(), path) for path, item in schema["paths"].items() for method in item
    }
    # Every operation is documented, and each has its authorization rule (and no more).
    assert operations == set(ROUTES)
    assert ("POST", "/api/v1/registry/models/{name}/versions") in operations
    assert '"422"' not in api.get("/openapi.json").text
    create = schema["paths"]["/api/v1/experiments"]["post"]
    assert create["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }


# -- in-process: the one error shape -----------------------------------------------------------


def test_wrong_json_type_is_400_not_422_with_locations(api: Api) -> None:
    error = assert_error(api.post("/api/v1/experiments", json={"name": 42}), 400, "INVALID_INPUT")
    assert error["details"]["errors"][0]["loc"] == ["body", "name"]
    run_id = _run(api, _experiment(api))
    bad_metric = {"metrics": [{"key": "m", "value": "high", "timestamp": 1}]}
    error = assert_error(
        api.post(f"/api/v1/runs/{run_id}/log-batch", json=bad_metric), 400, "INVALID_INPUT"
    )
    assert ["body", "metrics", "0", "value"] in [e["loc"][:4] for e in error["details"]["errors"]]


def test_malformed_json_and_missing_fields_are_400(api: Api) -> None:
    assert_error(
        api.post(
            "/api/v1/experiments",
            content=b"{not json",
            headers={"content-type": "application/json"},
        ),
        400,
        "INVALID_INPUT",
    )
    error = assert_error(api.post("/api/v1/runs", json={}), 400, "INVALID_INPUT")
    assert ["body", "experiment_id"] in [e["loc"] for e in error["details"]["errors"]]
    error = assert_error(api.get("/api/v1/experiments/by-name"), 400, "INVALID_INPUT")
    assert error["details"]["errors"][0]["loc"] == ["query", "name"]


def test_unknown_things_are_404(api: Api) -> None:
    error = assert_error(api.get("/api/v2/nothing"), 404, "NOT_FOUND")
    assert error["details"] == {}
    assert_error(api.get("/api/v1/runs/0123"), 404, "NOT_FOUND")
    assert_error(api.get("/api/v1/experiments/0123"), 404, "NOT_FOUND")
    run_id = _run(api, _experiment(api))
    assert_error(
        api.get(f"/api/v1/runs/{run_id}/artifact", params={"path": "absent.txt"}), 404, "NOT_FOUND"
    )
    assert_error(
        api.request("PUT", "/api/v1/runs/nope/artifact", params={"path": "a"}, content=b"x"),
        404,
        "NOT_FOUND",
    )


def test_wrong_method_is_405_with_allow(api: Api) -> None:
    response = api.request("PUT", "/health")
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["allow"] == "GET"


def test_conflicts_are_409(api: Api) -> None:
    _experiment(api, "same")
    assert_error(api.post("/api/v1/experiments", json={"name": "same"}), 409, "CONFLICT")
    run_id = _run(api, _experiment(api, "other"))
    url = f"/api/v1/runs/{run_id}/log-batch"
    api.post(url, json={"params": [{"key": "lr", "value": "0.1"}]})
    error = assert_error(
        api.post(url, json={"params": [{"key": "lr", "value": "0.2"}]}), 409, "CONFLICT"
    )
    assert "immutable" in error["message"]


def test_filter_syntax_error_is_400_with_column(api: Api) -> None:
    exp_id = _experiment(api)
    bad = "metrics.acc >>> 0.5"
    error = assert_error(
        api.post("/api/v1/runs/search", json={"experiment_ids": [exp_id], "filter": bad}),
        400,
        "INVALID_FILTER",
    )
    assert isinstance(error["details"]["column"], int)
    assert error["details"]["column"] >= 1
    assert error["details"]["filter"] == bad


def test_unsafe_artifact_path_is_400(api: Api) -> None:
    run_id = _run(api, _experiment(api))
    assert_error(
        api.request(
            "PUT", f"/api/v1/runs/{run_id}/artifact", params={"path": "../../etc/x"}, content=b"x"
        ),
        400,
        "UNSAFE_PATH",
    )


class _Exploding:
    """A backend whose every call fails unexpectedly (with a secret in the message)."""

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("password=hunter2 leaked from the depths")

        return fail


def test_unexpected_errors_are_500_generic_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(_Exploding())
    with anyio.from_thread.start_blocking_portal() as portal:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        api = Api(portal, client)
        with caplog.at_level(logging.ERROR, logger="mloop.server"):
            response = api.get("/api/v1/runs/abc")
        portal.call(client.aclose)
    error = assert_error(response, 500, "INTERNAL_ERROR")
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    assert error["details"] == {}
    assert any(r.exc_info and "hunter2" in str(r.exc_info[1]) for r in caplog.records)


# -- through RestBackend against a live server -------------------------------------------------


def test_rest_backend_round_trips_every_method(remote: RestBackend) -> None:
    exp_id = remote.create_experiment("remote", None, {"k": "v"})
    assert remote.get_experiment(exp_id).tags == {"k": "v"}
    found = remote.get_experiment_by_name("remote")
    assert found is not None
    assert found.experiment_id == exp_id
    assert remote.get_experiment_by_name("absent") is None
    assert [e.experiment_id for e in remote.search_experiments()] == [exp_id]

    run = remote.create_run(
        exp_id, run_name="r", user_id="ada", start_time=5, tags={"a": "1"}, parent_run_id=None
    )
    run_id = run.info.run_id
    remote.log_batch(
        run_id,
        [Metric("loss", 0.5, 1, 0), Metric("loss", math.nan, 2, 1), Metric("loss", 0.1, 3, 2)],
        [Param("lr", "0.1")],
        [RunTag("b", "2")],
    )
    history = remote.get_metric_history(run_id, "loss")
    assert [m.step for m in history] == [0, 1, 2]
    assert math.isnan(history[1].value)
    got = remote.get_run(run_id)
    assert got.data.metrics == {"loss": 0.1}
    assert got.data.params == {"lr": "0.1"}
    assert got.data.tags == {"a": "1", "b": "2"}
    info = remote.update_run(run_id, status=RunStatus.FINISHED, end_time=9)
    assert info.status is RunStatus.FINISHED
    assert info.end_time == 9

    runs, token = remote.search_runs([exp_id], "params.lr = '0.1'", max_results=10)
    assert [r.info.run_id for r in runs] == [run_id]
    assert token is None
    remote.delete_run(run_id)
    assert remote.search_runs([exp_id])[0] == []
    assert [r.info.run_id for r in remote.search_runs([exp_id], view_type=ALL)[0]] == [run_id]
    remote.restore_run(run_id)
    assert remote.get_run(run_id).info.lifecycle_stage == "active"

    remote.log_inputs(run_id, [RunInput("dataset:x@1", "train", "dataset", None, {"rows": 3})])
    assert remote.get_inputs(run_id) == [
        RunInput("dataset:x@1", "train", "dataset", None, {"rows": 3})
    ]

    data = b"0123456789" * 300_000
    stored = remote.log_artifact_stream(run_id, "dir/data.bin", io.BytesIO(data))
    assert stored.size == len(data)
    assert stored.digest == hashlib.sha256(data).hexdigest()
    listed = remote.list_artifacts(run_id)
    assert [(a.path, a.is_dir) for a in listed] == [("dir", True)]
    assert [a.path for a in remote.list_artifacts(run_id, "dir")] == ["dir/data.bin"]
    with remote.open_artifact(run_id, "dir/data.bin") as stream:
        head = stream.read(7)
        rest = stream.read()
    assert head + rest == data

    remote.delete_experiment(exp_id)
    assert remote.search_experiments() == []


def test_rest_backend_raises_the_embedded_error_classes(remote: RestBackend) -> None:
    exp_id = remote.create_experiment("errors")
    with pytest.raises(Conflict, match="already exists"):
        remote.create_experiment("errors")
    run_id = remote.create_run(
        exp_id, run_name=None, user_id=None, start_time=1, tags={}, parent_run_id=None
    ).info.run_id
    remote.log_batch(run_id, params=[Param("lr", "0.1")])
    with pytest.raises(Conflict, match="immutable") as conflict:
        remote.log_batch(run_id, params=[Param("lr", "0.2")])
    assert conflict.value.code == "CONFLICT"
    assert conflict.value.details["old"] == "0.1"
    with pytest.raises(NotFound, match="does not exist"):
        remote.get_run("0" * 32)
    with pytest.raises(NotFound):
        remote.open_artifact(run_id, "absent.bin")
    with pytest.raises(FilterSyntaxError) as syntax:
        remote.search_runs([exp_id], "metrics.acc >>> 1")
    assert syntax.value.column >= 1
    assert syntax.value.text == "metrics.acc >>> 1"
    assert isinstance(syntax.value, InvalidInput)
    with pytest.raises(UnsafePath):
        remote.log_artifact_stream(run_id, "../escape", io.BytesIO(b"x"))
    with pytest.raises(UnsafePath):
        remote.list_artifacts(run_id, "../up")
    with pytest.raises(InvalidInput):
        remote.search_runs([exp_id], max_results=0)


def test_a_corrupted_blob_breaks_the_download_off(remote: RestBackend) -> None:
    """Bytes that fail verification end in an error, never in a silently short file."""
    exp_id = remote.create_experiment("corrupt")
    run_id = remote.create_run(
        exp_id, run_name=None, user_id=None, start_time=1, tags={}, parent_run_id=None
    ).info.run_id
    data = os.urandom(3 * (1 << 20))
    info = remote.log_artifact_stream(run_id, "blob.bin", io.BytesIO(data))
    assert info.digest is not None
    root = Path(get_settings().resolved_artifact_uri)
    blob = next(p for p in root.rglob(info.digest[2:]) if p.is_file())
    blob.chmod(0o644)
    blob.write_bytes(bytes(b ^ 0xFF for b in data[:16]) + data[16:])
    with (
        remote.open_artifact(run_id, "blob.bin") as stream,
        pytest.raises(RemoteError, match="broke off"),
    ):
        shutil.copyfileobj(stream, io.BytesIO())


def test_rest_backend_unreachable_server_says_what_to_do() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = RestBackend(f"http://ada:s3cret@127.0.0.1:{port}")
    try:
        with pytest.raises(RemoteError, match="not reachable") as caught:
            backend.get_run("x")
    finally:
        backend.close()
    assert "mloop server" in str(caught.value)
    assert caught.value.code == "UNREACHABLE"
    assert "s3cret" not in str(caught.value)
    assert "s3cret" not in repr(backend)


def test_rest_backend_wrong_root_is_not_found(live_server: str) -> None:
    backend = RestBackend(f"{live_server}/not-the-api-root")
    try:
        with pytest.raises(NotFound, match="no endpoint"):
            backend.get_run("x")
    finally:
        backend.close()


def test_a_non_mloop_error_answer_is_remote_error() -> None:
    request = httpx.Request("GET", "http://proxy/api/v1/runs/x")
    response = httpx.Response(502, text="<html>Bad Gateway</html>", request=request)
    error = error_from_response(response, "http://proxy")
    assert isinstance(error, RemoteError)
    assert error.http_status == 502
    assert "Bad Gateway" in str(error)
    assert "really an mloop server" in str(error)
    unknown = httpx.Response(
        418,
        json={"error": {"code": "TEAPOT", "message": "short and stout", "details": {"x": 1}}},
        request=request,
    )
    error = error_from_response(unknown, "http://proxy")
    assert isinstance(error, RemoteError)
    assert (error.code, error.http_status, str(error), error.details) == (
        "TEAPOT",
        418,
        "short and stout",
        {"x": 1},
    )


def test_a_run_is_created_with_small_files_and_finished_in_one_request(api: Api) -> None:
    exp = _experiment(api)
    encoded = base64.b64encode(b"numpy==2.0\n").decode()
    created = api.post(
        "/api/v1/runs",
        json={"experiment_id": exp, "artifacts": {"_mloop/requirements.lock": encoded}},
    )
    assert created.status_code == 201
    run_id = created.json()["info"]["run_id"]
    lock = api.get(f"/api/v1/runs/{run_id}/artifact", params={"path": "_mloop/requirements.lock"})
    assert lock.content == b"numpy==2.0\n"
    finished = api.post(
        f"/api/v1/runs/{run_id}/finish",
        json={
            "status": "FINISHED",
            "end_time": 5,
            "metrics": [{"key": "acc", "value": 0.9, "timestamp": 1, "step": 0}],
            "params": [{"key": "lr", "value": "0.1"}],
        },
    )
    assert finished.status_code == 204
    run = api.get(f"/api/v1/runs/{run_id}").json()
    assert run["info"]["status"] == "FINISHED"
    assert run["info"]["end_time"] == 5
    assert run["data"]["metrics"] == {"acc": 0.9}
    assert run["data"]["params"] == {"lr": "0.1"}
    assert_error(
        api.post("/api/v1/runs/missing/finish", json={"status": "FINISHED"}), 404, "NOT_FOUND"
    )
    too_big = base64.b64encode(b"x" * ((1 << 20) + 1)).decode()
    body = assert_error(
        api.post("/api/v1/runs", json={"experiment_id": exp, "artifacts": {"big.bin": too_big}}),
        400,
        "INVALID_INPUT",
    )
    assert "PUT" in body["message"]
    escaping = api.post("/api/v1/runs", json={"experiment_id": exp, "artifacts": {"../x": encoded}})
    assert_error(escaping, 400, "UNSAFE_PATH")
