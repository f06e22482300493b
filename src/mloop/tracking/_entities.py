"""What tracking stores and returns: plain frozen values, the same embedded and remote.

Field names follow MLflow's entities (``run.info.run_id``, ``run.data.metrics``) so code
moved over from MLflow reads runs unchanged.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field, fields
from typing import Any


class RunStatus(enum.StrEnum):
    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    @property
    def is_terminated(self) -> bool:
        return self not in (RunStatus.RUNNING, RunStatus.SCHEDULED)


@dataclass(frozen=True, slots=True)
class Metric:
    key: str
    value: float
    timestamp: int
    step: int = 0

    def to_dict(self) -> dict[str, Any]:
        value: float | str = self.value
        if math.isnan(self.value) or math.isinf(self.value):
            value = str(self.value)  # JSON has no NaN/inf literals
        return {"key": self.key, "value": value, "timestamp": self.timestamp, "step": self.step}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Metric:
        return cls(data["key"], float(data["value"]), int(data["timestamp"]), int(data["step"]))


@dataclass(frozen=True, slots=True)
class Param:
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class RunTag:
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class Experiment:
    experiment_id: str
    name: str
    artifact_location: str | None
    lifecycle_stage: str
    creation_time: int
    last_update_time: int
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment_id": self.experiment_id,
            "name": self.name,
            "artifact_location": self.artifact_location,
            "lifecycle_stage": self.lifecycle_stage,
            "creation_time": self.creation_time,
            "last_update_time": self.last_update_time,
            "tags": dict(self.tags),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Experiment:
        return cls(**_known(cls, data))


@dataclass(frozen=True, slots=True)
class RunInfo:
    run_id: str
    experiment_id: str
    run_name: str | None
    user_id: str | None
    status: RunStatus
    start_time: int
    end_time: int | None
    parent_run_id: str | None
    lifecycle_stage: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "experiment_id": self.experiment_id,
            "run_name": self.run_name,
            "user_id": self.user_id,
            "status": self.status.value,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "parent_run_id": self.parent_run_id,
            "lifecycle_stage": self.lifecycle_stage,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunInfo:
        return cls(**{**_known(cls, data), "status": RunStatus(data["status"])})


@dataclass(frozen=True, slots=True)
class RunData:
    """Latest value of each metric, and every param and tag."""

    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Run:
    info: RunInfo
    data: RunData

    def to_dict(self) -> dict[str, Any]:
        return {
            "info": self.info.to_dict(),
            "data": {
                "metrics": {k: _json_float(v) for k, v in self.data.metrics.items()},
                "params": dict(self.data.params),
                "tags": dict(self.data.tags),
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        d = data["data"]
        return cls(
            RunInfo.from_dict(data["info"]),
            RunData(
                metrics={k: float(v) for k, v in d["metrics"].items()},
                params=dict(d["params"]),
                tags=dict(d["tags"]),
            ),
        )


@dataclass(frozen=True, slots=True)
class ArtifactInfo:
    """One entry of a run's artifact listing: a file (with digest) or a folder."""

    path: str
    is_dir: bool
    size: int | None = None
    digest: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "is_dir": self.is_dir, "size": self.size, "digest": self.digest}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArtifactInfo:
        return cls(**_known(cls, data))


@dataclass(frozen=True, slots=True)
class RunInput:
    """A reference to something a run read, typically a dataset version."""

    ref: str
    context: str = ""
    kind: str = "dataset"
    digest: str | None = None
    attributes: dict[str, Any] | None = None


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """Only the fields ``cls`` has: a newer server may send more, and old clients go on."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _json_float(value: float) -> float | str:
    return str(value) if math.isnan(value) or math.isinf(value) else value
