"""The demo's sizes, and what each stage leaves for the next ones and for the caller."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mloop.demo._training import Candidate, candidates

if TYPE_CHECKING:
    from mloop.demo._lineage import Lineage
    from mloop.demo._traffic import TrafficReport

DATASET = "credit-applications"
DEPLOYMENT = "credit"


@dataclass(frozen=True)
class DemoSize:
    """How much data and traffic: the full demo, or the quick one the tests run."""

    training_rows: int
    requests_before: int
    requests_after: int
    requests_per_rollout_step: int
    clients: int
    models: tuple[Candidate, ...]
    rollout_window_s: float
    request_rate: float
    quick: bool = False
    monitor_window_s: int = 1
    poll_interval_s: float = 0.2

    @classmethod
    def for_run(cls, quick: bool) -> DemoSize:
        if quick:
            return cls(
                training_rows=3000,
                requests_before=700,
                requests_after=900,
                requests_per_rollout_step=350,
                clients=40,
                models=tuple(candidates(quick=True)),
                rollout_window_s=1.0,
                request_rate=300.0,
                quick=True,
            )
        return cls(
            training_rows=8000,
            requests_before=1200,
            requests_after=2400,
            requests_per_rollout_step=500,
            clients=200,
            models=tuple(candidates(quick=False)),
            rollout_window_s=1.0,
            request_rate=400.0,
        )


@dataclass
class DemoResult:
    """What happened, stage by stage, as the demo printed it."""

    home: Path
    commit: str | None = None
    datasets: list[str] = field(default_factory=list)
    anomalies_caught: int = 0
    champion: str | None = None
    signed_by: str | None = None
    deployment: str = DEPLOYMENT
    traffic: dict[str, TrafficReport] = field(default_factory=dict)
    drift_detected: bool = False
    drifted_features: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    candidate: str | None = None
    gate_passed: bool | None = None
    gate_reasons: list[str] = field(default_factory=list)
    rollout_outcome: str | None = None
    rollout_steps: list[str] = field(default_factory=list)
    lineage: Lineage | None = None
    reports: dict[str, Path] = field(default_factory=dict)
    window_ms: dict[str, tuple[int, int]] = field(default_factory=dict)
