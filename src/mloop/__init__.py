"""mloop: the whole machine-learning loop in one package.

Start with the tracking API, shaped like MLflow's::

    import mloop

    mloop.set_experiment("iris")
    with mloop.start_run():
        mloop.log_param("max_depth", 3)
        mloop.log_metric("accuracy", 0.95)
"""

from typing import TYPE_CHECKING

from mloop.errors import MloopError
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

__version__ = "0.1.0"


if TYPE_CHECKING:
    from mloop.models import load_model, log_model

_FROM_MODELS = frozenset({"load_model", "log_model"})


def __getattr__(name: str) -> object:
    """``mloop.data`` and the model functions load on first use: Arrow, the sketches and
    the model libraries stay out of tracking code."""
    import importlib

    if name == "data":
        return importlib.import_module("mloop.data")
    if name in _FROM_MODELS:
        return getattr(importlib.import_module("mloop.models"), name)
    raise AttributeError(f"module 'mloop' has no attribute {name!r}")


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
