"""``MloopClient``: explicit, unbuffered access to runs by id, in MlflowClient's shape.

The fluent functions (``mloop.log_metric``…) keep an active run and buffer writes; the
client writes through at once and suits scripts that manage many runs, and the CLI.
"""

from __future__ import annotations

import io
import os
import posixpath
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mloop._ids import now_ms
from mloop.artifacts import iter_local_files, safe_relpath
from mloop.errors import InvalidInput
from mloop.tracking._backend import ACTIVE_ONLY, TrackingBackend
from mloop.tracking._entities import (
    ArtifactInfo,
    Experiment,
    Metric,
    Param,
    Run,
    RunInfo,
    RunInput,
    RunStatus,
    RunTag,
)
from mloop.tracking._resolve import backend_for
from mloop.tracking._validation import check_key, check_metric_value, check_step


class MloopClient:
    """Tracking operations addressed by experiment and run id."""

    def __init__(self, tracking_uri: str | None = None, *, backend: TrackingBackend | None = None):
        self.backend = backend or backend_for(tracking_uri)

    # experiments
    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: dict[str, Any] | None = None
    ) -> str:
        return self.backend.create_experiment(
            name, artifact_location, {k: str(v) for k, v in (tags or {}).items()}
        )

    def get_experiment(self, experiment_id: str) -> Experiment:
        return self.backend.get_experiment(experiment_id)

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        return self.backend.get_experiment_by_name(name)

    def search_experiments(self, view_type: str = ACTIVE_ONLY) -> list[Experiment]:
        return self.backend.search_experiments(view_type)

    def delete_experiment(self, experiment_id: str) -> None:
        self.backend.delete_experiment(experiment_id)

    # runs
    def create_run(
        self,
        experiment_id: str,
        start_time: int | None = None,
        tags: dict[str, Any] | None = None,
        run_name: str | None = None,
        *,
        parent_run_id: str | None = None,
        user_id: str | None = None,
    ) -> Run:
        return self.backend.create_run(
            experiment_id,
            run_name=run_name,
            user_id=user_id,
            start_time=start_time if start_time is not None else now_ms(),
            tags={check_key("tag", k): str(v) for k, v in (tags or {}).items()},
            parent_run_id=parent_run_id,
        )

    def get_run(self, run_id: str) -> Run:
        return self.backend.get_run(run_id)

    def set_terminated(
        self, run_id: str, status: str = "FINISHED", end_time: int | None = None
    ) -> RunInfo:
        try:
            parsed = RunStatus(status)
        except ValueError:
            raise InvalidInput(
                f"run status {status!r} is not one of {', '.join(s.value for s in RunStatus)}"
            ) from None
        return self.backend.update_run(
            run_id, status=parsed, end_time=end_time if end_time is not None else now_ms()
        )

    def update_run(self, run_id: str, status: str | None = None, name: str | None = None) -> None:
        self.backend.update_run(run_id, status=RunStatus(status) if status else None, run_name=name)

    def delete_run(self, run_id: str) -> None:
        self.backend.delete_run(run_id)

    def restore_run(self, run_id: str) -> None:
        self.backend.restore_run(run_id)

    def log_metric(
        self,
        run_id: str,
        key: str,
        value: float,
        timestamp: int | None = None,
        step: int | None = None,
    ) -> None:
        self.log_batch(run_id, metrics=[make_metric(key, value, step, timestamp)])

    def log_param(self, run_id: str, key: str, value: Any) -> Any:
        self.log_batch(run_id, params=[Param(check_key("param", key), str(value))])
        return value

    def set_tag(self, run_id: str, key: str, value: Any) -> None:
        self.log_batch(run_id, tags=[RunTag(check_key("tag", key), str(value))])

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        self.backend.log_batch(run_id, metrics, params, tags)

    def log_inputs(self, run_id: str, inputs: Sequence[RunInput]) -> None:
        self.backend.log_inputs(run_id, inputs)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        return self.backend.get_metric_history(run_id, key)

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str = "",
        run_view_type: str = ACTIVE_ONLY,
        max_results: int = 1000,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> tuple[list[Run], str | None]:
        return self.backend.search_runs(
            experiment_ids, filter_string, run_view_type, max_results, order_by or (), page_token
        )

    # artifacts
    def log_artifact(
        self, run_id: str, local_path: str | os.PathLike[str], artifact_path: str | None = None
    ) -> ArtifactInfo:
        source = Path(local_path)
        if not source.is_file():
            raise InvalidInput(f"{source} is not a file; use log_artifacts for a folder")
        target = _join(artifact_path, source.name)
        with source.open("rb") as stream:
            return self.backend.log_artifact_stream(run_id, target, stream)

    def log_artifacts(
        self, run_id: str, local_dir: str | os.PathLike[str], artifact_path: str | None = None
    ) -> list[ArtifactInfo]:
        if not Path(local_dir).is_dir():
            raise InvalidInput(f"{local_dir} is not a folder; use log_artifact for one file")
        logged = []
        for relative, absolute in iter_local_files(local_dir):
            with absolute.open("rb") as stream:
                logged.append(
                    self.backend.log_artifact_stream(run_id, _join(artifact_path, relative), stream)
                )
        return logged

    def log_bytes(self, run_id: str, data: bytes, artifact_file: str) -> ArtifactInfo:
        return self.backend.log_artifact_stream(
            run_id, safe_relpath(artifact_file), io.BytesIO(data)
        )

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[ArtifactInfo]:
        return self.backend.list_artifacts(run_id, path)

    def download_artifacts(
        self, run_id: str, path: str, dst_path: str | os.PathLike[str] | None = None
    ) -> str:
        """Copy an artifact file or folder to ``dst_path`` (a new temp folder by default)."""
        dest_root = Path(dst_path) if dst_path is not None else Path(tempfile.mkdtemp())
        path = safe_relpath(path)
        files = self._walk(run_id, path) or [path]
        base = posixpath.dirname(path)
        for file_path in files:
            target = dest_root / (file_path[len(base) + 1 :] if base else file_path)
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial")
            with self.backend.open_artifact(run_id, file_path) as src, partial.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            partial.replace(target)
        return str(dest_root / posixpath.basename(path))

    def _walk(self, run_id: str, path: str) -> list[str]:
        found: list[str] = []
        for entry in self.backend.list_artifacts(run_id, path):
            if entry.is_dir:
                found.extend(self._walk(run_id, entry.path))
            else:
                found.append(entry.path)
        return found


def make_metric(key: str, value: Any, step: int | None, timestamp: int | None) -> Metric:
    """A validated metric point; ``step`` defaults to 0 and ``timestamp`` to now."""
    check_key("metric", key)
    return Metric(
        key,
        check_metric_value(key, value),
        timestamp if timestamp is not None else now_ms(),
        check_step(key, step) if step is not None else 0,
    )


def _join(prefix: str | None, name: str) -> str:
    return safe_relpath(f"{prefix.rstrip('/')}/{name}" if prefix else name)
