"""The inference server: an ASGI app (Starlette, orjson) over one deployment.

Protocols: the Open Inference Protocol (KServe V2) — health, server and model metadata
with the real signature, ``/infer`` in JSON and with the binary tensor data extension —
and TF-Serving's ``POST /v1/models/{name}:predict``. Every error is ``{"error": "..."}``
with a 4xx status saying whose mistake it was; a 500 means a bug, and is logged.

Each prediction goes through the guards in one fixed order (:mod:`._pipeline`); the
served deployment and the guards' machinery live in :class:`._state.ServingState`, which
follows a stored deployment's revisions live.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mloop.errors import (
    ConfigError,
    InvalidInput,
    MloopError,
    NotFound,
)
from mloop.serving._batching import Outputs
from mloop.serving._obfuscation import PREDICTIONS, PROBABILITIES
from mloop.serving._pipeline import oip_decoder, oip_encoder, predict, tf_decoder, tf_encoder
from mloop.serving._served import DeploymentSource, ServedModel
from mloop.serving._state import (
    EXTENSIONS,
    SERVER_NAME,
    ServingState,
    error_response,
    is_loopback,
    json_response,
)
from mloop.serving._validation import (
    ModelInput,
    input_metadata,
    output_metadata,
    read_body,
)

if TYPE_CHECKING:
    from mloop.config import Settings
    from mloop.security._ratelimit import RateLimiter
    from mloop.serving._metrics import ServingMetrics
    from mloop.serving._predlog import PredictionLog
    from mloop.store import MetadataStore

log = logging.getLogger("mloop.serving")


# -- routes -----------------------------------------------------------------------------------


def _routes(state: ServingState) -> list[Route]:
    async def live(_request: Request) -> Response:
        return json_response({"live": True})

    async def ready(_request: Request) -> Response:
        if state.current is None:
            return json_response({"error": "the deployment is still loading"}, 400)
        return json_response({"ready": True})

    async def server_metadata(_request: Request) -> Response:
        from mloop import __version__

        return json_response(
            {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS}
        )

    async def model_metadata(request: Request) -> Response:
        served = state.served(request.path_params["name"])
        await state.authenticate(request, served)
        version = request.path_params.get("version")
        model = served.version(version) if version is not None else served.primary
        return json_response(
            {
                "name": served.name,
                "versions": served.versions,
                "platform": f"mloop_{model.loaded.flavor}",
                "inputs": input_metadata(
                    served.preprocessing.signature if served.preprocessing else model.signature
                ),
                "outputs": output_metadata(model.signature, model.classes),
            }
        )

    async def model_ready(request: Request) -> Response:
        served = state.served(request.path_params["name"])
        version = request.path_params.get("version")
        if version is not None:
            served.version(version)
        return json_response({"name": served.name, "ready": True})

    async def infer(request: Request) -> Response:
        return await predict(state, request, oip_decoder, oip_encoder, "oip")

    async def tf_predict(request: Request) -> Response:
        target = request.path_params["target"]
        name, _, verb = target.rpartition(":")
        if verb != "predict" or not name:
            raise NotFound(f"no endpoint POST /v1/models/{target}; use /v1/models/NAME:predict")
        request.path_params["name"] = name
        version = request.path_params.get("version_verb")
        if version is not None:
            number, _, verb = version.rpartition(":")
            if verb != "predict":
                raise NotFound("use /v1/models/NAME/versions/N:predict")
            request.path_params["version"] = number
        return await predict(state, request, tf_decoder, tf_encoder, "tfserving")

    async def tf_predict_version(request: Request) -> Response:
        request.path_params["target"] = f"{request.path_params['name']}:predict"
        request.path_params["version_verb"] = request.path_params["version_verb"]
        return await tf_predict(request)

    async def metrics(request: Request) -> Response:
        if state.current is not None and state.auth_on(state.current):
            await state.authenticate(request, state.current)
        body, content_type = state.metrics.render(request.headers.get("accept"))
        return Response(body, media_type=content_type)

    async def feedback(request: Request) -> Response:
        if state.feedback_log is None:
            raise NotFound("this server records no feedback (started without a prediction log)")
        served = state.served(state.current.name if state.current else "")
        principal = await state.authenticate(request, served)
        body = await read_body(request, served.guards.max_request_bytes)
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise InvalidInput(f"the request body is not valid JSON: {exc}") from None
        items = document.get("items") if isinstance(document, dict) else document
        if not isinstance(items, list):
            raise InvalidInput('send a list of feedback items, or {"items": [...]}')
        count = await state.feedback_log.append_async(
            served.name, items, actor=None if principal is None else principal.name
        )
        return json_response({"recorded": count})

    def guarded(
        handler: Callable[[Request], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except MloopError as exc:
                return error_response(exc)

        return run

    model = "/v2/models/{name}"
    versioned = "/v2/models/{name}/versions/{version}"
    return [
        Route(f"{model}/infer", infer, methods=["POST"]),
        Route(f"{versioned}/infer", infer, methods=["POST"]),
        Route("/v1/models/{target}", guarded(tf_predict), methods=["POST"]),
        Route(
            "/v1/models/{name}/versions/{version_verb}",
            guarded(tf_predict_version),
            methods=["POST"],
        ),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/", server_metadata, methods=["GET"]),
        Route(model, guarded(model_metadata), methods=["GET"]),
        Route(versioned, guarded(model_metadata), methods=["GET"]),
        Route(f"{model}/ready", guarded(model_ready), methods=["GET"]),
        Route(f"{versioned}/ready", guarded(model_ready), methods=["GET"]),
        Route("/v1/feedback", guarded(feedback), methods=["POST"]),
        Route("/metrics", guarded(metrics), methods=["GET"]),
    ]


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = "no such endpoint; see /v2 (Open Inference Protocol) and /v1/models/NAME:predict"
    elif exc.status_code == 405:
        message = f"method not allowed here ({exc.detail})"
    else:
        message = str(exc.detail)
    return json_response({"error": message}, exc.status_code, exc.headers)


async def _bug(request: Request, exc: Exception) -> Response:
    log.error("bug while answering %s %s", request.method, request.url.path, exc_info=exc)
    return json_response({"error": "internal error; see the server log"}, 500)


# -- building the app -------------------------------------------------------------------------


def create_app(
    target: str,
    *,
    settings: Settings | None = None,
    host: str = "127.0.0.1",
    store: MetadataStore | None = None,
    log_predictions: bool = True,
    log_fsync: str = "interval",
    prediction_log: PredictionLog | None = None,
    metrics: ServingMetrics | None = None,
    rate_limiter: RateLimiter | None = None,
    request_log: bool = True,
    poll_interval: float | None = None,
) -> Starlette:
    """The inference app for ``target``: a deployment name, a registered model URI
    (``models:/iris/1``, ``models:/iris@champion``), ``runs:/RUN/NAME`` or a package folder.

    The models are loaded (and their digests verified) here, before the app is returned.
    ``host`` is where the server listens: with ``server_auth = "auto"`` (the default) auth
    is on unless it is a loopback address. ``log_predictions=False`` turns the prediction
    log off (benchmarks, tests of other parts). Every answer is in the log's write-ahead
    file before it is sent, so a killed server loses none; ``log_fsync`` says what a power
    cut may lose: ``"interval"`` (default) the last second, ``"always"`` nothing (each
    answer waits for its fsync; concurrent answers share one), ``"off"`` whatever the
    kernel had not flushed (see docs/predictions.md).
    """
    from mloop.config import get_settings
    from mloop.security._ratelimit import rate_limiter_for
    from mloop.serving._metrics import ServingMetrics
    from mloop.serving._tracing import RequestLogger, tracing_from_env

    settings = settings or get_settings()
    metrics = metrics or ServingMetrics()
    holder: list[ServingState] = []

    def on_batch(model: ServedModel, size: int) -> None:
        current = holder[0].current
        metrics.observe_batch(
            size, current.name if current else "", model.name, model.version_label, model.role
        )

    def after_batch(model: ServedModel, batch: ModelInput, outputs: Outputs) -> None:
        """Input and output metrics once per model call, not per request: under load a
        batch of many requests costs one pass."""
        current = holder[0].current
        if current is None or model.role == "shadow":
            return  # a shadow's answers are logged, not served
        if current.combine == "none" or model is current.members[0]:
            columns = batch.tensor if batch.tensor is not None else batch.columns or {}
            metrics.observe_inputs(current.name, columns)
        review = 0
        probabilities = outputs.get(PROBABILITIES)
        threshold = current.guards.review_threshold
        if threshold is not None and probabilities is not None and probabilities.size:
            review = int((probabilities.max(axis=1) < threshold).sum())
        labels = outputs.get(PREDICTIONS) if model.classes is not None else None
        metrics.observe_outputs(
            current.name, model.name, model.version_label, labels, needs_review=review,
            rows=batch.rows,
        )  # fmt: skip

    source = DeploymentSource(
        target,
        store=store,
        on_batch=on_batch,
        after_batch=after_batch,
        arriving=lambda: holder[0].arriving if holder else 0,
        alone=lambda: not holder or holder[0].alone(),
    )
    served = source.load()
    if log_predictions and prediction_log is None:
        from mloop.serving._predlog import PredictionLog

        prediction_log = PredictionLog(settings=settings, fsync=log_fsync, compact_in="process")
    feedback_log = None
    if log_predictions:
        from mloop.serving._feedback import FeedbackLog

        feedback_log = FeedbackLog(
            prediction_log.root_uri if prediction_log else None, settings=settings
        )
    state = ServingState(
        source,
        settings=settings,
        host=host,
        store=store,
        metrics=metrics,
        prediction_log=prediction_log if log_predictions else None,
        feedback_log=feedback_log,
        rate_limiter=rate_limiter or rate_limiter_for(settings),
        tracing=tracing_from_env(),
        request_logger=RequestLogger(enabled=request_log),
        poll_interval=settings.deployment_poll_interval if poll_interval is None else poll_interval,
        log_fsync=log_fsync,
    )
    holder.append(state)
    state.current = served
    if not state.auth_on(served) and not is_loopback(host):
        log.warning("auth is OFF on %s, a non-loopback address: anyone can call the model", host)
    app = Starlette(
        routes=_routes(state),
        exception_handlers={HTTPException: _http_error, Exception: _bug},
        lifespan=state.lifespan,
    )
    app.state.serving = state
    return app


def app_from_environment() -> Starlette:
    """The app factory ``uvicorn --workers N`` imports in each worker process."""
    target = os.environ.get("MLOOP_SERVE_TARGET")
    if not target:
        raise ConfigError("MLOOP_SERVE_TARGET is not set; start the server with `mloop serve`")
    return create_app(
        target,
        host=os.environ.get("MLOOP_SERVE_HOST", "127.0.0.1"),
        log_predictions=os.environ.get("MLOOP_SERVE_LOG", "1") == "1",
        log_fsync=os.environ.get("MLOOP_SERVE_FSYNC", "interval"),
    )


def serve(
    target: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    log_level: str = "warning",
    log_predictions: bool = True,
    log_fsync: str = "interval",
    loading: Callable[[str], contextlib.AbstractContextManager[Any]] | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve ``target`` with uvicorn until interrupted (Ctrl-C or SIGTERM drain the
    requests in flight and flush the logs). ``loading(description)`` wraps the model
    loading (the CLI shows a spinner); ``on_ready(url)`` is called once it is done."""
    import uvicorn

    from mloop.serving._metrics import shared_metrics

    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "access_log": False,
        "timeout_graceful_shutdown": 10,
        # asyncio's own loop, not uvloop: micro-batching decides whether a request is alone
        # by looking at the loop's ready queue, which uvloop does not show, so under uvloop
        # every small request looked alone and nothing was batched (1 row, 16 connections:
        # 2,100 req/s with uvloop, 3,300 with asyncio; 1,000 rows: 1,010 and 1,070).
        "loop": "asyncio",
    }
    if workers > 1:
        os.environ["MLOOP_SERVE_TARGET"] = target
        os.environ["MLOOP_SERVE_HOST"] = host
        os.environ["MLOOP_SERVE_LOG"] = "1" if log_predictions else "0"
        os.environ["MLOOP_SERVE_FSYNC"] = log_fsync
        with shared_metrics():  # /metrics adds up every worker, whichever one is scraped
            uvicorn.run(
                "mloop.serving._app:app_from_environment", factory=True, workers=workers, **options
            )
        return
    with (loading or _no_progress)(f"Loading {target}"):
        app = create_app(target, host=host, log_predictions=log_predictions, log_fsync=log_fsync)
    if on_ready is not None:
        on_ready(f"http://{host}:{port}")
    uvicorn.run(app, **options)


@contextlib.contextmanager
def _no_progress(_description: str) -> Iterator[None]:
    yield


__all__ = ["app_from_environment", "create_app", "serve"]
