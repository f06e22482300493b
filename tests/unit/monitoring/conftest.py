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


FEATURES = ["f0", "f1", "f2", "f3"]


def register_training(rows: int = 2000, seed: int = 0) -> str:
    """A training dataset (four standard-normal features and a label) linked to model
    ``iris`` v1, as a training run would leave them; returns its ``name@version``."""
    import hashlib

    import numpy as np
    import pandas as pd

    from mloop.data import register
    from mloop.registry import register_model_version

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, 4)), columns=FEATURES)
    frame["target"] = (frame["f0"] > 0).astype(int)
    version = register("train", frame)
    register_model_version(
        "iris", "/models/iris-1", package_digest=hashlib.sha256(b"iris-1").hexdigest(),
        dataset_versions=[version.ref],
    )  # fmt: skip
    return version.ref


def serve_window(
    traffic: Traffic,
    start_ms: int,
    requests: int,
    *,
    seed: int,
    shift: dict[int, float] | None = None,
    error_every: int = 0,
    latency_ms: float = 2.0,
    version: int = 1,
) -> list[str]:
    """``requests`` answers spread over the hour from ``start_ms``: features drawn from the
    training distribution (``shift`` moves feature i by that many std), the prediction is
    ``f0 > 0``; every ``error_every``-th request fails with a 500."""
    import numpy as np

    rng = np.random.default_rng(seed)
    data = rng.normal(size=(requests, 4))
    for index, amount in (shift or {}).items():
        data[:, index] += amount
    ids = []
    step = HOUR // requests
    for n, row in enumerate(data):
        failed = bool(error_every) and n % error_every == 0
        ids.append(
            traffic.answer(
                start_ms + n * step, row.tolist(), int(row[0] > 0), version=version,
                latency_ms=latency_ms, status=500 if failed else 200,
                error="INTERNAL" if failed else None,
            )
        )  # fmt: skip
    return ids
