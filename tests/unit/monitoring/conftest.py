"""Prediction logs written through the real PredictionLog API, at times the test chooses."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from mloop.serving._feedback import record_feedback
from mloop.serving._predlog import PredictionLog, PredictionRecord

HOUR = 3_600_000
T0 = 1_772_359_200_000  # 2026-03-01T10:00:00Z, on an hour boundary


class Traffic:
    """Writes answers and feedback for one deployment; request ids are unique per test."""

    def __init__(self, log: PredictionLog, deployment: str = "iris") -> None:
        self.log = log
        self.deployment = deployment
        self.n = 0

    def answer(
        self,
        time_ms: int,
        features: Sequence[float] | dict[str, Any],
        prediction: Any,
        *,
        model: str = "iris",
        version: int = 1,
        role: str = "primary",
        latency_ms: float = 2.0,
        status: int = 200,
        error: str | None = None,
    ) -> str:
        self.n += 1
        request_id = f"req-{self.n}"
        inputs = features if isinstance(features, dict) else {"input-0": [list(features)]}
        self.log.append(
            PredictionRecord(
                request_id=request_id, time_ms=time_ms, deployment=self.deployment,
                model=model, version=version, role=role, inputs=inputs,
                outputs=None if status >= 400 else {"predictions": [prediction]},
                latency_ms=latency_ms, status=status, error=error,
            )
        )  # fmt: skip
        return request_id

    def feedback(self, items: list[dict[str, Any]]) -> None:
        record_feedback(None, self.deployment, items)


@pytest.fixture
def traffic() -> Iterator[Traffic]:
    log = PredictionLog(fsync="off", compact_interval=None)
    yield Traffic(log)
    log.close()
