"""The tracking server: the :class:`~mloop.tracking._backend.TrackingBackend` over HTTP.

Every backend method has one endpoint under ``/api/v1``; ``RestBackend`` is its client,
so code logging to ``http://…`` behaves as it does embedded. Backend calls are blocking,
so their routes are plain ``def`` functions run in the thread pool; only the streaming
artifact routes are ``async``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Depends, FastAPI
from starlette.responses import Response

from mloop.errors import ConfigError
from mloop.server._errors import OrjsonResponse, install_error_handlers
from mloop.store import MetadataStore
from mloop.tracking._backend import TrackingBackend

API_VERSION = "v1"
logger = logging.getLogger("mloop.server")


def create_app(
    backend: TrackingBackend | None = None, *, auth: bool | None = None, host: str | None = None
) -> FastAPI:
    """The ASGI app over ``backend``, or over the stores the settings name.

    Without a backend the server opens the metadata and artifact stores itself
    (``MLOOP_DB_URI``/``MLOOP_ARTIFACT_URI``, or the folder ``MLOOP_HOME``); it never
    follows ``MLOOP_TRACKING_URI``, which would make it a client of itself.

    ``auth`` turns API key checks on or off; by default ``MLOOP_SERVER_AUTH`` decides, and
    its ``auto`` means on unless ``host`` (default 127.0.0.1) is a loopback address.
    The registry endpoints and auth need a :class:`SqlBackend` (its store holds users and models).
    """
    from mloop.server._auth import Guard, auth_enabled, check_routes_covered
    from mloop.server._routes_artifacts import artifacts_router
    from mloop.server._routes_experiments import experiments_router
    from mloop.server._routes_registry import registry_router
    from mloop.server._routes_runs import runs_router

    if backend is None:
        backend = _backend_from_settings()
    if auth is None:
        from mloop.config import get_settings

        auth = auth_enabled(get_settings().server_auth, host or "127.0.0.1")
    from mloop.tracking._sql_backend import SqlBackend

    store = backend.store if isinstance(backend, SqlBackend) else None
    if auth and not isinstance(store, MetadataStore):
        raise ConfigError(
            f"server auth needs the users and keys of a metadata store, and {backend!r} has "
            "none; serve a database-backed store or turn auth off"
        )
    app = FastAPI(
        title="mloop tracking server",
        version=API_VERSION,
        summary="Experiments, runs, metrics, params, tags, inputs and artifacts over HTTP.",
        default_response_class=OrjsonResponse,
        docs_url="/docs",
        redoc_url=None,
        dependencies=[Depends(Guard(store))] if auth and isinstance(store, MetadataStore) else [],
    )
    app.state.backend = backend
    app.state.auth = auth
    install_error_handlers(app)

    @app.get("/health", tags=["server"])
    def health() -> Response:
        """``{"status": "ok"}`` once the server answers."""
        return OrjsonResponse({"status": "ok"})

    # the run routes take most requests (a run's creation, batches, its end): matched first
    app.include_router(runs_router(backend))
    app.include_router(experiments_router(backend))
    app.include_router(artifacts_router(backend))
    if isinstance(store, MetadataStore):
        app.include_router(registry_router(store))
    check_routes_covered(app.routes)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _backend_from_settings() -> TrackingBackend:
    from mloop.config import get_settings
    from mloop.tracking._resolve import backend_for

    settings = get_settings()
    uri = settings.resolved_db_uri
    if uri.startswith(("http://", "https://")):
        raise ConfigError(
            f"the server's metadata store must be a database, not {uri}; "
            "set MLOOP_DB_URI to sqlite:///… or postgresql+psycopg://…"
        )
    return backend_for(uri, settings)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, minus its 422 answers: validation errors here are 400."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict):
                operation.get("responses", {}).pop("422", None)
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    if app.state.auth:  # lets /docs offer "Authorize" with an API key
        schema.setdefault("components", {})["securitySchemes"] = {
            "ApiKey": {
                "type": "http",
                "scheme": "bearer",
                "description": "An mloop API key: mloop_<key id>_<secret>.",
            }
        }
        schema["security"] = [{"ApiKey": []}]
        schema["paths"]["/health"]["get"]["security"] = []
    app.openapi_schema = schema
    return schema


def serve(
    host: str = "127.0.0.1",
    port: int = 5000,
    workers: int = 1,
    auth: str | None = None,
    access_log: bool = False,
) -> None:
    """Run the tracking server with uvicorn until interrupted.

    Each worker process opens the stores named by the settings; SQLite in WAL mode lets
    several workers share one file. ``auth`` (``auto``/``on``/``off``, default
    ``MLOOP_SERVER_AUTH``) is decided here, from the address bound, and handed to every
    worker through the environment.

    uvicorn's access log (one line per request) is off unless ``access_log``: formatting
    and writing it cost 0.15 ms a request, a tenth of creating a run through the server,
    and every run makes two requests. Errors are logged either way.
    """
    import os

    import uvicorn

    from mloop.config import get_settings
    from mloop.server._auth import auth_enabled, is_loopback

    enabled = auth_enabled(auth or get_settings().server_auth, host)
    os.environ["MLOOP_SERVER_AUTH"] = "on" if enabled else "off"
    if not enabled and not is_loopback(host):
        logger.warning(
            "AUTH IS OFF on %s: anyone who can reach this port can read and change every "
            "experiment, run, artifact and model; start with --auth on (or bind 127.0.0.1)",
            host,
        )
    logger.info(
        "mloop tracking server on http://%s:%d (auth %s)", host, port, "on" if enabled else "off"
    )
    uvicorn.run(
        "mloop.server._app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        ws="none",
        log_level="info",
        access_log=access_log,
    )
