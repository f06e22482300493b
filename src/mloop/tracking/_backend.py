"""The seam between the tracking API and where runs live.

Two implementations: :class:`~mloop.tracking._sql_backend.SqlBackend` writes the metadata
and artifact stores directly (embedded), and :class:`~mloop.tracking._rest_backend.RestBackend`
talks to ``mloop server`` over HTTP. The fluent API, the client, the CLI and the server
itself all go through this one interface, so embedded and remote behave the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import BinaryIO, Protocol

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

ACTIVE_ONLY = "ACTIVE_ONLY"
DELETED_ONLY = "DELETED_ONLY"
ALL = "ALL"
VIEW_TYPES = (ACTIVE_ONLY, DELETED_ONLY, ALL)


class TrackingBackend(Protocol):
    """Everything tracking needs from a store; each call is one atomic change."""

    # experiments
    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> str: ...

    def get_experiment(self, experiment_id: str) -> Experiment: ...

    def get_experiment_by_name(self, name: str) -> Experiment | None: ...

    def search_experiments(self, view_type: str = ACTIVE_ONLY) -> list[Experiment]: ...

    def delete_experiment(self, experiment_id: str) -> None: ...

    # runs
    def create_run(
        self,
        experiment_id: str,
        *,
        run_name: str | None,
        user_id: str | None,
        start_time: int,
        tags: dict[str, str],
        parent_run_id: str | None,
        artifacts: Mapping[str, bytes] | None = None,
    ) -> Run:
        """Create a run with its first tags and small files (what capture records) at once."""
        ...

    def get_run(self, run_id: str) -> Run: ...

    def update_run(
        self,
        run_id: str,
        *,
        status: RunStatus | None = None,
        end_time: int | None = None,
        run_name: str | None = None,
    ) -> RunInfo: ...

    def delete_run(self, run_id: str) -> None: ...

    def restore_run(self, run_id: str) -> None: ...

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None: ...

    def finish_run(
        self,
        run_id: str,
        status: RunStatus,
        end_time: int,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        """Write a run's last batch and end it, in one step where the store allows."""
        ...

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]: ...

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str = "",
        view_type: str = ACTIVE_ONLY,
        max_results: int = 1000,
        order_by: Sequence[str] = (),
        page_token: str | None = None,
    ) -> tuple[list[Run], str | None]: ...

    def log_inputs(self, run_id: str, inputs: Sequence[RunInput]) -> None: ...

    def get_inputs(self, run_id: str) -> list[RunInput]: ...

    # artifacts
    def log_artifact_stream(self, run_id: str, path: str, stream: BinaryIO) -> ArtifactInfo: ...

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[ArtifactInfo]: ...

    def open_artifact(self, run_id: str, path: str) -> BinaryIO: ...

    def close(self) -> None: ...
