"""Server auth: every route of the app, walked by every kind of caller, answers exactly
what the route table and the role table say (401 / 403 / 2xx), over real HTTP.

Each caller walks its own little world (an experiment with a run and an artifact, a
registered model with a version and an alias), so one caller's deletes never change what
another sees; scoped callers hold their role on their own world, or on someone else's.
"""

from __future__ import annotations

import base64
import io
import ipaddress
import logging
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mloop import registry
from mloop.artifacts import artifact_store_for
from mloop.config import get_settings
from mloop.errors import ConfigError, PermissionDenied, Unauthenticated
from mloop.registry._roles import GLOBAL, Resource, allowed_by
from mloop.server import create_app
from mloop.server._auth import (
    ANY,
    BODY_EXPERIMENT,
    BODY_EXPERIMENTS,
    EXPERIMENT,
    EXPERIMENT_NAME,
    LISTING,
    MODEL,
    PUBLIC,
    ROUTES,
    RUN,
    RUN_FILES,
    api_routes,
    auth_enabled,
    check_routes_covered,
    route_table_markdown,
)
from mloop.store import open_store
from mloop.tracking._rest_backend import RestBackend
from mloop.tracking._sql_backend import SqlBackend
from tests.fixtures.live_server import running_server

DOCS = Path(__file__).parents[2] / "docs" / "server.md"

# name → roles; "{own}" is replaced by the caller's own experiment or model.
CALLERS: dict[str, list[tuple[str, str]]] = {
    "viewer": [("viewer", "global")],
    "editor": [("editor", "global")],
    "approver": [("approver", "global")],
    "deployer": [("deployer", "global")],
    "admin": [("admin", "global")],
    "exp-viewer": [("viewer", "experiment:{own_experiment}")],
    "exp-editor": [("editor", "experiment:{own_experiment_id}")],  # scoped by id
    "model-deployer": [("deployer", "model:{own_model}")],
    "model-editor": [("editor", "model:{own_model}")],
    "elsewhere-admin": [("admin", "experiment:other"), ("admin", "model:other")],
}
# Calls that change what later calls rely on go last, undoing where they can.
LAST = [
    ("POST", "/api/v1/runs/{run_id}/finish"),
    ("DELETE", "/api/v1/runs/{run_id}"),
    ("POST", "/api/v1/runs/{run_id}/restore"),
    ("DELETE", "/api/v1/experiments/{experiment_id}"),
]


@dataclass
class World:
    experiment: str
    experiment_id: str
    run_id: str
    model: str


@dataclass
class Caller:
    name: str
    world: World
    roles: tuple[registry.RoleGrant, ...]
    key: str = field(repr=False)


@dataclass
class Setup:
    url: str
    app: Any
    callers: dict[str, Caller]
    refused: dict[str, str | None] = field(repr=False)  # headers that must give 401


def _world(backend: SqlBackend, owner: str) -> World:
    name = f"exp-{owner}"
    experiment_id = backend.create_experiment(name)
    run = backend.create_run(
        experiment_id, run_name=None, user_id=owner, start_time=1, tags={}, parent_run_id=None
    )
    run_id = run.info.run_id
    backend.log_artifact_stream(run_id, "notes.txt", io.BytesIO(b"hello"))
    model = f"m-{owner}"
    registry.register_model_version(
        model, f"runs:/{run_id}/model", run_id=run_id, package_digest="a" * 64
    )
    registry.set_alias(model, "champion", 1)
    return World(name, experiment_id, run_id, model)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOOP_HOME", str(tmp_path_factory.mktemp("auth-home")))
        settings = get_settings()
        # Its own backend: the per-test reset of cached backends must not close it.
        backend = SqlBackend(open_store(settings.resolved_db_uri), artifact_store_for(settings))
        app = create_app(backend, auth=True)
        callers = {}
        for name, roles in CALLERS.items():
            world = _world(backend, name)
            scoped = [
                (
                    role,
                    scope.format(
                        own_experiment=world.experiment,
                        own_experiment_id=world.experiment_id,
                        own_model=world.model,
                    ),
                )
                for role, scope in roles
            ]
            user = registry.create_user(name, roles=scoped)
            key = registry.create_api_key(name).key
            callers[name] = Caller(name, world, user.roles, key)
        registry.create_user("gone", roles=[("admin", "global")])
        disabled_key = registry.create_api_key("gone").key
        registry.disable_user("gone")
        registry.create_user("rotated", roles=[("admin", "global")])
        revoked = registry.create_api_key("rotated")
        registry.revoke_api_key(revoked.info.key_id)
        valid = callers["admin"].key
        key_id = valid.split("_")[1]
        refused: dict[str, str | None] = {
            "no key": None,
            "not bearer": f"Basic {base64.b64encode(b'admin:pw').decode()}",
            "malformed": "Bearer not-a-key",
            "unknown key": "Bearer mloop_0123456789abcdef_" + "x" * 43,
            "wrong secret": f"Bearer mloop_{key_id}_" + "y" * 43,
            "revoked": f"Bearer {revoked.key}",
            "disabled user": f"Bearer {disabled_key}",
        }
        with running_server(app) as url:
            yield Setup(url, app, callers, refused)
        backend.close()


def _routes(app: Any) -> list[tuple[str, str]]:
    found = [
        (method, route.path) for route in api_routes(app.routes) for method in sorted(route.methods)
    ]
    return sorted(found, key=lambda r: LAST.index(r) if r in LAST else -1)


def _request(method: str, path: str, world: World, who: str) -> dict[str, Any]:
    """A request to ``path`` that succeeds for whoever may make it."""
    url = path.format(
        experiment_id=world.experiment_id,
        run_id=world.run_id,
        name=world.model,
        version="1",
        alias="champion" if method == "GET" else "challenger",
    )
    params: dict[str, str] = {}
    body: Any = None
    content: bytes | None = None
    if path.endswith("/by-name"):
        params["name"] = world.experiment
    elif path == "/api/v1/experiments" and method == "POST":
        body = {"name": f"new-{who}"}
    elif path == "/api/v1/runs" and method == "POST":
        body = {"experiment_id": world.experiment_id, "user_id": "mallory"}
    elif path.endswith("/search"):
        body = {"experiment_ids": [world.experiment_id]}
    elif path.endswith(("/log-batch", "/inputs")) and method == "POST":
        body = {"params": [{"key": "p", "value": "1"}]} if "batch" in path else {"inputs": []}
    elif path.endswith("/finish"):
        body = {"status": "FINISHED"}
    elif path.endswith("/metrics/history"):
        params["key"] = "m"
    elif path.endswith("/artifact"):
        params["path"] = "notes.txt" if method == "GET" else f"upload-{who}.txt"
        if method == "PUT":
            content = b"bytes"
    elif path.endswith("/versions") and method == "POST":
        body = {"source": f"runs:/{world.run_id}/model", "package_digest": "b" * 64}
    elif path.endswith("/aliases/{alias}") and method == "PUT":
        body = {"version": 1}
    elif method == "PATCH":
        body = {"run_name": "renamed"}
    return {"method": method, "url": url, "params": params, "json": body, "content": content}


def _resource(kind: str, world: World) -> Resource:
    if kind == MODEL:
        return Resource.model(world.model)
    if kind == ANY:
        return GLOBAL
    assert kind in (EXPERIMENT, EXPERIMENT_NAME, BODY_EXPERIMENT, BODY_EXPERIMENTS, RUN, RUN_FILES)
    return Resource.experiment(world.experiment_id, world.experiment)


def test_every_route_has_a_rule_and_every_rule_a_route(setup: Setup) -> None:
    assert set(_routes(setup.app)) == set(ROUTES)


@pytest.mark.parametrize("caller", list(CALLERS))
def test_every_route_answers_as_the_tables_say(setup: Setup, caller: str) -> None:
    me = setup.callers[caller]
    answers: list[tuple[str, str, int, int]] = []
    with httpx.Client(base_url=setup.url, timeout=30) as http:
        for method, path in _routes(setup.app):
            rule = ROUTES[(method, path)]
            request = _request(method, path, me.world, caller)
            response = http.request(**request, headers={"Authorization": f"Bearer {me.key}"})
            if rule.resource in (PUBLIC, LISTING):
                may = True
            else:
                may = allowed_by(me.roles, rule.action, _resource(rule.resource, me.world))
            got = response.status_code
            if not (200 <= got < 300 if may else got == 403):
                answers.append((method, path, got, 200 if may else 403))
            if got == 403:
                error = response.json()["error"]
                assert error["code"] == "PERMISSION_DENIED"
                assert f"may not {rule.action}" in error["message"]
                assert "mloop users grant" in error["message"]
    assert answers == [], f"{caller}: (method, path, got, expected)"


@pytest.mark.parametrize(
    "refused",
    [
        "no key",
        "not bearer",
        "malformed",
        "unknown key",
        "wrong secret",
        "revoked",
        "disabled user",
    ],
)
def test_every_route_refuses_a_caller_without_a_valid_key(
    setup: Setup, refused: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    header = setup.refused[refused]
    world = setup.callers["admin"].world
    with httpx.Client(base_url=setup.url, timeout=30) as http:
        for method, path in _routes(setup.app):
            if (method, path) in LAST:
                continue  # nothing may change here, but keep admin's world whole anyway
            request = _request(method, path, world, "nobody")
            headers = {"Authorization": header} if header else {}
            response = http.request(**request, headers=headers)
            if ROUTES[(method, path)].resource == PUBLIC:
                assert response.status_code == 200, path
                continue
            assert response.status_code == 401, (method, path, response.text)
            assert response.headers["www-authenticate"] == "Bearer"
            error = response.json()["error"]
            assert error["code"] == "UNAUTHENTICATED"
            if header and "mloop_" in header:
                assert header.split()[1] not in response.text  # never echo a key
    if header:
        assert header.split()[1] not in caplog.text  # nor log it


def test_runs_record_the_key_owner_not_the_claimed_user(setup: Setup) -> None:
    headers = {"Authorization": f"Bearer {setup.callers['editor'].key}"}
    with httpx.Client(base_url=setup.url, timeout=30, headers=headers) as http:
        created = http.post("/api/v1/experiments", json={"name": "forgery"})
        body = {"experiment_id": created.json()["experiment_id"], "user_id": "mallory"}
        answer = http.post("/api/v1/runs", json=body)
    assert answer.status_code == 201
    assert answer.json()["info"]["user_id"] == "editor"


def test_listings_show_only_what_the_caller_may_read(setup: Setup) -> None:
    with httpx.Client(base_url=setup.url, timeout=30) as http:
        mine = setup.callers["exp-viewer"]
        found = http.get("/api/v1/experiments", headers={"Authorization": f"Bearer {mine.key}"})
        assert [e["name"] for e in found.json()["experiments"]] == [mine.world.experiment]
        modeller = setup.callers["model-editor"]
        models = http.get(
            "/api/v1/registry/models", headers={"Authorization": f"Bearer {modeller.key}"}
        )
        assert [m["name"] for m in models.json()["models"]] == [modeller.world.model]
        outsider = setup.callers["elsewhere-admin"]
        none = http.get("/api/v1/experiments", headers={"Authorization": f"Bearer {outsider.key}"})
        assert none.json()["experiments"] == []


def test_the_client_raises_the_servers_refusals(setup: Setup) -> None:
    viewer = RestBackend(setup.url, api_key=setup.callers["viewer"].key)
    anonymous = RestBackend(setup.url)
    try:
        with pytest.raises(PermissionDenied, match="user 'viewer' may not write global"):
            viewer.create_experiment("nope")
        assert viewer.get_experiment_by_name("exp-viewer") is not None
        with pytest.raises(Unauthenticated, match="requires an API key"):
            anonymous.search_experiments()
    finally:
        viewer.close()
        anonymous.close()
    assert "mloop_" not in repr(viewer)


def test_an_app_with_an_unguarded_route_is_refused() -> None:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/api/v1/secret")
    def secret() -> dict[str, str]:
        return {}

    with pytest.raises(ConfigError, match="GET /api/v1/secret"):
        check_routes_covered(app.routes)


@pytest.mark.parametrize(
    ("mode", "host", "on"),
    [
        ("auto", "127.0.0.1", False),
        ("auto", "::1", False),
        ("auto", "[::1]", False),
        ("auto", "localhost", False),
        ("auto", "127.0.0.2", False),
        ("auto", "0.0.0.0", True),
        ("auto", "::", True),
        ("auto", "10.1.2.3", True),
        ("auto", "mlops.example.com", True),
        ("on", "127.0.0.1", True),
        ("off", "0.0.0.0", False),
    ],
)
def test_auto_is_on_unless_bound_to_loopback(mode: str, host: str, on: bool) -> None:
    assert auth_enabled(mode, host) is on


def test_the_documented_route_table_is_the_code(setup: Setup) -> None:
    assert route_table_markdown() in DOCS.read_text()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(args: list[str], home: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOOP_")}
    env["MLOOP_HOME"] = str(home)
    return subprocess.Popen(
        [sys.executable, "-m", "mloop.server", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop(process: subprocess.Popen[str]) -> str:
    process.terminate()
    try:
        _, err = process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    return err


def test_serve_hands_auth_on_to_its_workers(tmp_path: Path) -> None:
    port = _free_port()
    process = _start(["--port", str(port), "--auth", "on"], tmp_path / "home")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except httpx.TransportError:
                assert process.poll() is None, "the server exited"
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.05)
        assert health.status_code == 200
        refused = httpx.get(f"http://127.0.0.1:{port}/api/v1/experiments", timeout=5)
        assert refused.status_code == 401
    finally:
        _stop(process)


def test_auth_off_off_loopback_warns_loudly(tmp_path: Path) -> None:
    port = _free_port()
    process = _start(["--host", "0.0.0.0", "--port", str(port), "--auth", "off"], tmp_path)
    assert process.stderr is not None
    try:
        deadline = time.monotonic() + 30
        seen = ""
        while "AUTH IS OFF" not in seen:
            assert time.monotonic() < deadline, f"no warning in {seen!r}"
            ready, _, _ = select.select([process.stderr], [], [], 0.5)
            if ready:
                line = process.stderr.readline()
                assert line or process.poll() is None, f"the server exited: {seen!r}"
                seen += line
    finally:
        _stop(process)
    assert "0.0.0.0" in seen


def test_openapi_declares_the_bearer_scheme_without_a_key(setup: Setup) -> None:
    schema = httpx.get(f"{setup.url}/openapi.json", timeout=10).json()
    assert schema["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    assert schema["security"] == [{"ApiKey": []}]
    assert schema["paths"]["/health"]["get"]["security"] == []


def test_a_key_is_hashed_once_per_process_not_per_request(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mloop.registry import _keys

    hashed: list[str] = []
    real = _keys.hash_key

    def counting(key: str, salt: str, scheme: str = _keys.SCHEME) -> str:
        hashed.append(salt)
        return real(key, salt, scheme)

    monkeypatch.setattr(_keys, "hash_key", counting)
    key = registry.create_api_key("viewer", store=setup.app.state.backend.store).key
    hashed.clear()  # creating the key hashed it once
    with httpx.Client(base_url=setup.url, headers={"Authorization": f"Bearer {key}"}) as http:
        for _ in range(5):
            assert http.get("/api/v1/experiments").status_code == 200
    assert len(hashed) == 1


@given(st.ip_addresses())
def test_auto_decides_by_the_address_itself(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    assert auth_enabled("auto", str(address)) is not address.is_loopback
    assert auth_enabled("auto", f"[{address}]") is not address.is_loopback


@given(st.text(max_size=200))
def test_any_authorization_header_is_a_key_or_a_clear_401(header: str) -> None:
    from starlette.requests import Request

    from mloop.server._auth import _bearer

    sent = header.encode("latin-1", "replace")
    raw = [(b"authorization", sent)] if header else []
    request = Request({"type": "http", "method": "GET", "path": "/", "headers": raw})
    scheme, _, token = sent.decode("latin-1").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        assert _bearer(request) == token.strip()
        return
    with pytest.raises(Unauthenticated, match="Bearer"):
        _bearer(request)
