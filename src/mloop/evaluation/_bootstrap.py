"""Bootstrap confidence intervals for every metric of a set of rows, vectorised and bounded.

Resamples are drawn as count vectors (row ``i`` drawn ``c_i`` times), ``chunk`` of them at a
time so the weight matrix never holds more than :data:`MAX_CELLS` numbers whatever the row
count; the metrics come from :func:`mloop.evaluation._metrics.compute` on each chunk. The
generator is seeded from the evaluation's seed and the slice's name, so an interval does
not depend on which other slices were asked for, and the same call gives the same numbers.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from mloop.evaluation._metrics import Array, Outcomes, compute, point

MAX_CELLS = 1_000_000
MAX_RESAMPLES = 10_000


@dataclass(frozen=True)
class MetricValue:
    """A metric's point estimate and its bootstrap interval (NaN when undefined)."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float | None]:
        return {"value": _json(self.value), "low": _json(self.low), "high": _json(self.high)}


def _json(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


def resample_weights(rng: np.random.Generator, n: int, count: int) -> Array:
    """``count`` bootstrap resamples of ``n`` rows as a ``(count, n)`` matrix of draw counts."""
    drawn = rng.integers(0, n, size=(count, n))
    offsets = (np.arange(count) * n)[:, None]
    return np.bincount((drawn + offsets).ravel(), minlength=count * n).reshape(count, n)


def generator(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def with_intervals(
    outcomes: Outcomes,
    *,
    resamples: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
    key: str = "overall",
) -> dict[str, MetricValue]:
    """Each metric of ``outcomes`` with a percentile bootstrap interval.

    The interval is widened to take in the point estimate in the rare case a skewed
    resampling distribution leaves it outside: a report showing a value outside its own
    interval helps nobody. Zero ``resamples`` gives intervals equal to the value.
    """
    values = point(outcomes)
    n = len(outcomes)
    if resamples <= 0 or n == 0:
        return {k: MetricValue(v, v, v) for k, v in values.items()}
    resamples = min(resamples, MAX_RESAMPLES)
    rng = generator(seed, key)
    chunk = max(1, min(resamples, MAX_CELLS // max(n, 1)))
    draws: dict[str, list[Array]] = {name: [] for name in values}
    done = 0
    while done < resamples:
        size = min(chunk, resamples - done)
        found = compute(outcomes, resample_weights(rng, n, size).astype(np.float64))
        for name, array in found.items():
            draws[name].append(array)
        done += size
    tail = (1 - confidence) / 2 * 100
    out: dict[str, MetricValue] = {}
    for name, value in values.items():
        sample = np.concatenate(draws[name])
        sample = sample[np.isfinite(sample)]
        if sample.size == 0 or not np.isfinite(value):
            out[name] = MetricValue(value, value, value)
            continue
        low, high = np.percentile(sample, [tail, 100 - tail])
        out[name] = MetricValue(value, min(float(low), value), max(float(high), value))
    return out
