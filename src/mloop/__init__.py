"""mloop: the whole machine-learning loop in one package.

Start with the tracking API, shaped like MLflow's::

    import mloop

    mloop.set_experiment("iris")
    with mloop.start_run():
        mloop.log_param("max_depth", 3)
        mloop.log_metric("accuracy", 0.95)

Every public name is imported on first use (PEP 562): ``import mloop`` costs a few
milliseconds, so ``mloop models scan`` or a script that only reads the version does not
pay for SQLAlchemy, pydantic-settings or the model libraries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mloop._lazy import lazy_attributes

__version__ = "0.1.0"

if TYPE_CHECKING:
    from mloop import data as data
    from mloop.errors import MloopError
    from mloop.models import load_model, log_model
    from mloop.pipelines import pipeline, step
    from mloop.tracking import (
        ACTIVE_ONLY,
        ALL,
        DELETED_ONLY,
        ActiveRun,
        ArtifactInfo,
        Experiment,
        Metric,
        MloopClient,
        Param,
        Run,
        RunData,
        RunInfo,
        RunInput,
        RunStatus,
        RunTag,
        TrackingBackend,
        active_run,
        create_experiment,
        end_run,
        flush,
        get_artifact_uri,
        get_experiment,
        get_experiment_by_name,
        get_metric_history,
        get_run,
        get_tracking_uri,
        last_active_run,
        log_artifact,
        log_artifacts,
        log_dict,
        log_figure,
        log_input,
        log_metric,
        log_metrics,
        log_param,
        log_params,
        log_text,
        runs_to_frame,
        search_runs,
        seed_everything,
        set_experiment,
        set_tag,
        set_tags,
        set_tracking_uri,
        start_run,
    )

__all__ = [
    "ACTIVE_ONLY",
    "ALL",
    "DELETED_ONLY",
    "ActiveRun",
    "ArtifactInfo",
    "Experiment",
    "Metric",
    "MloopClient",
    "MloopError",
    "Param",
    "Run",
    "RunData",
    "RunInfo",
    "RunInput",
    "RunStatus",
    "RunTag",
    "TrackingBackend",
    "__version__",
    "active_run",
    "create_experiment",
    "end_run",
    "flush",
    "get_artifact_uri",
    "get_experiment",
    "get_experiment_by_name",
    "get_metric_history",
    "get_run",
    "get_tracking_uri",
    "last_active_run",
    "load_model",
    "log_artifact",
    "log_artifacts",
    "log_dict",
    "log_figure",
    "log_input",
    "log_metric",
    "log_metrics",
    "log_model",
    "log_param",
    "log_params",
    "log_text",
    "pipeline",
    "runs_to_frame",
    "search_runs",
    "seed_everything",
    "set_experiment",
    "set_tag",
    "set_tags",
    "set_tracking_uri",
    "start_run",
    "step",
]

# Public name -> the module that defines it: the tracking API unless listed here.
_ELSEWHERE = {
    "MloopError": "mloop.errors",
    "load_model": "mloop.models",
    "log_model": "mloop.models",
    "pipeline": "mloop.pipelines",
    "step": "mloop.pipelines",
}
__getattr__, __dir__ = lazy_attributes(
    __name__,
    {name: _ELSEWHERE.get(name, "mloop.tracking") for name in __all__ if name != "__version__"},
    globals(),
    submodules=("data", "evaluation", "monitoring", "pipelines", "agent", "iac"),
)
