"""Artifacts: streaming upload, listing, streaming download — bounded memory both ways.

An upload is read from the socket chunk by chunk into a temporary file (in memory up to
1 MiB, then on disk), and only then handed to the backend, so a 2 GB model never sits in
the server's memory. A download streams the backend's file object in 1 MiB chunks.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from typing import Annotated, BinaryIO, cast
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.responses import Response, StreamingResponse

from mloop.artifacts import safe_relpath
from mloop.server._errors import ERROR_RESPONSES, OrjsonResponse, error_response
from mloop.tracking._backend import TrackingBackend

CHUNK = 1 << 20
ArtifactPath = Annotated[
    str, Query(max_length=1024, description="Path inside the run, e.g. model/a.bin")
]
_BINARY = {"schema": {"type": "string", "format": "binary"}}


class ArtifactInfoModel(BaseModel):
    path: str
    is_dir: bool
    size: int | None
    digest: str | None


class ArtifactsResponse(BaseModel):
    artifacts: list[ArtifactInfoModel]


def artifacts_router(backend: TrackingBackend) -> APIRouter:
    router = APIRouter(prefix="/api/v1/runs", tags=["artifacts"], responses=ERROR_RESPONSES)

    @router.put(
        "/{run_id}/artifact",
        status_code=201,
        response_model=ArtifactInfoModel,
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/octet-stream": _BINARY}}
        },
    )
    async def upload_artifact(run_id: str, path: ArtifactPath, request: Request) -> Response:
        """Store the request body (streamed, any size) as the run's artifact at ``path``."""
        relpath = safe_relpath(path)
        # Refuse before reading a possibly huge body for a run that does not exist.
        await run_in_threadpool(backend.get_run, run_id)
        with tempfile.SpooledTemporaryFile(max_size=CHUNK) as spool:
            pending = bytearray()
            try:
                async for chunk in request.stream():
                    pending += chunk
                    if len(pending) >= CHUNK:
                        await run_in_threadpool(spool.write, bytes(pending))
                        pending.clear()
            except ClientDisconnect:
                return error_response(400, "INVALID_INPUT", "the client disconnected mid-upload")
            spool.write(bytes(pending))
            spool.seek(0)
            info = await run_in_threadpool(
                backend.log_artifact_stream, run_id, relpath, cast(BinaryIO, spool)
            )
        return OrjsonResponse(info.to_dict(), status_code=201)

    @router.get("/{run_id}/artifacts", response_model=ArtifactsResponse)
    def list_artifacts(
        run_id: str, path: Annotated[str | None, Query(max_length=1024)] = None
    ) -> Response:
        """Files and folders directly under ``path`` (the run's root by default)."""
        found = backend.list_artifacts(run_id, path or None)
        return OrjsonResponse({"artifacts": [a.to_dict() for a in found]})

    @router.get(
        "/{run_id}/artifact",
        response_class=StreamingResponse,
        responses={200: {"content": {"application/octet-stream": _BINARY}}},
    )
    async def download_artifact(run_id: str, path: ArtifactPath) -> Response:
        """The artifact's bytes, streamed; the store verifies them against their digest."""
        stream = await run_in_threadpool(backend.open_artifact, run_id, path)
        name = path.rstrip("/").rsplit("/", 1)[-1]
        return StreamingResponse(
            _chunks(stream),
            media_type="application/octet-stream",
            headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"},
        )

    return router


async def _chunks(stream: BinaryIO) -> AsyncIterator[bytes]:
    try:
        while chunk := await run_in_threadpool(stream.read, CHUNK):
            yield chunk
    finally:
        stream.close()
