"""Creating and ending runs through a live server: captured files sent once then by
digest, digests that prove nothing without the bytes, and writes that never make the
server's event loop wait for another writer's lock."""

from __future__ import annotations

import hashlib
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from mloop import registry
from mloop.artifacts import artifact_store_for
from mloop.config import get_settings
from mloop.errors import Conflict
from mloop.server import create_app
from mloop.store import open_store
from mloop.tracking import Metric, Param, RunStatus
from mloop.tracking._rest_backend import RestBackend
from mloop.tracking._sql_backend import SqlBackend
from tests.fixtures.live_server import running_server

LOCK = b"# mloop requirements lock v1\nnumpy==2.0.0\n" * 50
DIFF = b"diff --git a/train.py b/train.py\n+lr = 0.1\n" * 30
FILES = {"_mloop/requirements.lock": LOCK, "_mloop/git.diff": DIFF}


class RecordingBackend(RestBackend):
    """A real REST client that also keeps the JSON bodies of its create-run requests."""

    def __init__(self, uri: str, **kwargs: Any) -> None:
        super().__init__(uri, **kwargs)
        self.create_bodies: list[dict[str, Any]] = []

    def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        if method == "POST" and url == "/runs":
            self.create_bodies.append(dict(kwargs["json"]))
        return super()._call(method, url, **kwargs)


def _new_run(client: RestBackend, experiment_id: str) -> str:
    return client.create_run(
        experiment_id,
        run_name=None,
        user_id=None,
        start_time=1,
        tags={"t": "v"},
        parent_run_id=None,
        artifacts=FILES,
    ).info.run_id


def _files_of(client: RestBackend, run_id: str) -> dict[str, bytes]:
    found = {}
    for path in FILES:
        with client.open_artifact(run_id, path) as f:
            found[path] = f.read()
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _server_on(port: int) -> Iterator[str]:
    """A server over the test's stores on a fixed port, so a restart keeps its URL."""
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(), host="127.0.0.1", port=port, log_config=None, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(500):
            if server.started:
                break
            thread.join(timeout=0.02)
        assert server.started, "the server did not start"
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def test_capture_files_travel_once_then_by_digest(live_server: str) -> None:
    client = RecordingBackend(live_server)
    try:
        experiment_id = client.create_experiment("digests")
        first = _new_run(client, experiment_id)
        second = _new_run(client, experiment_id)
        assert set(client.create_bodies[0]["artifacts"]) == set(FILES)
        assert "artifact_digests" not in client.create_bodies[0]
        assert client.create_bodies[1]["artifacts"] == {}
        assert client.create_bodies[1]["artifact_digests"] == {
            p: hashlib.sha256(c).hexdigest() for p, c in FILES.items()
        }
        assert _files_of(client, first) == FILES
        assert _files_of(client, second) == FILES
    finally:
        client.close()


def test_a_restarted_server_is_sent_the_files_again() -> None:
    port = _free_port()
    with _server_on(port) as url:
        client = RecordingBackend(url)
        experiment_id = client.create_experiment("restart")
        _new_run(client, experiment_id)
    with _server_on(port):  # same URL, same store, a server that never saw the files
        run_id = _new_run(client, experiment_id)
        bodies = client.create_bodies[1:]
        assert [set(b.get("artifact_digests", {})) for b in bodies] == [set(FILES), set()]
        assert set(bodies[1]["artifacts"]) == set(FILES)  # the retry sent them whole
        assert _files_of(client, run_id) == FILES
        client.close()


def test_a_digest_without_the_bytes_is_refused(live_server: str) -> None:
    secret = hashlib.sha256(b"someone else's file").hexdigest()
    experiment_id = httpx.post(f"{live_server}/api/v1/experiments", json={"name": "x"}).json()[
        "experiment_id"
    ]
    body = {"experiment_id": experiment_id, "artifact_digests": {"stolen.txt": secret}}
    answer = httpx.post(f"{live_server}/api/v1/runs", json=body)
    assert answer.status_code == 409
    error = answer.json()["error"]
    assert error["code"] == "CONFLICT"
    assert error["details"] == {"resend": ["stolen.txt"]}
    assert "send them whole" in error["message"]
    search = {"experiment_ids": [experiment_id]}
    assert httpx.post(f"{live_server}/api/v1/runs/search", json=search).json()["runs"] == []

    both = {
        "experiment_id": experiment_id,
        "artifacts": {"a.txt": "aGk="},
        "artifact_digests": {"a.txt": hashlib.sha256(b"hi").hexdigest()},
    }
    answer = httpx.post(f"{live_server}/api/v1/runs", json=both)
    assert answer.status_code == 400
    assert "both whole and by digest" in answer.json()["error"]["message"]
    bad = {"experiment_id": experiment_id, "artifact_digests": {"a.txt": "not-a-digest"}}
    assert httpx.post(f"{live_server}/api/v1/runs", json=bad).status_code == 400


def test_a_digest_counts_only_for_the_caller_who_sent_the_bytes() -> None:
    settings = get_settings()
    backend = SqlBackend(open_store(settings.resolved_db_uri), artifact_store_for(settings))
    for name in ("alice", "bob"):
        registry.create_user(name, roles=[("admin", "global")])
    keys = {name: registry.create_api_key(name).key for name in ("alice", "bob")}
    try:
        with running_server(create_app(backend, auth=True)) as url:
            alice = RecordingBackend(url, api_key=keys["alice"])
            bob = RecordingBackend(url, api_key=keys["bob"])
            experiment_id = alice.create_experiment("shared")
            _new_run(alice, experiment_id)
            bob._server_holds = set(alice._server_holds)  # bob claims alice's digests
            run_id = _new_run(bob, experiment_id)
            assert bob.create_bodies[0].get("artifact_digests")  # he tried them first,
            assert set(bob.create_bodies[1]["artifacts"]) == set(FILES)  # then sent the bytes
            assert _files_of(bob, run_id) == FILES
            alice.close()
            bob.close()
    finally:
        backend.close()


def test_a_write_waiting_for_another_writer_leaves_the_server_answering(
    live_server: str, tmp_path: Path
) -> None:
    client = RestBackend(live_server)
    experiment_id = client.create_experiment("locked")
    run_id = _new_run(client, experiment_id)
    database = get_settings().resolved_db_uri.removeprefix("sqlite:///")
    holder = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another process's writer, holding the lock
    outcome: dict[str, Any] = {}

    def finish() -> None:
        try:
            client.finish_run(run_id, RunStatus.FINISHED, 5)
            outcome["done"] = True
        except Exception as exc:  # reported below
            outcome["error"] = exc

    writer = threading.Thread(target=finish)
    writer.start()
    try:
        for _ in range(20):  # the event loop answers while the write waits for the lock
            assert httpx.get(f"{live_server}/health", timeout=10).status_code == 200
        assert writer.is_alive()
        assert not outcome
    finally:
        holder.execute("COMMIT")
        holder.close()
    writer.join(timeout=60)
    assert outcome == {"done": True}
    assert client.get_run(run_id).info.status == RunStatus.FINISHED
    client.close()


@pytest.mark.parametrize("access_log", [False, True], ids=["default", "--access-log"])
def test_the_server_logs_every_request_only_when_asked(tmp_path: Path, access_log: bool) -> None:
    port = _free_port()
    env = {**os.environ, "MLOOP_HOME": str(tmp_path / "home")}
    command = [sys.executable, "-m", "mloop.server", "--port", str(port)]
    command += ["--access-log"] if access_log else []
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
                break
            except httpx.TransportError:
                assert server.poll() is None, "the server exited"
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.05)
        httpx.get(f"http://127.0.0.1:{port}/api/v1/experiments").raise_for_status()
    finally:
        server.terminate()
        log, _ = server.communicate(timeout=30)
    assert "Uvicorn running" in log  # the server's own lines go out either way
    assert ("GET /health" in log) is access_log
    assert ("/api/v1/experiments" in log) is access_log


@pytest.mark.postgres
def test_runs_through_a_server_over_postgresql(postgres_uri: str, tmp_path: Path) -> None:
    """On PostgreSQL the run endpoints write from worker threads (the database server does
    the waiting): the same answers, files by digest included."""
    from mloop.artifacts import open_artifact_store

    backend = SqlBackend(open_store(postgres_uri), open_artifact_store(str(tmp_path / "blobs")))
    try:
        with running_server(create_app(backend, auth=False)) as url:
            client = RecordingBackend(url)
            experiment_id = client.create_experiment("pg")
            first, second = _new_run(client, experiment_id), _new_run(client, experiment_id)
            assert client.create_bodies[1]["artifacts"] == {}
            client.log_batch(second, params=[Param("lr", "0.1")])
            client.finish_run(second, RunStatus.FINISHED, 9, metrics=[Metric("acc", 0.9, 1, 0)])
            client.log_batch(first, params=[Param("lr", "a")])
            with pytest.raises(Conflict, match="immutable"):
                client.finish_run(first, RunStatus.FINISHED, 9, params=[Param("lr", "b")])
            assert client.get_run(first).info.status == RunStatus.RUNNING  # nothing written
            run = client.get_run(second)
            assert run.info.status == RunStatus.FINISHED
            assert (run.data.params, run.data.metrics) == ({"lr": "0.1"}, {"acc": 0.9})
            assert _files_of(client, second) == FILES
            client.close()
    finally:
        backend.close()
