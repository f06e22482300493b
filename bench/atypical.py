"""Atypical-input detection benchmark: mloop's detector beside scikit-learn's
EllipticEnvelope (robust covariance by FastMCD), the tool users would otherwise reach for.

    python bench/atypical.py            # ~1 minute on 2 cores

Same training data for both, in one run: iris (150 x 4) and a synthetic correlated
Gaussian (50,000 x 10 with 1 % planted outliers). For each: the fit, the per-request check
of one row and of a 1,000-row batch (median of repeats), and how well each separates the
planted outliers (recall at the 0.99 training quantile; EllipticEnvelope with
contamination=0.01). mloop's check also builds the per-row reasons; EllipticEnvelope's
``predict`` gives only a verdict.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.covariance import EllipticEnvelope
from sklearn.datasets import load_iris

from mloop.serving._atypical import AtypicalDetector


def timed(fn: Callable[[], Any], repeat: int) -> float:
    """Median seconds of ``repeat`` calls (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def synthetic(rows: int, dims: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(dims, dims))
    train = rng.normal(size=(rows, dims)) @ mixing
    test = rng.normal(size=(1000, dims)) @ mixing
    planted = np.zeros(1000, dtype=bool)
    planted[:10] = True
    # each value inside its training range, the combination far off the data's shape
    test[:10] = rng.normal(size=(10, dims)) * train.std(axis=0) * 1.2
    return train, test, planted


def run(name: str, train: np.ndarray, test: np.ndarray, planted: np.ndarray | None) -> None:
    fit_mloop = timed(lambda: AtypicalDetector.fit(train), 3)
    fit_sk = timed(lambda: EllipticEnvelope(contamination=0.01, random_state=0).fit(train), 3)
    det = AtypicalDetector.fit(train)
    env = EllipticEnvelope(contamination=0.01, random_state=0).fit(train)
    one = test[:1]
    one_mloop = timed(lambda: det.check(one), 300)
    one_sk = timed(lambda: env.predict(one), 300)
    batch_mloop = timed(lambda: det.check(test), 30)
    batch_sk = timed(lambda: env.predict(test), 30)
    print(f"\n{name}: train {train.shape[0]:,} x {train.shape[1]}")
    print(f"  {'':24}{'mloop':>12}{'sklearn EE':>14}{'ratio (sk/mloop)':>20}")
    for label, a, b in [
        ("fit", fit_mloop, fit_sk),
        ("check 1 row", one_mloop, one_sk),
        ("check 1,000 rows", batch_mloop, batch_sk),
    ]:
        print(f"  {label:24}{a * 1e3:>10.3f}ms{b * 1e3:>12.3f}ms{b / a:>19.2f}x")
    print(f"  per row in a 1,000-row batch: mloop {batch_mloop / len(test) * 1e6:.2f} us")
    if planted is not None:
        caught_mloop = det.check(test).atypical
        caught_sk = env.predict(test) == -1
        for label, caught in [("mloop", caught_mloop), ("sklearn EE", caught_sk)]:
            recall = (caught & planted).sum() / planted.sum()
            false_alarms = (caught & ~planted).sum() / (~planted).sum()
            print(
                f"  {label:12} planted outliers caught {recall:.0%}, false alarms {false_alarms:.1%}"
            )


def main() -> None:
    iris = load_iris().data
    rng = np.random.default_rng(1)
    iris_requests = iris[rng.integers(0, len(iris), 1000)] + rng.normal(0, 0.05, (1000, 4))
    run("iris", iris, iris_requests, None)
    run("correlated Gaussian", *synthetic(50_000, 10))


if __name__ == "__main__":
    main()
