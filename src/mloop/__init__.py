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

__version__ = "0.1.0"

if TYPE_CHECKING:
    from mloop import data as data
    from mloop.errors import MloopError
    from mloop.models import load_model, log_model
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

_TRACKING_NAMES = (
    "ACTIVE_ONLY",
    "ALL",
    "DELETED_ONLY",
    "ActiveRun",
    "ArtifactInfo",
    "Experiment",
    "Metric",
    "MloopClient",
    "Param",
    "Run",
    "RunData",
    "RunInfo",
    "RunInput",
    "RunStatus",
    "RunTag",
    "TrackingBackend",
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
    "log_artifact",
    "log_artifacts",
    "log_dict",
    "log_figure",
    "log_input",
    "log_metric",
    "log_metrics",
    "log_param",
    "log_params",
    "log_text",
    "runs_to_frame",
    "search_runs",
    "seed_everything",
    "set_experiment",
    "set_tag",
    "set_tags",
    "set_tracking_uri",
    "start_run",
)

# Public name -> the module that defines it.
_LAZY: dict[str, str] = {
    **dict.fromkeys(_TRACKING_NAMES, "mloop.tracking"),
    "MloopError": "mloop.errors",
    "load_model": "mloop.models",
    "log_model": "mloop.models",
}


def __getattr__(name: str) -> object:
    """Import the module behind ``name`` on first use and keep the value as a global, so
    later look-ups are plain attribute reads."""
    import importlib

    if name == "data":
        return importlib.import_module("mloop.data")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mloop' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, "data"})


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
    "runs_to_frame",
    "search_runs",
    "seed_everything",
    "set_experiment",
    "set_tag",
    "set_tags",
    "set_tracking_uri",
    "start_run",
]
