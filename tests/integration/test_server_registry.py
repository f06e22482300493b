"""The registry through a tracking server with auth on: ``log_model(registered_model_name=)``
and ``load_model("models:/…")`` against ``http://…``, with an API key, end to end.

After the server starts, the client's own ``MLOOP_HOME`` moves to an empty folder, so a
registry call that wrongly went to a local store would find nothing there and fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest

import mloop
from mloop import registry
from mloop.errors import (
    MloopError,
    NotFound,
    PermissionDenied,
    PolicyViolation,
    TamperedPackage,
    Unauthenticated,
    UntrustedSignature,
)
from mloop.registry._remote import RemoteRegistry, remote_registry
from mloop.server import create_app
from mloop.store import MetadataStore
from mloop.tracking._rest_backend import error_from_response
from tests.fixtures.live_server import running_server

X = np.array([[0.0, 0.1], [0.2, 0.0], [1.0, 0.9], [0.9, 1.1], [0.1, 0.2], [1.1, 1.0]])
Y = np.array([0, 0, 1, 1, 0, 1])


@dataclass
class Server:
    url: str
    store: MetadataStore
    keys: dict[str, str] = field(repr=False)


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    registry.create_user("alice", roles=[("editor", "global"), ("deployer", "global")])
    registry.create_user("vic", roles=[("viewer", "global")])
    # May log runs in "scoped" only: registering a model needs write on the model too.
    registry.create_user("sam", roles=[("editor", "experiment:scoped")])
    registry.create_user("mo", roles=[("viewer", "model:iris")])  # the model, not its runs
    keys = {name: registry.create_api_key(name).key for name in ("alice", "vic", "sam", "mo")}
    app = create_app(auth=True)
    with running_server(app) as url:
        monkeypatch.setenv("MLOOP_HOME", str(tmp_path / "client-home"))
        mloop.set_tracking_uri(url)
        try:
            yield Server(url, app.state.backend.store, keys)
        finally:
            mloop.set_tracking_uri(None)


def _model() -> object:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression().fit(X, Y)


def _as(monkeypatch: pytest.MonkeyPatch, key: str | None) -> None:
    if key is None:
        monkeypatch.delenv("MLOOP_API_KEY", raising=False)
    else:
        monkeypatch.setenv("MLOOP_API_KEY", key)


def test_log_register_and_load_through_the_server(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    _as(monkeypatch, server.keys["alice"])
    model = _model()
    mloop.set_experiment("iris-remote")
    with mloop.start_run() as run:
        info = mloop.log_model(model, "model", registered_model_name="iris")
    assert info.registered_version == 1
    assert run.info.user_id == "alice"

    # The version lives in the server's store, registered by the key's owner.
    stored = registry.get_model_version("iris", 1, store=server.store)
    assert (stored.uploader, stored.run_id, stored.package_digest) == (
        "alice",
        run.info.run_id,
        info.package_digest,
    )


def test_load_by_version_and_alias_through_the_server(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    _as(monkeypatch, server.keys["alice"])
    model = _model()
    with mloop.start_run():
        mloop.log_model(model, "model", registered_model_name="iris")
    remote = remote_registry()
    assert isinstance(remote, RemoteRegistry)
    moved = remote.set_alias("iris", "champion", 1)
    assert moved.aliases == ("champion",)
    expected = model.predict(X)  # type: ignore[attr-defined]
    for uri in ("models:/iris/1", "models:/iris@champion"):
        loaded = mloop.load_model(uri)
        assert list(loaded.predict(X)) == list(expected)
    entries = registry.list_audit_log(actor="alice", store=server.store)
    assert {"model.create", "version.create", "alias.set"} <= {e.action for e in entries}

    # A viewer may load, but not move aliases.
    _as(monkeypatch, server.keys["vic"])
    assert list(mloop.load_model("models:/iris@champion").predict(X)) == list(expected)
    with pytest.raises(PermissionDenied, match="'vic' may not deploy model:iris"):
        remote_registry().set_alias("iris", "champion", 1)  # type: ignore[union-attr]
    with pytest.raises(NotFound, match="no alias 'nope'"):
        mloop.load_model("models:/iris@nope")


def test_scoped_editor_logs_runs_but_may_not_register(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    _as(monkeypatch, server.keys["alice"])
    mloop.set_experiment("scoped")  # alice creates it; sam may write inside it only
    _as(monkeypatch, server.keys["sam"])
    mloop.set_experiment("scoped")
    with pytest.raises(PermissionDenied) as caught, mloop.start_run():
        mloop.log_model(_model(), "model", registered_model_name="iris")
    message = caught.value.message
    assert "'sam' may not write model:iris" in message
    assert "mloop users grant sam editor --model iris" in message
    with pytest.raises(NotFound):
        registry.get_registered_model("iris", store=server.store)


def test_viewer_key_cannot_register(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    _as(monkeypatch, server.keys["alice"])
    with mloop.start_run() as run:
        info = mloop.log_model(_model(), "model")
    _as(monkeypatch, server.keys["vic"])
    remote = remote_registry()
    assert remote is not None
    with pytest.raises(PermissionDenied, match="'vic' may not write model:iris"):
        remote.register_model_version(
            "iris", info.model_uri, run_id=run.info.run_id, package_digest=info.package_digest
        )


def test_policy_violation_crosses_as_policy_violation(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    _as(monkeypatch, server.keys["alice"])
    with mloop.start_run():
        mloop.log_model(_model(), "model", registered_model_name="iris")
    registry.set_trust_policy(
        "iris", registry.TrustPolicy(required_approvals=1), store=server.store
    )
    remote = remote_registry()
    assert remote is not None
    with pytest.raises(PolicyViolation, match="approval"):
        remote.set_alias("iris", "champion", 1)
    assert remote.get_registered_model("iris").aliases == {}
    policy = remote.get_trust_policy("iris")
    assert policy is not None
    assert policy.required_approvals == 1


def test_no_key_is_refused_with_how_to_fix(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    _as(monkeypatch, None)
    with pytest.raises(Unauthenticated, match="MLOOP_API_KEY"):
        mloop.load_model("models:/iris/1")


@pytest.mark.parametrize(
    "error",
    [
        Unauthenticated("no key"),
        PermissionDenied("not yours"),
        PolicyViolation("needs an approval"),
        NotFound("no such model"),
        TamperedPackage("changed"),
        UntrustedSignature("unsigned"),
    ],
)
def test_server_errors_come_back_as_their_class(error: MloopError) -> None:
    body = {"error": {"code": error.code, "message": error.message, "details": {"k": 1}}}
    response = httpx.Response(error.http_status, json=body)
    back = error_from_response(response, "http://server")
    assert type(back) is type(error)
    assert (back.message, back.details) == (error.message, {"k": 1})


def test_with_auth_off_the_servers_configured_user_registers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLOOP_USER", "ops-bot")
    app = create_app(auth=False)
    with running_server(app) as url:
        mloop.set_tracking_uri(url)
        try:
            with mloop.start_run():
                info = mloop.log_model(_model(), "model", registered_model_name="iris")
        finally:
            mloop.set_tracking_uri(None)
    stored = registry.get_model_version("iris", 1, store=app.state.backend.store)
    assert stored.uploader == "ops-bot"
    assert stored.package_digest == info.package_digest


def test_who_may_read_a_model_may_load_it_but_not_read_its_run(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    _as(monkeypatch, server.keys["alice"])
    model = _model()
    with mloop.start_run() as run:
        mloop.log_model(model, "model", registered_model_name="iris")
        mloop.log_model(model, "unregistered")
    _as(monkeypatch, server.keys["mo"])
    loaded = mloop.load_model("models:/iris/1")
    assert list(loaded.predict(X)) == list(model.predict(X))  # type: ignore[attr-defined]
    client = mloop.MloopClient(server.url)
    with pytest.raises(PermissionDenied, match="'mo' may not read experiment"):
        client.list_artifacts(run.info.run_id)
    with pytest.raises(PermissionDenied):
        mloop.load_model(f"runs:/{run.info.run_id}/unregistered")
    with pytest.raises(PermissionDenied):
        client.get_run(run.info.run_id)
