"""One prediction request through the guards, in one fixed order.

authenticate → rate limit → read (bounded) and decode → validate against the signature →
atypical-input check → predict (micro-batched) → mirror to shadows (fire-and-forget) →
obfuscate the outputs → log durably → respond. The request id (the OIP ``id``, else
``X-Request-ID``, else a new one) comes back in the body and in ``X-Request-ID``. The
protocols differ only in how the body is decoded and the answer encoded.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import numpy as np
from starlette.requests import Request
from starlette.responses import Response

from mloop.errors import (
    InvalidInput,
    MloopError,
)
from mloop.serving import _oip
from mloop.serving._obfuscation import PREDICTIONS, PROBABILITIES, obfuscate
from mloop.serving._served import ServedDeployment, ServedModel, combine
from mloop.serving._shadow_process import Mirror
from mloop.serving._state import (
    ATYPICAL_HEADER,
    JSON_TYPE,
    ROUTE_KEY,
    SAFE_ID,
    ServingState,
    error_response,
    json_response,
)
from mloop.serving._tfserving import decode_predict, encode_predictions
from mloop.serving._validation import (
    ModelInput,
    read_body,
    validate,
)

if TYPE_CHECKING:
    from mloop.serving._tracing import RequestSpan

log = logging.getLogger("mloop.serving")


MAX_SHADOW_BACKLOG = 1024
"""Mirrors the shadow process has not answered yet; past it new mirrors are skipped
(counted in ``mloop_requests_total{role="shadow",status="503"}``)."""


class _Call:
    """What one prediction request accumulates on its way through the guards."""

    __slots__ = (
        "decisions", "headers", "logged", "request_id", "requested", "route", "served", "span",
        "started", "started_ms",
    )  # fmt: skip

    def __init__(self, request_id: str, served: ServedDeployment, span: RequestSpan) -> None:
        self.started = time.perf_counter()
        self.started_ms = _now_ms()
        self.request_id = request_id
        self.served = served
        self.span = span
        self.route: list[ServedModel] = []
        self.decisions: dict[str, Any] = {}
        self.headers: dict[str, str] = {}
        self.requested: _oip.InferRequest | None = None
        self.logged = False


Decoder = Callable[
    [bytes, ServedModel, Request, Any],
    tuple[dict[str, np.ndarray[Any, Any]], "str | None", "_oip.InferRequest | None"],
]
Encoder = Callable[[_Call, dict[str, np.ndarray[Any, Any]]], Response]


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id")
    return given if given is not None and SAFE_ID.fullmatch(given) else os.urandom(16).hex()


async def predict(
    state: ServingState, request: Request, decoder: Decoder, encoder: Encoder, protocol: str
) -> Response:
    started = time.perf_counter()
    request_id = _request_id(request)
    name = request.path_params["name"]
    pinned = request.path_params.get("version")
    status, error, call = 500, None, None
    deployment = name
    with state.tracing.span(
        "mloop.infer", request.headers.get("traceparent"), deployment=name, protocol=protocol
    ) as span:
        try:
            served = state.served(name)
            deployment = served.name
            call = _Call(request_id, served, span)
            state.in_flight += 1
            try:
                with state.metrics.in_flight(deployment):
                    response = await _guarded(state, request, call, pinned, decoder, encoder)
            finally:
                state.in_flight -= 1
            status = 200
        except MloopError as exc:
            status, error = exc.http_status, exc.code
            span.error(exc.code, exc.message)
            response = error_response(exc)
        except Exception:
            log.exception("bug while answering request %s", request_id)
            status, error = 500, "INTERNAL"
            response = json_response(
                {"error": f"internal error (request {request_id}); see the server log"}, 500
            )
        request_id = call.request_id if call is not None else request_id
        response.headers["X-Request-ID"] = (
            request_id if SAFE_ID.fullmatch(request_id) else quote(request_id, safe="")[:256]
        )
        latency = time.perf_counter() - started
        member = call.route[0] if call is not None and call.route else None
        span.set(request_id=request_id, status=status)
        if member is not None:
            span.set(model=member.name, version=member.version, role=member.role)
            state.metrics.observe_request(
                deployment, member.name, member.version_label, member.role, latency, status
            )
        elif status >= 400:
            state.metrics.observe_error(deployment, status)
        if member is not None and status >= 400 and call is not None and not call.logged:
            await _log_failure(state, call, member, status, error or "INTERNAL", latency)
        state.request_logger.log(
            request_id=request_id,
            trace_id=span.trace_id,
            deployment=deployment,
            status=status,
            latency_ms=latency * 1000,
            model=None if member is None else member.name,
            version=None if member is None else member.version,
            role=None if member is None else member.role,
            error=error,
            protocol=protocol,
        )
    return response


async def _guarded(
    state: ServingState,
    request: Request,
    call: _Call,
    pinned: str | None,
    decoder: Decoder,
    encoder: Encoder,
) -> Response:
    served = call.served
    principal = await state.authenticate(request, served)
    call.decisions["auth"] = "off" if principal is None else principal.name
    call.decisions["rate_limit"] = await state.limit(request, served, principal)
    state.count_arrival(1)
    try:
        body = await read_body(request, served.guards.max_request_bytes)
        shadows: list[ServedModel] = []
        if pinned is not None:
            members = [served.version(pinned)]
        else:
            members, shadows = served.route(request.headers.get(ROUTE_KEY))
        call.route = members
        raw_signature = (
            served.preprocessing.signature if served.preprocessing else members[0].signature
        )
        arrays, body_id, requested = decoder(body, members[0], request, raw_signature)
        if body_id is not None:
            call.request_id = body_id
        call.requested = requested
        features = served.prepare(arrays)
        inputs = [validate(m.signature, features) for m in members]
    finally:
        state.count_arrival(-1)
    _check_atypical(served, inputs[0], call)
    probabilities = _wants_probabilities(served, requested)
    if len(members) == 1:
        outputs = await members[0].batcher.predict(inputs[0], probabilities)
    else:
        answers = await asyncio.gather(
            *(
                m.batcher.predict(x, probabilities or served.combine == "mean")
                for m, x in zip(members, inputs, strict=True)
            )
        )
        outputs = combine(served.combine, answers, members)
    for shadow in shadows:
        mirror = Mirror(
            served.name, shadow.name, shadow.version, shadow.uri, dict(features), probabilities,
            call.request_id, call.started_ms, dict(call.decisions), call.span.trace_id,
        )  # fmt: skip
        if not state.mirror(mirror, MAX_SHADOW_BACKLOG):
            # Overloaded: skip the mirror rather than let it queue behind, or slow, answers.
            state.metrics.observe_request(
                served.name, shadow.name, shadow.version_label, "shadow", 0.0, 503
            )
    shown = (
        outputs
        if served.guards.output == "full"
        else obfuscate(outputs, served.guards, members[0].classes)
    )
    review = _needs_review(served, outputs)
    call.decisions["output"] = served.guards.output
    if state.prediction_log is not None:
        await state.prediction_log.append_async(
            _record(
                call,
                members[0],
                arrays,
                outputs,
                review=review,
                served=served,
                latency_ms=(time.perf_counter() - call.started) * 1000,
            )
        )
        call.logged = True
    return encoder(call, _selected(shown, requested))


def _wants_probabilities(served: ServedDeployment, requested: _oip.InferRequest | None) -> bool:
    guards = served.guards
    if guards.output == "top_k" or guards.review_threshold is not None:
        return True
    return requested is not None and any(o.name == PROBABILITIES for o in requested.outputs or ())


def _selected(
    shown: dict[str, np.ndarray[Any, Any]], requested: _oip.InferRequest | None
) -> dict[str, np.ndarray[Any, Any]]:
    if requested is None or requested.outputs is None:
        return {k: v for k, v in shown.items() if k != PROBABILITIES}
    return {o.name: shown[o.name] for o in requested.outputs if o.name in shown}


def _check_atypical(served: ServedDeployment, model_input: ModelInput, call: _Call) -> None:
    detector = served.detector
    policy = served.guards.atypical
    if detector is None or policy == "off":
        return
    batch = model_input.tensor if model_input.tensor is not None else model_input.columns
    result = detector.check(batch, served.guards.atypical_threshold)
    count = result.count
    call.decisions["atypical"] = {
        "rows": count,
        "max_score": float(np.max(result.scores, initial=0.0)),
    }
    if not count:
        return
    if policy == "reject":
        row = int(np.flatnonzero(result.atypical)[0])
        raise InvalidInput(
            f"{count} row{'s' if count > 1 else ''} unlike the training data (row {row}: "
            f"{'; '.join(result.reasons[row]) or 'outlier score'}); this deployment refuses "
            "atypical input",
            details={"field": f"row {row}"},
        )
    if policy == "flag":
        call.headers[ATYPICAL_HEADER] = str(count)


def _needs_review(served: ServedDeployment, outputs: Mapping[str, np.ndarray[Any, Any]]) -> bool:
    threshold = served.guards.review_threshold
    probabilities = outputs.get(PROBABILITIES)
    if threshold is None or probabilities is None or not probabilities.size:
        return False
    return bool((probabilities.max(axis=1) < threshold).any())


def _now_ms() -> int:
    return int(time.time() * 1000)


def _record(
    call: _Call,
    model: ServedModel,
    arrays: Mapping[str, np.ndarray[Any, Any]],
    outputs: Mapping[str, np.ndarray[Any, Any]],
    *,
    review: bool,
    served: ServedDeployment,
    role: str | None = None,
    latency_ms: float = 0.0,
) -> Any:
    from mloop.serving._predlog import PredictionRecord, jsonable_arrays

    return PredictionRecord(
        request_id=call.request_id,
        time_ms=call.started_ms,
        deployment=served.name,
        model=model.name,
        version=model.version,
        role=role or model.role,
        inputs=jsonable_arrays(arrays),
        outputs=jsonable_arrays(outputs),
        latency_ms=latency_ms,
        guards=dict(call.decisions),
        trace_id=call.span.trace_id,
        needs_review=review,
    )


async def _log_failure(
    state: ServingState, call: _Call, member: ServedModel, status: int, error: str, latency: float
) -> None:
    """A request that failed after routing is logged with the member it was routed to, so
    error rates are known per model version (monitoring, canary checks)."""
    if state.prediction_log is None:
        return
    from mloop.serving._predlog import PredictionRecord

    record = PredictionRecord(
        request_id=call.request_id, time_ms=call.started_ms, deployment=call.served.name,
        model=member.name, version=member.version, role=member.role, inputs=None,
        outputs=None, latency_ms=latency * 1000, guards=dict(call.decisions),
        trace_id=call.span.trace_id, status=status, error=error,
    )  # fmt: skip
    try:
        await state.prediction_log.append_async(record)
    except Exception as exc:  # the client gets its error answer whatever happens here
        log.warning("could not log failed request %s: %s", call.request_id, exc)


# -- protocols --------------------------------------------------------------------------------


def oip_decoder(
    body: bytes, model: ServedModel, request: Request, _signature: Any
) -> tuple[dict[str, np.ndarray[Any, Any]], str | None, _oip.InferRequest | None]:
    decoded = _oip.decode_request(body, request.headers.get(_oip.HEADER_LENGTH))
    known = {PREDICTIONS, PROBABILITIES, "top_k_classes", "top_k_probabilities"}
    for wanted in decoded.outputs or ():
        if wanted.name not in known:
            raise InvalidInput(
                f"output {wanted.name!r} does not exist; this model gives predictions"
                f"{', probabilities' if model.has_probabilities else ''}",
                details={"field": wanted.name},
            )
    return {t.name: t.data for t in decoded.inputs}, decoded.id, decoded


def oip_encoder(call: _Call, outputs: dict[str, np.ndarray[Any, Any]]) -> Response:
    requested = call.requested
    model = call.route[0]
    tensors = []
    for name, value in outputs.items():
        array = np.asarray(value)
        datatype = _oip.datatype_of(array)
        binary = requested is not None and requested.output_binary(name)
        tensors.append((_oip.Tensor(name, datatype, array), binary))
    body, header = _oip.encode_response(
        call.served.name,
        model.version_label if len(call.route) == 1 else None,
        call.request_id,
        tensors,
    )
    headers = dict(call.headers)
    media = JSON_TYPE
    if header is not None:
        headers["Inference-Header-Content-Length"] = str(header)
        media = "application/octet-stream"
    return Response(body, headers=headers, media_type=media)


def tf_decoder(
    body: bytes, _model: ServedModel, _request: Request, signature: Any
) -> tuple[dict[str, np.ndarray[Any, Any]], str | None, _oip.InferRequest | None]:
    arrays, request_id = decode_predict(body, signature)
    return arrays, request_id, None


def tf_encoder(call: _Call, outputs: dict[str, np.ndarray[Any, Any]]) -> Response:
    return Response(
        encode_predictions(outputs, call.request_id), headers=call.headers, media_type=JSON_TYPE
    )
