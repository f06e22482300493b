"""One error shape for every answer that is not a success.

Every error the server sends, whatever raised it, is::

    {"error": {"code": "NOT_FOUND", "message": "run '…' does not exist; …", "details": {}}}

``code`` is stable and machine-readable (the ``code`` of the :class:`~mloop.errors.MloopError`
class, so :class:`~mloop.tracking._rest_backend.RestBackend` can raise the same class on the
client); ``message`` is for people; ``details`` carries structured extras such as the
column of a filter syntax error or the fields of an invalid request. Unexpected failures
become a 500 with a generic message: the traceback goes to the server log, never to the
client.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mloop.errors import MloopError, Unauthenticated

logger = logging.getLogger("mloop.server")

INTERNAL_ERROR = "INTERNAL_ERROR"
VALIDATION_CODE = "INVALID_INPUT"


class OrjsonResponse(JSONResponse):
    """A JSON response rendered by orjson (fast, and NaN-free: NaN metrics travel as text)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, default=str, option=orjson.OPT_NON_STR_KEYS)


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. NOT_FOUND, CONFLICT.")
    message: str = Field(description="What went wrong and what to do about it.")
    details: dict[str, Any] = Field(description="Structured extras (filter column, fields…).")


class ErrorResponse(BaseModel):
    """The body of every error answer."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "The request is malformed or invalid."},
    401: {
        "model": ErrorResponse,
        "description": "Auth is on and the API key is missing or invalid.",
    },
    403: {"model": ErrorResponse, "description": "The API key's roles do not allow this."},
    404: {"model": ErrorResponse, "description": "The experiment, run or artifact is unknown."},
    409: {"model": ErrorResponse, "description": "The write contradicts stored data."},
    500: {"model": ErrorResponse, "description": "Unexpected server error (see server log)."},
    503: {"model": ErrorResponse, "description": "The metadata store is unavailable."},
}


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> OrjsonResponse:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return OrjsonResponse(body, status_code=status, headers=headers)


async def _mloop_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MloopError)
    if exc.http_status >= 500:
        logger.error("%s on %s %s: %s", exc.code, request.method, request.url.path, exc.message)
    # RFC 9110: a 401 names the scheme the client should use.
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthenticated) else None
    return error_response(exc.http_status, exc.code, exc.message, exc.details, headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "loc": [str(part) for part in e.get("loc", ())],
            "msg": e.get("msg", ""),
            "type": e.get("type", ""),
        }
        for e in exc.errors()
    ]
    summary = "; ".join(f"{'.'.join(e['loc']) or 'request'}: {e['msg']}" for e in errors[:5])
    return error_response(
        400,
        VALIDATION_CODE,
        f"the request is invalid: {summary}; the API is described at /openapi.json",
        {"errors": errors},
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    headers = dict(exc.headers) if exc.headers else None
    if status == 404:
        message = (
            f"no endpoint {request.method} {request.url.path}; "
            "the API is described at /openapi.json"
        )
        return error_response(404, "NOT_FOUND", message, {}, headers)
    if status == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        message = f"{request.method} is not allowed on {request.url.path}; use {allowed}"
        return error_response(405, "METHOD_NOT_ALLOWED", message, {"allowed": allowed}, headers)
    try:
        code = HTTPStatus(status).name
    except ValueError:
        code = f"HTTP_{status}"
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(status).phrase
    return error_response(status, code, message, {}, headers)


async def _unicode_error(request: Request, exc: Exception) -> Response:
    # Lone surrogates in JSON strings decode to Python but cannot be stored as UTF-8.
    return error_response(
        400, VALIDATION_CODE, "text in the request is not valid Unicode (lone surrogate)", {}
    )


class CatchAllMiddleware:
    """Turn any exception no handler claimed into the generic 500 error shape.

    The traceback is logged here, once. When the response has already started (a
    download failing half-way), the exception propagates so the server aborts the
    connection and the client sees a truncated transfer rather than a short "success".
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except Exception:
            logger.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            response = error_response(
                500,
                INTERNAL_ERROR,
                "the server hit an unexpected error; the server log has the details",
            )
            await response(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Make every failure answer in the one error shape."""
    app.add_exception_handler(MloopError, _mloop_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(UnicodeEncodeError, _unicode_error)
    app.add_middleware(CatchAllMiddleware)
