"""Runs: create, get, update, delete/restore, log a batch, metric history, search, inputs.

Creating a run, logging a batch and finishing a run are the endpoints every run calls, so
they are ``async`` and, on a SQLite store whose write lock is free, write right on the
event loop: handing a one-millisecond write to a worker thread and back cost about as much
as the write. When another writer holds the lock, or the batch is large, the write goes
to a worker thread as every other endpoint's does, so the event loop never waits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Request
from pydantic import Base64Bytes, BaseModel, Field, StringConstraints
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from mloop._ids import now_ms
from mloop.errors import Conflict, InvalidInput
from mloop.server._auth import acting_user, principal_of
from mloop.server._errors import ERROR_RESPONSES, OrjsonResponse
from mloop.server._routes_experiments import TagKey, ViewType
from mloop.store import MetadataStore
from mloop.store._engine import WriteWouldWait, writes_without_waiting
from mloop.tracking._backend import TrackingBackend
from mloop.tracking._entities import Metric, Param, RunInput, RunStatus, RunTag
from mloop.tracking._run_files import RESEND_DETAIL, ReceivedFiles
from mloop.tracking._validation import check_key

Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
Key = Annotated[str, StringConstraints(min_length=1, max_length=250)]
# JSON has no NaN or infinity: such metric values travel as the strings Python prints.
NonFinite = Literal["nan", "inf", "-inf"]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


SMALL_FILE_LIMIT = 1 << 20
# Batches up to this many metrics, params and tags are written on the event loop when the
# store allows it (a few milliseconds at most); larger ones always in a worker thread.
INLINE_BATCH_LIMIT = 1000
T = TypeVar("T")


class RunInfoModel(BaseModel):
    run_id: str
    experiment_id: str
    run_name: str | None
    user_id: str | None
    status: RunStatus
    start_time: int
    end_time: int | None
    parent_run_id: str | None
    lifecycle_stage: str


class RunDataModel(BaseModel):
    metrics: dict[str, float | NonFinite] = Field(description="Latest value of each metric.")
    params: dict[str, str]
    tags: dict[str, str]


class RunModel(BaseModel):
    info: RunInfoModel
    data: RunDataModel


class CreatedRunModel(RunModel):
    stored_files: dict[str, Sha256] = Field(
        default_factory=dict,
        description="The SHA-256 of each file sent with the run, by path: a later run by the "
        "same caller may send {path: sha256} in artifact_digests instead of the bytes.",
    )


class CreateRunRequest(BaseModel):
    experiment_id: str
    run_name: str | None = Field(default=None, max_length=250)
    user_id: str | None = Field(default=None, max_length=250)
    start_time: Int64 | None = Field(default=None, description="Milliseconds; default now.")
    tags: dict[TagKey, str] = Field(default_factory=dict)
    parent_run_id: str | None = None
    artifacts: dict[str, Base64Bytes] = Field(
        default_factory=dict,
        description="Small files stored with the run as it is created (base64, up to 1 MiB "
        "each): what automatic capture records. Larger files go through PUT …/artifact.",
    )
    artifact_digests: dict[str, Sha256] = Field(
        default_factory=dict,
        description="Files this caller already sent with an earlier run to this server, by "
        "path: their SHA-256 from that run's stored_files. A digest the server does not hold "
        "for the caller is 409 CONFLICT with details.resend listing the paths to send whole.",
    )


class UpdateRunRequest(BaseModel):
    status: RunStatus | None = None
    end_time: Int64 | None = None
    run_name: str | None = Field(default=None, max_length=250)


class MetricModel(BaseModel):
    key: Key
    value: float | NonFinite
    timestamp: Int64
    step: Int64 = 0


class KeyValueModel(BaseModel):
    key: Key
    value: str


class LogBatchRequest(BaseModel):
    metrics: list[MetricModel] = Field(default_factory=list)
    params: list[KeyValueModel] = Field(default_factory=list)
    tags: list[KeyValueModel] = Field(default_factory=list)


class FinishRunRequest(BaseModel):
    status: RunStatus
    end_time: Int64 | None = Field(default=None, description="Milliseconds; default now.")
    metrics: list[MetricModel] = Field(default_factory=list)
    params: list[KeyValueModel] = Field(default_factory=list)
    tags: list[KeyValueModel] = Field(default_factory=list)


class MetricHistoryResponse(BaseModel):
    metrics: list[MetricModel]


class SearchRunsRequest(BaseModel):
    experiment_ids: list[str]
    filter: str = Field(default="", description="e.g. metrics.acc > 0.9 and params.lr = '0.1'")
    view_type: ViewType = "ACTIVE_ONLY"
    max_results: int = Field(default=1000, ge=1)
    order_by: list[str] = Field(default_factory=list)
    page_token: str | None = None


class SearchRunsResponse(BaseModel):
    runs: list[RunModel]
    next_page_token: str | None


class RunInputModel(BaseModel):
    ref: str = Field(max_length=512)
    context: str = Field(default="", max_length=64)
    kind: str = Field(default="dataset", max_length=32)
    digest: str | None = Field(default=None, max_length=128)
    attributes: dict[str, Any] | None = None


class LogInputsRequest(BaseModel):
    inputs: list[RunInputModel]


class InputsResponse(BaseModel):
    inputs: list[RunInputModel]


def _input_dict(i: RunInput) -> dict[str, Any]:
    return {
        "ref": i.ref,
        "context": i.context,
        "kind": i.kind,
        "digest": i.digest,
        "attributes": i.attributes,
    }


def _batch(
    body: LogBatchRequest | FinishRunRequest,
) -> tuple[list[Metric], list[Param], list[RunTag]]:
    metrics = [
        Metric(check_key("metric", m.key), float(m.value), m.timestamp, m.step)
        for m in body.metrics
    ]
    params = [Param(p.key, p.value) for p in body.params]
    tags = [RunTag(t.key, t.value) for t in body.tags]
    return metrics, params, tags


def _small_files(files: dict[str, bytes]) -> dict[str, bytes]:
    for path, content in files.items():
        if len(content) > SMALL_FILE_LIMIT:
            raise InvalidInput(
                f"artifact {path!r} is {len(content)} bytes; files sent with a new run may be "
                f"at most {SMALL_FILE_LIMIT} bytes — upload larger ones with PUT …/artifact"
            )
    return files


def _run_files(
    body: CreateRunRequest, caller: str | None, received: ReceivedFiles
) -> tuple[dict[str, bytes], dict[str, str]]:
    """The files of a new run (sent whole or by digest) and the digest of each, by path."""
    files = _small_files(body.artifacts)
    both = sorted(set(files) & set(body.artifact_digests))
    if both:
        raise InvalidInput(
            f"artifact {both[0]!r} is given both whole and by digest; send it one way"
        )
    stored = {path: received.remember(caller, content) for path, content in files.items()}
    if body.artifact_digests:
        found, missing = received.resolve(caller, body.artifact_digests)
        if missing:
            raise Conflict(
                f"this server does not hold the files {', '.join(map(repr, missing))} for you "
                "(it restarted, or they were sent by someone else); send them whole in "
                "artifacts",
                details={RESEND_DETAIL: missing},
            )
        # The very bytes objects received before: the backend stored those already.
        files = {**files, **found}
        stored.update(body.artifact_digests)
    return files, stored


def _batch_size(body: LogBatchRequest | FinishRunRequest) -> int:
    return len(body.metrics) + len(body.params) + len(body.tags)


def runs_router(backend: TrackingBackend) -> APIRouter:
    router = APIRouter(prefix="/api/v1/runs", tags=["runs"], responses=ERROR_RESPONSES)
    received = ReceivedFiles()

    async def write(work: Callable[[], T], *, small: bool = True) -> T:
        """Run a backend write on the event loop if it can start at once, else in a thread."""
        store = getattr(backend, "store", None)
        if small and isinstance(store, MetadataStore) and store.writes_in_process:
            try:
                with writes_without_waiting():
                    return work()
            except WriteWouldWait:
                pass
        return await run_in_threadpool(work)

    @router.post("", status_code=201, response_model=CreatedRunModel)
    async def create_run(body: CreateRunRequest, request: Request) -> Response:
        """Start a run (status RUNNING) in an active experiment; with auth on, its user is
        the API key's owner, whatever ``user_id`` says."""
        principal = principal_of(request)
        files, stored = _run_files(
            body, principal.name if principal is not None else None, received
        )
        user_id = acting_user(request, body.user_id)
        start_time = body.start_time if body.start_time is not None else now_ms()
        run = await write(
            lambda: backend.create_run(
                body.experiment_id,
                run_name=body.run_name,
                user_id=user_id,
                start_time=start_time,
                tags=body.tags,
                parent_run_id=body.parent_run_id,
                artifacts=files,
            )
        )
        return OrjsonResponse({**run.to_dict(), "stored_files": stored}, status_code=201)

    # The endpoints every run calls come first: a request is matched against the routes
    # in order (twice: once to pick the router, once inside it).
    @router.post("/{run_id}/log-batch", status_code=204, response_class=Response)
    async def log_batch(run_id: str, body: LogBatchRequest) -> Response:
        """Write metrics, params and tags in one transaction: all land or none does.

        A param given a value different from the stored one is 409 CONFLICT.
        """
        metrics, params, tags = _batch(body)
        await write(
            lambda: backend.log_batch(run_id, metrics, params, tags),
            small=_batch_size(body) <= INLINE_BATCH_LIMIT,
        )
        return Response(status_code=204)

    @router.post("/{run_id}/finish", status_code=204, response_class=Response)
    async def finish_run(run_id: str, body: FinishRunRequest) -> Response:
        """Write the run's last batch and end it, in one transaction."""
        end_time = body.end_time if body.end_time is not None else now_ms()
        metrics, params, tags = _batch(body)
        await write(
            lambda: backend.finish_run(run_id, body.status, end_time, metrics, params, tags),
            small=_batch_size(body) <= INLINE_BATCH_LIMIT,
        )
        return Response(status_code=204)

    # Fixed paths before "/{run_id}" so "search" is never taken for a run id.
    @router.post("/search", response_model=SearchRunsResponse)
    def search_runs(body: SearchRunsRequest) -> Response:
        """Runs of the experiments matching ``filter``, a page at a time."""
        runs, token = backend.search_runs(
            body.experiment_ids,
            body.filter,
            body.view_type,
            body.max_results,
            body.order_by,
            body.page_token,
        )
        return OrjsonResponse({"runs": [r.to_dict() for r in runs], "next_page_token": token})

    @router.get("/{run_id}", response_model=RunModel)
    def get_run(run_id: str) -> Response:
        return OrjsonResponse(backend.get_run(run_id).to_dict())

    @router.patch("/{run_id}", response_model=RunInfoModel)
    def update_run(run_id: str, body: UpdateRunRequest) -> Response:
        """Change status, end time or name; fields left out stay as they are."""
        info = backend.update_run(
            run_id, status=body.status, end_time=body.end_time, run_name=body.run_name
        )
        return OrjsonResponse(info.to_dict())

    @router.delete("/{run_id}", status_code=204, response_class=Response)
    def delete_run(run_id: str) -> Response:
        """Mark a run deleted (restore it with POST /restore)."""
        backend.delete_run(run_id)
        return Response(status_code=204)

    @router.post("/{run_id}/restore", status_code=204, response_class=Response)
    def restore_run(run_id: str) -> Response:
        backend.restore_run(run_id)
        return Response(status_code=204)

    @router.get("/{run_id}/metrics/history", response_model=MetricHistoryResponse)
    def get_metric_history(run_id: str, key: str) -> Response:
        """Every point of one metric, by step then time."""
        history = backend.get_metric_history(run_id, key)
        return OrjsonResponse({"metrics": [m.to_dict() for m in history]})

    @router.post("/{run_id}/inputs", status_code=204, response_class=Response)
    def log_inputs(run_id: str, body: LogInputsRequest) -> Response:
        """Record what the run read (dataset versions, …); recording twice is harmless."""
        backend.log_inputs(
            run_id,
            [RunInput(i.ref, i.context, i.kind, i.digest, i.attributes) for i in body.inputs],
        )
        return Response(status_code=204)

    @router.get("/{run_id}/inputs", response_model=InputsResponse)
    def get_inputs(run_id: str) -> Response:
        return OrjsonResponse({"inputs": [_input_dict(i) for i in backend.get_inputs(run_id)]})

    return router
