"""What a pipeline run came to, as callers and the CLI see it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

EXECUTION_STATUSES = ("running", "succeeded", "failed", "stopped")
STEP_STATUSES = ("pending", "running", "cached", "succeeded", "failed", "stopped", "skipped")
DONE = ("cached", "succeeded")


@dataclass(frozen=True)
class StepExecution:
    """One step of one execution. ``outputs`` are references to stored values (see
    :mod:`mloop.pipelines._values`); ``cached`` is true when they were reused from an
    earlier execution instead of computed."""

    name: str
    step: str
    status: str
    cached: bool
    run_id: str | None
    upstream: list[str]
    code_digest: str
    cache_key: str | None
    params: dict[str, Any]
    inputs: dict[str, Any]
    outputs: list[dict[str, Any]] | None
    error: str | None
    attempts: int
    start_time: int | None
    end_time: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PipelineExecution:
    """One run of a pipeline (and its resumes). ``outputs`` maps the pipeline's returned
    names to the references of the values; :meth:`output` loads one."""

    id: str
    pipeline: str
    name: str
    status: str
    reason: str | None
    params: dict[str, Any]
    executor: str
    run_id: str | None
    outputs: dict[str, Any]
    steps: list[StepExecution]
    created_by: str | None
    attempts: int
    start_time: int
    end_time: int | None

    def step(self, name: str) -> StepExecution:
        for s in self.steps:
            if s.name == name:
                return s
        from mloop.errors import NotFound

        raise NotFound(
            f"execution {self.id} has no step {name!r}; it has "
            f"{', '.join(s.name for s in self.steps)}"
        )

    def output(self, name: str = "output", hint: Any = Any) -> Any:
        """Load the value of output ``name`` from the artifact store (``hint`` picks the
        form, as a step's parameter hint would: ``str`` for a model URI, …)."""
        from mloop.artifacts import artifact_store_for
        from mloop.errors import NotFound
        from mloop.pipelines._values import load_value, select

        if name not in self.outputs:
            raise NotFound(
                f"execution {self.id} has no output {name!r}"
                + (f"; it has {', '.join(self.outputs)}" if self.outputs else "")
            )
        found = self.outputs[name]
        if found.get("ref") is None:
            raise NotFound(f"output {name!r} of execution {self.id} was not produced")
        if found["ref"]["kind"] == "memory":
            raise NotFound(
                f"output {name!r} of execution {self.id} was kept in memory only (not a type "
                "mloop stores), so it cannot be loaded afterwards"
            )
        value = load_value(found["ref"], artifact_store_for(), hint)
        return select(value, tuple(found.get("keys", ())), f"output {name!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
