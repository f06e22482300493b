"""Running a pipeline: build the DAG, hand it to the orchestrator, read executions back.

``run`` starts a new execution; ``resume`` continues a failed or stopped one, reusing every
step whose result is recorded and whose code, parameters and inputs are unchanged (see
:mod:`mloop.pipelines._orchestrator` for how steps are scheduled, cached and recorded).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from mloop._ids import new_id
from mloop.errors import Conflict, InvalidInput
from mloop.pipelines import _store
from mloop.pipelines._execution import DONE, PipelineExecution
from mloop.pipelines._graph import Pipeline, build, import_ref
from mloop.pipelines._orchestrator import EventHandler, Orchestrator


def run(
    pipeline: Pipeline[Any] | Callable[..., Any] | str,
    params: dict[str, Any] | None = None,
    *,
    executor: str | None = None,
    no_cache: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    on_event: EventHandler | None = None,
) -> PipelineExecution:
    """Run ``pipeline`` (a ``@pipeline`` function or ``"package.module:function"``) with
    ``params`` and return what it came to; a failed or stopped execution is returned, not
    raised (its ``status`` and ``reason`` say what happened)."""
    pipe = resolve_pipeline(pipeline)
    given = dict(params or {})
    graph = build(pipe, given)
    effective = _effective_params(pipe, given)
    return Orchestrator(
        pipe, graph, effective, executor, no_cache, sleep, on_event, new_id(), reuse={}
    ).execute(new=True)


def resume(
    execution_id: str,
    *,
    executor: str | None = None,
    pipeline: Pipeline[Any] | str | None = None,
    force: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    on_event: EventHandler | None = None,
) -> PipelineExecution:
    """Continue a failed or stopped execution: steps whose results are recorded and whose
    code, parameters and inputs did not change are reused, the others run. ``pipeline``
    overrides the stored reference (for a pipeline that is not importable by name)."""
    with _store.opened() as db:
        before = _store.load_execution(db, execution_id)
    if before.status == "succeeded":
        raise Conflict(f"pipeline execution {execution_id} succeeded; there is nothing to resume")
    if before.status == "running" and not force:
        raise Conflict(
            f"pipeline execution {execution_id} is still running; if the process running it "
            "died, resume with force=True (--force)"
        )
    pipe = resolve_pipeline(pipeline or before.pipeline)
    graph = build(pipe, before.params)
    reuse = {s.name: s.to_dict() for s in before.steps if s.status in DONE and s.outputs}
    return Orchestrator(
        pipe,
        graph,
        before.params,
        executor or before.executor,
        False,
        sleep,
        on_event,
        execution_id,
        reuse=reuse,
        previous=before,
    ).execute(new=False)


def get_execution(execution_id: str) -> PipelineExecution:
    with _store.opened() as db:
        return _store.load_execution(db, execution_id)


def list_executions(pipeline: str | None = None, *, limit: int = 100) -> list[PipelineExecution]:
    """Newest first; ``pipeline`` filters by name or ``module:function`` reference."""
    with _store.opened() as db:
        return _store.load_executions(db, pipeline, limit)


def resolve_pipeline(pipeline: Pipeline[Any] | Callable[..., Any] | str) -> Pipeline[Any]:
    if isinstance(pipeline, Pipeline):
        return pipeline
    if isinstance(pipeline, str):
        found: Pipeline[Any] = import_ref(pipeline, Pipeline)
        return found
    if callable(pipeline):
        return Pipeline(pipeline)
    raise InvalidInput(f"{pipeline!r} is not a pipeline; pass a @pipeline function or 'module:fn'")


def _effective_params(pipe: Pipeline[Any], given: dict[str, Any]) -> dict[str, Any]:
    """The given parameters and the defaults of the others, as stored JSON."""
    import json

    out: dict[str, Any] = {}
    for name, param in pipe.signature.parameters.items():
        if name in given:
            value = given[name]
        elif param.default is not param.empty:
            value = param.default
        else:
            continue
        try:
            out[name] = json.loads(json.dumps(value, allow_nan=False))
        except (TypeError, ValueError):
            raise InvalidInput(
                f"parameter {name!r} of pipeline {pipe.name!r} is a {type(value).__name__}, "
                "not a plain JSON value; pass references ('dataset@3', a model URI) instead"
            ) from None
    for name in given.keys() - out.keys():
        out[name] = given[name]
    return out
