"""One execution of one step, wherever it runs: this process, a pool worker or a Ray task.

The worker gets references to its inputs, loads them, runs the function inside its own
tracked run (a child of the pipeline's run), stores each output in the artifact store
and hands back references. It never writes to the pipeline tables: the orchestrator
records outputs only once every one of them is stored, so a step that dies half-way
leaves nothing that points at a partial result.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
import typing
from dataclasses import dataclass, field
from typing import Any

from mloop.errors import InvalidInput
from mloop.pipelines._digest import loaded_fingerprint
from mloop.pipelines._graph import Step, StopPipeline, import_ref
from mloop.pipelines._values import check_type, load_value, select, store_value, wants_dataset

_ERROR_CHARS = 4000


@dataclass
class StepTask:
    """Everything a worker needs; picklable (the step travels as its ``module:qualname``
    unless it runs in this process)."""

    execution_id: str
    node: str
    step_ref: str
    params: dict[str, Any]
    inputs: dict[str, dict[str, Any]]
    parent_run_id: str | None
    tags: dict[str, str]
    context: dict[str, Any] | None = None
    fingerprint: str | None = None
    step: Step[Any, Any] | None = field(default=None, repr=False)
    artifacts: Any = field(default=None, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["step"] = None  # imported by reference on the other side
        state["artifacts"] = None  # opened there from the settings in the context
        return state


@dataclass
class StepResult:
    """``succeeded`` with output references (and the values that only travel in memory),
    ``stopped`` with the reason, or ``failed`` with the error (``retryable`` false for
    mistakes a retry cannot fix, such as a value of the wrong type)."""

    node: str
    status: str
    run_id: str | None
    outputs: list[dict[str, Any]] = field(default_factory=list)
    memory: list[Any] = field(default_factory=list)
    error: str | None = None
    retryable: bool = True


def execute_step(task: StepTask) -> StepResult:
    """Run ``task`` and report; every exception of the step becomes a result."""
    import mloop

    if task.context is not None:
        _apply_context(task.context)
    try:
        step = task.step or _current_step(task)
        artifacts = task.artifacts or _worker_artifacts()
        run = mloop.start_run(
            run_name=task.node, parent_run_id=task.parent_run_id, tags=task.tags, nested=True
        )
    except Exception as exc:  # cannot even start: the step's module or the stores
        return StepResult(task.node, "failed", None, error=_describe(exc), retryable=False)
    run_id = run.info.run_id
    try:
        result = _call(task, step, artifacts)
    except StopPipeline as exc:
        mloop.set_tag("mloop.pipeline.stopped", str(exc)[:5000])
        mloop.end_run("FINISHED")
        return StepResult(task.node, "stopped", run_id, error=str(exc))
    except InvalidInput as exc:
        mloop.end_run("FAILED")
        return StepResult(task.node, "failed", run_id, error=_describe(exc), retryable=False)
    except Exception as exc:
        mloop.end_run("FAILED")
        return StepResult(task.node, "failed", run_id, error=_describe(exc))
    mloop.end_run("FINISHED")
    result.run_id = run_id
    return result


def _current_step(task: StepTask) -> Step[Any, Any]:
    """The step, imported here; reloaded when this long-lived worker holds an older copy of
    its module than the orchestrator ran (the fingerprints of the loaded code differ)."""
    step: Step[Any, Any] = import_ref(task.step_ref, Step)
    if task.fingerprint is None or loaded_fingerprint(step.fn) == task.fingerprint:
        return step
    importlib.reload(sys.modules[step.fn.__module__])
    step = import_ref(task.step_ref, Step)
    if loaded_fingerprint(step.fn) != task.fingerprint:
        raise InvalidInput(
            f"the code of step {task.node!r} in module {step.fn.__module__!r} differs between "
            "this worker and the process that started the pipeline, even after reloading it: "
            "the module was probably edited after that process imported it; run the pipeline "
            "again from a fresh process"
        )
    return step


def _call(task: StepTask, step: Step[Any, Any], artifacts: Any) -> StepResult:
    import mloop

    kwargs = dict(task.params)
    for key, spec in task.inputs.items():
        hint = step.hints.get(key, Any)
        value = load_value(spec["ref"], artifacts, hint, spec.get("value"))
        kwargs[key] = select(value, tuple(spec.get("keys", ())), f"the input {key!r}")
        if spec["ref"]["kind"] == "dataset":
            mloop.log_input(spec["ref"]["ref"], context=f"pipeline step {task.node}")
    for key, value in task.params.items():
        if isinstance(value, str) and wants_dataset(step.hints.get(key)):
            from mloop.data import get_dataset_version

            kwargs[key] = get_dataset_version(value)
            mloop.log_input(kwargs[key], context=f"pipeline step {task.node}")
    for key, value in kwargs.items():
        check_type(value, step.hints.get(key, Any), f"parameter {key!r} of step {task.node!r}")
    if task.params:
        mloop.log_params({k: _param_text(v) for k, v in task.params.items()})
    returned = step.fn(**kwargs)
    hint = step.hints.get("return", Any)
    check_type(returned, hint, f"the return value of step {task.node!r}")
    values = list(returned) if step.arity is not None else [returned]
    outputs: list[dict[str, Any]] = []
    memory: list[Any] = []
    for i, value in enumerate(values):
        name = "output" if step.arity is None else f"output_{i}"
        ref, kept = store_value(value, artifacts, model_name=name)
        outputs.append(ref)
        memory.append(kept)
    if step.arity is None and _is_metrics(returned, hint):
        mloop.log_metrics({k: float(v) for k, v in returned.items()})
    return StepResult(task.node, "succeeded", None, outputs=outputs, memory=memory)


def _is_metrics(value: Any, hint: Any) -> bool:
    """A ``dict[str, float]`` return is a step's metrics: also logged on its run."""
    return (
        typing.get_origin(hint) is dict
        and typing.get_args(hint) in ((str, float), (str, int))
        and isinstance(value, dict)
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value.values())
    )


def _param_text(value: Any) -> Any:
    if isinstance(value, str | int | float | bool):
        return value
    return json.dumps(value, sort_keys=True)[:6000]


def _describe(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(exc))
    return f"{type(exc).__name__}: {exc}\n\n{text[-_ERROR_CHARS:]}"


_applied: dict[str, Any] | None = None
_artifacts: Any = None


def _worker_artifacts() -> Any:
    """The artifact store of the applied context, opened once (reading the settings costs
    more than a small step)."""
    global _artifacts
    if _artifacts is None:
        from mloop.artifacts import artifact_store_for

        _artifacts = artifact_store_for()
    return _artifacts


def _apply_context(context: dict[str, Any]) -> None:
    """Make this worker see the orchestrator's settings: its ``MLOOP_*`` environment,
    tracking URI and import path. Workers outlive one pipeline (Ray reuses them), so the context is
    applied whenever it changes."""
    global _applied, _artifacts
    if context == _applied:
        return
    _artifacts = None
    import mloop

    env: dict[str, str] = context["env"]
    for name in [n for n in os.environ if n.startswith("MLOOP_") and n not in env]:
        del os.environ[name]
    os.environ.update(env)
    missing = [p for p in context.get("sys_path", ()) if p not in sys.path]
    sys.path[:0] = missing
    mloop.set_tracking_uri(context["tracking_uri"])
    _applied = context


def worker_context() -> dict[str, Any]:
    """What :func:`_apply_context` needs, taken from this (the orchestrating) process:
    relative paths resolved, so a worker in another directory finds the same stores."""
    import mloop
    from mloop.config import get_settings

    settings = get_settings()
    env = {n: v for n, v in os.environ.items() if n.startswith("MLOOP_")}
    env["MLOOP_HOME"] = str(settings.home.absolute())
    env.setdefault("MLOOP_DB_URI", settings.resolved_db_uri)
    env.setdefault("MLOOP_ARTIFACT_URI", settings.resolved_artifact_uri)
    return {"env": env, "tracking_uri": mloop.get_tracking_uri(), "sys_path": list(sys.path)}
