"""Pipelines: typed steps composed into a DAG, cached by code, parameters and input digests,
run in-process, in a process pool or on Ray.

::

    import mloop

    @mloop.step
    def load(rows: int) -> pd.DataFrame: ...

    @mloop.step(retries=2)
    def train(frame: pd.DataFrame) -> dict[str, float]: ...

    @mloop.pipeline
    def nightly(rows: int = 100):
        return train(load(rows))

    execution = mloop.pipelines.run(nightly, {"rows": 500})

Imported on first use: ``import mloop.pipelines`` does not import the store or Ray.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mloop._lazy import lazy_attributes

if TYPE_CHECKING:
    from mloop.pipelines._execution import PipelineExecution, StepExecution
    from mloop.pipelines._executors import StepExecutor, register_step_executor
    from mloop.pipelines._graph import (
        Output,
        Pipeline,
        Resources,
        Step,
        StopPipeline,
        pipeline,
        step,
    )
    from mloop.pipelines._runner import get_execution, list_executions, resume, run

__all__ = [
    "Output",
    "Pipeline",
    "PipelineExecution",
    "Resources",
    "Step",
    "StepExecution",
    "StepExecutor",
    "StopPipeline",
    "get_execution",
    "list_executions",
    "pipeline",
    "register_step_executor",
    "resume",
    "run",
    "step",
]

_MODULES = {
    "Output": "_graph",
    "Pipeline": "_graph",
    "PipelineExecution": "_execution",
    "Resources": "_graph",
    "Step": "_graph",
    "StepExecution": "_execution",
    "StepExecutor": "_executors",
    "StopPipeline": "_graph",
    "get_execution": "_runner",
    "list_executions": "_runner",
    "pipeline": "_graph",
    "register_step_executor": "_executors",
    "resume": "_runner",
    "run": "_runner",
    "step": "_graph",
}
__getattr__, __dir__ = lazy_attributes(
    __name__, {name: f"{__name__}.{module}" for name, module in _MODULES.items()}, globals()
)
