"""The module-level tracking API (``mloop.start_run``, ``mloop.log_metric``, …).

Names and argument order follow MLflow's fluent API, so moving over is a change of import.
Each thread has its own stack of active runs; writes go through one shared
:class:`~mloop.tracking._buffer.WriteBuffer` per backend, flushed in the background.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import io
import json
import os
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from mloop._ids import now_ms
from mloop.config import Settings, get_settings
from mloop.errors import InvalidInput, MloopError, NotFound
from mloop.tracking import _capture
from mloop.tracking._backend import ACTIVE_ONLY, TrackingBackend
from mloop.tracking._buffer import WriteBuffer
from mloop.tracking._client import MloopClient, make_metric
from mloop.tracking._entities import Experiment, Metric, Run, RunData, RunInfo, RunInput, RunStatus
from mloop.tracking._names import random_run_name
from mloop.tracking._resolve import backend_for, reset_backends
from mloop.tracking._validation import MAX_PARAM_VALUE, check_key, check_value

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_EXPERIMENT = "Default"


class ActiveRun:
    """The run ``start_run`` made active; a context manager that ends it on exit."""

    def __init__(self, run: Run, meter: _capture.ResourceMeter | None) -> None:
        self._run = run
        self._meter = meter

    @property
    def info(self) -> RunInfo:
        return self._run.info

    @property
    def data(self) -> RunData:
        return self._run.data

    def __repr__(self) -> str:
        return f"<ActiveRun {self.info.run_id} name={self.info.run_name!r}>"

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            status = RunStatus.FINISHED
        elif issubclass(exc_type, KeyboardInterrupt):
            status = RunStatus.KILLED
        else:
            status = RunStatus.FAILED
        _end(self, status)


class _State:
    """Process-wide tracking state: the backend, its buffer, the chosen experiment."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.local = threading.local()
        self.backend: TrackingBackend | None = None
        self.buffer: WriteBuffer | None = None
        self.tracking_uri: str | None = None
        self.experiment_id: str | None = None
        self.seed_tags: dict[str, str] = {}
        self.settings: Settings | None = None

    def stack(self) -> list[ActiveRun]:
        stack: list[ActiveRun] | None = getattr(self.local, "stack", None)
        if stack is None:
            stack = self.local.stack = []
        return stack

    def get_backend(self) -> tuple[TrackingBackend, WriteBuffer]:
        with self.lock:
            if self.backend is None or self.buffer is None:
                self.settings = settings = get_settings()
                self.backend = backend_for(self.tracking_uri, settings)
                self.buffer = WriteBuffer(self.backend, settings.flush_interval)
            return self.backend, self.buffer


_state = _State()


def set_tracking_uri(uri: str | None) -> None:
    """Log to ``uri`` from now on: ``http://host:port`` (a server) or a database URI."""
    with _state.lock:
        _shutdown()
        _state.tracking_uri = uri
        _state.experiment_id = None


def get_tracking_uri() -> str:
    settings = get_settings()
    return _state.tracking_uri or settings.tracking_uri or settings.resolved_db_uri


def _client() -> MloopClient:
    return MloopClient(backend=_state.get_backend()[0])


# -- experiments ------------------------------------------------------------------------------


def set_experiment(
    experiment_name: str | None = None, experiment_id: str | None = None
) -> Experiment:
    """Make an experiment active for new runs, creating it by name if it does not exist."""
    if (experiment_name is None) == (experiment_id is None):
        raise InvalidInput("give exactly one of experiment_name or experiment_id")
    backend, _ = _state.get_backend()
    if experiment_id is not None:
        experiment = backend.get_experiment(experiment_id)
    else:
        assert experiment_name is not None
        experiment = _get_or_create_experiment(backend, experiment_name)
    if experiment.lifecycle_stage != "active":
        raise InvalidInput(f"experiment {experiment.name!r} is deleted; restore it or pick another")
    _state.experiment_id = experiment.experiment_id
    return experiment


def _get_or_create_experiment(backend: TrackingBackend, name: str) -> Experiment:
    found = backend.get_experiment_by_name(name)
    if found is not None:
        return found
    from mloop.errors import Conflict

    try:
        return backend.get_experiment(backend.create_experiment(name))
    except Conflict:  # another process created it first
        again = backend.get_experiment_by_name(name)
        assert again is not None
        return again


def get_experiment(experiment_id: str) -> Experiment:
    return _state.get_backend()[0].get_experiment(experiment_id)


def get_experiment_by_name(name: str) -> Experiment | None:
    return _state.get_backend()[0].get_experiment_by_name(name)


def create_experiment(
    name: str, artifact_location: str | None = None, tags: dict[str, Any] | None = None
) -> str:
    return _client().create_experiment(name, artifact_location, tags)


def _current_experiment_id(backend: TrackingBackend) -> str:
    if _state.experiment_id is None:
        name = get_settings().experiment_name or DEFAULT_EXPERIMENT
        _state.experiment_id = _get_or_create_experiment(backend, name).experiment_id
    return _state.experiment_id


# -- runs -------------------------------------------------------------------------------------


def start_run(
    run_id: str | None = None,
    experiment_id: str | None = None,
    run_name: str | None = None,
    nested: bool = False,
    parent_run_id: str | None = None,
    tags: dict[str, Any] | None = None,
    description: str | None = None,
) -> ActiveRun:
    """Start a new run (or resume ``run_id``) and make it active in this thread.

    A second ``start_run`` while a run is active needs ``nested=True``; the new run's parent
    is then the active run. Use it as a context manager: leaving the block ends the run as
    FINISHED, or FAILED when an exception escapes.
    """
    backend, _ = _state.get_backend()
    stack = _state.stack()
    if stack and not nested and parent_run_id is None:
        raise InvalidInput(
            f"run {stack[-1].info.run_id} is already active; call mloop.end_run() first, "
            "or start_run(nested=True) for a child run"
        )
    if run_id is not None:
        run = backend.get_run(run_id)
        if run.info.status.is_terminated:
            backend.update_run(run_id, status=RunStatus.RUNNING)
        active = ActiveRun(backend.get_run(run_id), _capture.ResourceMeter())
        stack.append(active)
        return active
    parent = parent_run_id or (stack[-1].info.run_id if nested and stack else None)
    exp_id = experiment_id or (
        backend.get_run(parent).info.experiment_id if parent else _current_experiment_id(backend)
    )
    all_tags = {check_key("tag", k): str(v) for k, v in (tags or {}).items()}
    settings = _state.settings or get_settings()
    captured = _capture.capture_start() if settings.capture else None
    if captured is not None:
        all_tags = {**captured.tags, **all_tags}
    all_tags.update(_state.seed_tags)
    if description is not None:
        all_tags["mloop.note.content"] = description
    run = backend.create_run(
        exp_id,
        run_name=run_name or random_run_name(),
        user_id=settings.user or _user(),
        start_time=now_ms(),
        tags=all_tags,
        parent_run_id=parent,
        artifacts=captured.artifacts if captured is not None else None,
    )
    active = ActiveRun(run, _capture.ResourceMeter())
    stack.append(active)
    return active


def _user() -> str | None:
    """The user name as ``getpass.getuser`` finds it: the environment is read every time,
    the account database (a file read per call) only once a process."""
    for variable in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        name = os.environ.get(variable)
        if name:
            return name
    return _account_name()


@functools.cache
def _account_name() -> str | None:
    try:
        import getpass

        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return None


def active_run() -> ActiveRun | None:
    stack = _state.stack()
    return stack[-1] if stack else None


def last_active_run() -> Run | None:
    run_id = getattr(_state.local, "last_run_id", None)
    return get_run(run_id) if run_id else None


def end_run(status: str = "FINISHED") -> None:
    """End the active run: flush its writes, record resources, set its status."""
    try:
        parsed = RunStatus(status)
    except ValueError:
        raise InvalidInput(
            f"run status {status!r} is not one of {', '.join(s.value for s in RunStatus)}"
        ) from None
    stack = _state.stack()
    if stack:
        _end(stack[-1], parsed)


def _end(active: ActiveRun, status: RunStatus) -> None:
    backend, buffer = _state.get_backend()
    run_id = active.info.run_id
    stack = _state.stack()
    if active in stack:
        stack.remove(active)
    try:
        if active._meter is not None:
            resources = active._meter.stop()
            buffer.add_metrics(
                run_id,
                [
                    Metric(k, float(v), now_ms(), 0)
                    for k, v in resources.items()
                    if isinstance(v, float)
                ],
            )
            buffer.add_tags(run_id, {k: v for k, v in resources.items() if isinstance(v, str)})
        buffer.finish(run_id, status, now_ms())
    except BaseException:
        # The last batch was refused or the store failed: still end the run, then report.
        with contextlib.suppress(MloopError):
            backend.update_run(run_id, status=status, end_time=now_ms())
        raise
    finally:
        _state.local.last_run_id = run_id


def _run_id(run_id: str | None = None) -> str:
    if run_id is not None:
        return run_id
    stack = _state.stack()
    if stack:
        return stack[-1].info.run_id
    # Like MLflow: logging with no active run starts one.
    return start_run().info.run_id


# -- logging ----------------------------------------------------------------------------------


def log_metric(
    key: str,
    value: float,
    step: int | None = None,
    synchronous: bool | None = None,
    timestamp: int | None = None,
    run_id: str | None = None,
) -> None:
    """Log one point; buffered (microseconds) unless ``synchronous=True``."""
    metric = make_metric(key, value, step, timestamp)
    rid = _run_id(run_id)
    backend, buffer = _state.get_backend()
    if synchronous:
        backend.log_batch(rid, [metric])
    else:
        buffer.add_metric(rid, metric)


def log_metrics(
    metrics: dict[str, float],
    step: int | None = None,
    synchronous: bool | None = None,
    run_id: str | None = None,
    timestamp: int | None = None,
) -> None:
    ts = timestamp if timestamp is not None else now_ms()
    points = [make_metric(k, v, step, ts) for k, v in metrics.items()]
    rid = _run_id(run_id)
    backend, buffer = _state.get_backend()
    if synchronous:
        backend.log_batch(rid, points)
    else:
        buffer.add_metrics(rid, points)


def log_param(key: str, value: Any, synchronous: bool | None = None) -> Any:
    """Log a param; params are immutable, so a different second value raises ``Conflict``."""
    log_params({key: value}, synchronous=synchronous)
    return value


def log_params(
    params: dict[str, Any], synchronous: bool | None = None, run_id: str | None = None
) -> None:
    rows = {
        check_key("param", k): check_value("param", k, v, MAX_PARAM_VALUE)
        for k, v in params.items()
    }
    rid = _run_id(run_id)
    _, buffer = _state.get_backend()
    buffer.add_params(rid, rows)
    if synchronous:
        buffer.flush(rid)


def set_tag(key: str, value: Any, synchronous: bool | None = None) -> None:
    set_tags({key: value}, synchronous=synchronous)


def set_tags(tags: dict[str, Any], synchronous: bool | None = None) -> None:
    rows = {check_key("tag", k): str(v) for k, v in tags.items()}
    rid = _run_id()
    _, buffer = _state.get_backend()
    buffer.add_tags(rid, rows)
    if synchronous:
        buffer.flush(rid)


def seed_everything(seed: int) -> int:
    """Seed random, numpy (and torch when imported) and record the seed on the active run."""
    tags = _capture.seed_everything(seed)
    _state.seed_tags = tags  # recorded on every run started from now on, too
    if _state.stack():
        set_tags(tags)
    return seed


def log_input(dataset: Any, context: str = "", run_id: str | None = None) -> None:
    """Record that the run read ``dataset`` (a dataset version, or any reference string)."""
    ref = getattr(dataset, "ref", None) or str(dataset)
    digest = getattr(dataset, "digest", None)
    _state.get_backend()[0].log_inputs(_run_id(run_id), [RunInput(ref, context, "dataset", digest)])


# -- artifacts --------------------------------------------------------------------------------


def log_artifact(local_path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
    _client().log_artifact(_run_id(), local_path, artifact_path)


def log_artifacts(local_dir: str | os.PathLike[str], artifact_path: str | None = None) -> None:
    _client().log_artifacts(_run_id(), local_dir, artifact_path)


def log_text(text: str, artifact_file: str) -> None:
    _client().log_bytes(_run_id(), text.encode(), artifact_file)


def log_dict(dictionary: dict[str, Any], artifact_file: str) -> None:
    """Store a dict as JSON, or as YAML when ``artifact_file`` ends in .yaml/.yml."""
    if artifact_file.endswith((".yaml", ".yml")):
        import yaml

        text = yaml.safe_dump(dictionary, sort_keys=False)
    else:
        text = json.dumps(dictionary, indent=2, default=str)
    log_text(text, artifact_file)


def log_figure(figure: Any, artifact_file: str) -> None:
    """Store a matplotlib figure; the format follows the file name's ending (png, svg, pdf…)."""
    buffer = io.BytesIO()
    suffix = artifact_file.rsplit(".", 1)[-1].lower() if "." in artifact_file else ""
    if suffix not in {"png", "svg", "pdf", "jpg", "jpeg"}:
        raise InvalidInput(
            f"figure file {artifact_file!r} needs an ending of .png, .svg, .pdf or .jpg"
        )
    figure.savefig(buffer, format=suffix)
    _client().log_bytes(_run_id(), buffer.getvalue(), artifact_file)


def get_artifact_uri(artifact_path: str | None = None) -> str:
    run_id = _run_id()
    return f"runs:/{run_id}/{artifact_path or ''}"


# -- reading ----------------------------------------------------------------------------------


def get_run(run_id: str) -> Run:
    return _state.get_backend()[0].get_run(run_id)


def get_metric_history(run_id: str, key: str) -> list[Metric]:
    _flush_if_pending(run_id)
    return _state.get_backend()[0].get_metric_history(run_id, key)


def _flush_if_pending(run_id: str | None = None) -> None:
    if _state.buffer is not None:
        _state.buffer.flush(run_id)


def search_runs(
    experiment_ids: Sequence[str] | None = None,
    filter_string: str = "",
    run_view_type: str = ACTIVE_ONLY,
    max_results: int = 100_000,
    order_by: Sequence[str] | None = None,
    output_format: str = "list",
    search_all_experiments: bool = False,
    experiment_names: Sequence[str] | None = None,
    page_token: str | None = None,
) -> list[Run] | pd.DataFrame:
    """Runs matching ``filter_string`` (see docs/search.md), as Run objects or a DataFrame.

    Unlike MLflow's fluent function, the default output is a list of runs; pass
    ``output_format="pandas"`` for a DataFrame. Pages are followed up to ``max_results``.
    """
    if output_format not in ("list", "pandas"):
        raise InvalidInput(f"output_format must be 'list' or 'pandas', got {output_format!r}")
    backend, _ = _state.get_backend()
    _flush_if_pending()
    ids = _experiment_ids(backend, experiment_ids, experiment_names, search_all_experiments)
    runs: list[Run] = []
    token = page_token
    while len(runs) < max_results:
        page, token = backend.search_runs(
            ids,
            filter_string,
            run_view_type,
            min(max_results - len(runs), 10_000),
            order_by or (),
            token,
        )
        runs.extend(page)
        if token is None:
            break
    if output_format == "pandas":
        return runs_to_frame(runs)
    return runs


def _experiment_ids(
    backend: TrackingBackend,
    ids: Sequence[str] | None,
    names: Sequence[str] | None,
    search_all: bool,
) -> list[str]:
    if search_all:
        return [e.experiment_id for e in backend.search_experiments(ACTIVE_ONLY)]
    found = list(ids or [])
    for name in names or []:
        experiment = backend.get_experiment_by_name(name)
        if experiment is None:
            raise NotFound(f"experiment {name!r} does not exist; `mloop experiments list`")
        found.append(experiment.experiment_id)
    if not found:
        found = [_current_experiment_id(backend)]
    return found


def runs_to_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """One row a run: info columns, then ``metrics.*``, ``params.*`` and ``tags.*``."""
    import pandas as pd

    rows = []
    for run in runs:
        row: dict[str, Any] = {
            "run_id": run.info.run_id,
            "experiment_id": run.info.experiment_id,
            "run_name": run.info.run_name,
            "status": run.info.status.value,
            "start_time": pd.to_datetime(run.info.start_time, unit="ms", utc=True),
            "end_time": (
                pd.to_datetime(run.info.end_time, unit="ms", utc=True)
                if run.info.end_time
                else None
            ),
        }
        row.update({f"metrics.{k}": v for k, v in run.data.metrics.items()})
        row.update({f"params.{k}": v for k, v in run.data.params.items()})
        row.update({f"tags.{k}": v for k, v in run.data.tags.items()})
        rows.append(row)
    return pd.DataFrame(rows)


# -- process life -----------------------------------------------------------------------------


def flush() -> None:
    """Write every buffered point now (normally the background thread does it)."""
    _flush_if_pending()


def _shutdown() -> None:
    """Flush everything and close the buffer; end runs left active as FINISHED."""
    with _state.lock:
        stack = _state.stack()
        while stack:
            _end(stack[-1], RunStatus.FINISHED)
        if _state.buffer is not None:
            _state.buffer.close()
        _state.backend = None
        _state.buffer = None


def _reset_for_tests() -> None:
    _shutdown()
    _state.tracking_uri = None
    _state.experiment_id = None
    reset_backends()


atexit.register(_shutdown)
