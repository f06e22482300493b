"""Who may call which endpoint: Bearer API keys, roles, and one table of route → action.

With auth on, every endpoint but ``/health`` (and the OpenAPI pages ``/docs`` and
``/openapi.json``, which describe the API and reveal no data) needs
``Authorization: Bearer mloop_<key id>_<secret>``. The key becomes a
:class:`~mloop.registry.Principal` through :func:`mloop.registry.authenticate` (the
scrypt check is remembered per process, so a repeated key costs one read transaction of
its key row and roles, by primary key and index), then
:data:`ROUTES` says which action the route is and how to find what it touches; the
principal must hold a role allowing that action there (:func:`mloop.registry.authorize`).

A principal holding the action globally is let through without looking anything up;
only a scoped principal costs one more indexed read (a run's experiment, an experiment's
name, the models packaged in a run). Listing endpoints (:data:`LISTING`) need a valid
key only: they filter their answer to what the principal may read.

Every app route must appear in :data:`ROUTES` (``create_app`` refuses to build otherwise),
so a new endpoint cannot ship unguarded.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from fastapi import Request
from fastapi.routing import APIRoute
from sqlalchemy import Table, select
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute

from mloop.errors import ConfigError, InvalidInput, NotFound, Unauthenticated
from mloop.registry._entities import Principal
from mloop.registry._roles import ACTIONS, GLOBAL, Resource, allowed, authorize
from mloop.store import MetadataStore
from mloop.store import schema as s

logger = logging.getLogger("mloop.server")

# How a route names what it touches.
PUBLIC = "public"  # no key needed
ANY = "global"  # the action on everything
EXPERIMENT = "experiment"  # path parameter experiment_id
EXPERIMENT_NAME = "experiment-name"  # query parameter name
BODY_EXPERIMENT = "body:experiment_id"  # JSON body field experiment_id
BODY_EXPERIMENTS = "body:experiment_ids"  # JSON body field experiment_ids (each one)
RUN = "run"  # path parameter run_id → its experiment
# Reading a run's files: its experiment, or a registered model whose version's package
# (the source runs:/RUN_ID/PATH) holds the files asked for.
RUN_FILES = "run-files"
MODEL = "model"  # path parameter name → model:<name>
LISTING = "listing"  # any valid key; the answer is filtered to what it may read


@dataclass(frozen=True)
class Rule:
    action: str
    resource: str


ROUTES: dict[tuple[str, str], Rule] = {
    ("GET", "/health"): Rule("read", PUBLIC),
    # experiments
    ("POST", "/api/v1/experiments"): Rule("write", ANY),
    ("GET", "/api/v1/experiments"): Rule("read", LISTING),
    ("GET", "/api/v1/experiments/by-name"): Rule("read", EXPERIMENT_NAME),
    ("GET", "/api/v1/experiments/{experiment_id}"): Rule("read", EXPERIMENT),
    ("DELETE", "/api/v1/experiments/{experiment_id}"): Rule("write", EXPERIMENT),
    # runs
    ("POST", "/api/v1/runs"): Rule("write", BODY_EXPERIMENT),
    ("POST", "/api/v1/runs/search"): Rule("read", BODY_EXPERIMENTS),
    ("GET", "/api/v1/runs/{run_id}"): Rule("read", RUN),
    ("PATCH", "/api/v1/runs/{run_id}"): Rule("write", RUN),
    ("DELETE", "/api/v1/runs/{run_id}"): Rule("write", RUN),
    ("POST", "/api/v1/runs/{run_id}/restore"): Rule("write", RUN),
    ("POST", "/api/v1/runs/{run_id}/log-batch"): Rule("write", RUN),
    ("POST", "/api/v1/runs/{run_id}/finish"): Rule("write", RUN),
    ("GET", "/api/v1/runs/{run_id}/metrics/history"): Rule("read", RUN),
    ("POST", "/api/v1/runs/{run_id}/inputs"): Rule("write", RUN),
    ("GET", "/api/v1/runs/{run_id}/inputs"): Rule("read", RUN),
    # artifacts
    ("PUT", "/api/v1/runs/{run_id}/artifact"): Rule("write", RUN),
    ("GET", "/api/v1/runs/{run_id}/artifact"): Rule("read", RUN_FILES),
    ("GET", "/api/v1/runs/{run_id}/artifacts"): Rule("read", RUN_FILES),
    # registry
    ("GET", "/api/v1/registry/models"): Rule("read", LISTING),
    ("GET", "/api/v1/registry/models/{name}"): Rule("read", MODEL),
    ("GET", "/api/v1/registry/models/{name}/versions"): Rule("read", MODEL),
    ("POST", "/api/v1/registry/models/{name}/versions"): Rule("write", MODEL),
    ("GET", "/api/v1/registry/models/{name}/versions/{version}"): Rule("read", MODEL),
    ("GET", "/api/v1/registry/models/{name}/trust-policy"): Rule("read", MODEL),
    ("GET", "/api/v1/registry/models/{name}/aliases/{alias}"): Rule("read", MODEL),
    ("PUT", "/api/v1/registry/models/{name}/aliases/{alias}"): Rule("deploy", MODEL),
}
assert all(rule.action in ACTIONS for rule in ROUTES.values())

EXPERIMENTS = cast(Table, s.Experiment.__table__)
RUNS = cast(Table, s.Run.__table__)
MODELS = cast(Table, s.RegisteredModel.__table__)
VERSIONS = cast(Table, s.ModelVersion.__table__)
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def auth_enabled(mode: str, host: str) -> bool:
    """``on``/``off`` as said; ``auto`` is on unless ``host`` is a loopback address."""
    if mode == "on":
        return True
    if mode == "off":
        return False
    if mode != "auto":
        raise ConfigError(f"server auth {mode!r} is not valid; use auto, on or off")
    return not is_loopback(host)


def is_loopback(host: str) -> bool:
    name = host.strip().strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def api_routes(routes: Sequence[BaseRoute]) -> list[APIRoute]:
    """Every endpoint of an app, with its full path (recent FastAPI keeps each included
    router as one entry of ``app.routes``; those are expanded here)."""
    try:
        from fastapi.routing import (  # type: ignore[attr-defined,unused-ignore]
            _iter_included_route_candidates as expand,
        )
    except ImportError:  # older FastAPI: app.routes is already flat
        return [route for route in routes if isinstance(route, APIRoute)]
    return [route for route in expand(routes) if isinstance(route, APIRoute)]


def check_routes_covered(routes: Sequence[BaseRoute]) -> None:
    """Refuse an app with an endpoint the table does not guard."""
    missing = [
        f"{method} {route.path}"
        for route in api_routes(routes)
        for method in sorted(route.methods or ())
        if (method, route.path) not in ROUTES
    ]
    if missing:
        raise ConfigError(
            f"endpoints without an authorization rule: {', '.join(missing)}; add them to "
            "mloop.server._auth.ROUTES"
        )


def principal_of(request: Request) -> Principal | None:
    """The authenticated caller, or None when auth is off."""
    found = getattr(request.state, "principal", None)
    return found if isinstance(found, Principal) else None


def acting_user(request: Request, claimed: str | None) -> str | None:
    """The user a new run records: with auth on, the key's owner, whatever the client says."""
    principal = principal_of(request)
    return principal.name if principal is not None else claimed


def may_read(request: Request, resource: Resource) -> bool:
    """For listings: True with auth off, else whether the caller may read ``resource``."""
    principal = principal_of(request)
    return principal is None or allowed(principal, "read", resource)


class Guard:
    """The FastAPI dependency every route runs first: authenticate, then authorize."""

    def __init__(self, store: MetadataStore) -> None:
        self._store = store

    async def __call__(self, request: Request) -> None:
        route = request.scope.get("route")
        path = route.path if isinstance(route, APIRoute) else request.url.path
        rule = ROUTES.get((request.method, path))
        if rule is None:  # check_routes_covered makes this unreachable for app routes
            raise NotFound(f"no endpoint {request.method} {request.url.path}")
        if rule.resource == PUBLIC:
            return
        key = _bearer(request)
        from mloop.registry._identity import authenticate

        principal = await run_in_threadpool(authenticate, key, store=self._store)
        request.state.principal = principal
        if rule.resource == LISTING or allowed(principal, rule.action, GLOBAL):
            return
        if rule.resource == RUN_FILES:
            await self._check_run_files(principal, rule.action, request)
            return
        for resource in await self._resources(rule, request):
            authorize(principal, rule.action, resource)

    async def _resources(self, rule: Rule, request: Request) -> list[Resource]:
        params = request.path_params
        kind = rule.resource
        if kind == ANY:
            return [GLOBAL]
        if kind == MODEL:
            return [Resource.model(str(params["name"]))]
        if kind == EXPERIMENT:
            return [await run_in_threadpool(self._experiment, str(params["experiment_id"]))]
        if kind == RUN:
            return [await run_in_threadpool(self._run_experiment, str(params["run_id"]))]
        if kind == EXPERIMENT_NAME:
            name = request.query_params.get("name", "")
            return [await run_in_threadpool(self._experiment_named, name)]
        body = await _json_body(request)
        ids: Any = [body.get("experiment_id")]
        if kind == BODY_EXPERIMENTS:
            ids = body.get("experiment_ids")
            if not isinstance(ids, list):
                raise InvalidInput("experiment_ids must be a list of experiment ids")
        if not all(isinstance(i, str) for i in ids):
            raise InvalidInput("experiment ids in the request body must be strings")
        return [await run_in_threadpool(self._experiment, str(i)) for i in ids]

    async def _check_run_files(self, principal: Principal, action: str, request: Request) -> None:
        """Who may read a model may load it: the files of a registered version's package
        are readable with the model's role, the run's other files are not."""
        run_id = str(request.path_params["run_id"])
        experiment = await run_in_threadpool(self._run_experiment, run_id)
        if allowed(principal, action, experiment):
            return
        path = request.query_params.get("path") or ""
        models = await run_in_threadpool(self._models_packaged_at, run_id, path)
        if not any(allowed(principal, action, Resource.model(m)) for m in models):
            authorize(principal, action, experiment)  # raises, naming the experiment

    # One indexed read each; only scoped principals get here.

    def _models_packaged_at(self, run_id: str, path: str) -> list[str]:
        """Registered models with a version whose package in run ``run_id`` holds ``path``."""
        from mloop.artifacts import safe_relpath
        from mloop.errors import UnsafePath

        try:
            if not path or safe_relpath(path) != path:
                return []
        except UnsafePath:
            return []
        with self._store.read() as conn:
            rows = conn.execute(
                select(MODELS.c.name, VERSIONS.c.source)
                .select_from(VERSIONS.join(MODELS))
                .where(VERSIONS.c.run_id == run_id)
            ).all()
        prefix = f"runs:/{run_id}/"
        found = []
        for name, source in rows:
            package = str(source)[len(prefix) :] if str(source).startswith(prefix) else ""
            if package and (path == package or path.startswith(package + "/")):
                found.append(str(name))
        return found

    def _experiment(self, experiment_id: str) -> Resource:
        with self._store.read() as conn:
            name = conn.execute(
                select(EXPERIMENTS.c.name).where(EXPERIMENTS.c.experiment_id == experiment_id)
            ).scalar()
        if name is None:
            raise NotFound(f"experiment {experiment_id!r} does not exist")
        return Resource.experiment(experiment_id, str(name))

    def _experiment_named(self, name: str) -> Resource:
        with self._store.read() as conn:
            found = conn.execute(
                select(EXPERIMENTS.c.experiment_id).where(EXPERIMENTS.c.name == name)
            ).scalar()
        return Resource("experiment", (name,) if found is None else (str(found), name))

    def _run_experiment(self, run_id: str) -> Resource:
        with self._store.read() as conn:
            row = conn.execute(
                select(EXPERIMENTS.c.experiment_id, EXPERIMENTS.c.name)
                .select_from(RUNS.join(EXPERIMENTS))
                .where(RUNS.c.run_id == run_id)
            ).first()
        if row is None:
            raise NotFound(f"run {run_id!r} does not exist")
        return Resource.experiment(str(row.experiment_id), str(row.name))


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthenticated(
            "this server requires an API key: send `Authorization: Bearer mloop_…` (set "
            "MLOOP_API_KEY for the mloop client); create one with `mloop keys create USER`"
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must read `Bearer mloop_<key id>_<secret>`")
    return token.strip()


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise InvalidInput("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object")
    return body


def route_table_markdown() -> str:
    """The table in docs/server.md (a test compares them, so the docs cannot drift)."""
    lines = ["| Method | Path | Action | Checked on |", "|---|---|---|---|"]
    described = {
        PUBLIC: "nothing (no key needed)",
        ANY: "global",
        EXPERIMENT: "the experiment",
        EXPERIMENT_NAME: "the experiment named",
        BODY_EXPERIMENT: "the body's experiment",
        BODY_EXPERIMENTS: "each experiment in the body",
        RUN: "the run's experiment",
        RUN_FILES: "the run's experiment, or a model whose registered package holds the path",
        MODEL: "the registered model",
        LISTING: "each item listed (others are left out)",
    }
    for (method, path), rule in ROUTES.items():
        action = "—" if rule.resource == PUBLIC else rule.action
        lines.append(f"| {method} | `{path}` | {action} | {described[rule.resource]} |")
    return "\n".join(lines) + "\n"
