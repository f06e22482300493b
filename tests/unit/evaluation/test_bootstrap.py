"""Bootstrap intervals: properties that must hold for any data (hypothesis), determinism,
and the memory bound (the chunked path gives intervals as valid as the one-shot path)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mloop.evaluation import _bootstrap
from mloop.evaluation._bootstrap import with_intervals
from mloop.evaluation._metrics import Outcomes


def _classification(y: list[int], pred: list[int], p1: list[float]) -> Outcomes:
    n = min(len(y), len(pred), len(p1))
    prob = np.asarray(p1[:n])
    return Outcomes(
        "classification",
        np.asarray(y[:n]),
        np.asarray(pred[:n]),
        np.column_stack([1 - prob, prob]),
        (0, 1),
        1,
    )


@settings(max_examples=40, deadline=None)
@given(
    y=st.lists(st.integers(0, 1), min_size=1, max_size=60),
    pred=st.lists(st.integers(0, 1), min_size=1, max_size=60),
    p1=st.lists(st.floats(0, 1), min_size=1, max_size=60),
    seed=st.integers(0, 2**16),
)
def test_every_interval_contains_its_point_estimate(
    y: list[int], pred: list[int], p1: list[float], seed: int
) -> None:
    found = with_intervals(_classification(y, pred, p1), resamples=60, seed=seed)
    for name, value in found.items():
        if math.isnan(value.value):
            assert math.isnan(value.low), name
            assert math.isnan(value.high), name
            continue
        assert value.low <= value.value <= value.high, name


@settings(max_examples=25, deadline=None)
@given(
    errors=st.lists(st.floats(-5, 5), min_size=8, max_size=30).filter(lambda e: np.std(e) > 0.1),
    seed=st.integers(0, 2**16),
)
def test_intervals_narrow_as_rows_grow(errors: list[float], seed: int) -> None:
    """The same distribution with 16 times the rows: intervals about 4 times narrower."""
    base = np.asarray(errors)
    truth = np.linspace(0, 1, base.size)

    def width(copies: int) -> float:
        o = Outcomes("regression", np.tile(truth, copies), np.tile(truth + base, copies))
        mae = with_intervals(o, resamples=200, seed=seed)["mae"]
        return mae.high - mae.low

    assert width(16) < width(1)


def test_same_seed_same_intervals_and_slices_do_not_depend_on_each_other() -> None:
    o = _classification([0, 1] * 50, [0, 1, 1, 0] * 25, [0.3, 0.7] * 50)
    a = with_intervals(o, seed=7, key="sex=F")
    assert a == with_intervals(o, seed=7, key="sex=F")
    assert a != with_intervals(o, seed=8, key="sex=F")
    assert a != with_intervals(o, seed=7, key="sex=M")  # each slice its own stream


def test_zero_resamples_gives_the_point_estimate_as_its_own_interval() -> None:
    o = _classification([0, 1, 1], [0, 1, 0], [0.2, 0.9, 0.4])
    found = with_intervals(o, resamples=0)
    assert all(v.low == v.value == v.high for v in found.values() if not math.isnan(v.value))


def test_the_weight_matrix_stays_under_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a tiny cell budget the resamples come a few at a time; no chunk may exceed it,
    and the intervals are still proper intervals around the estimate."""
    seen: list[tuple[int, int]] = []
    original = _bootstrap.resample_weights

    def spy(rng: np.random.Generator, n: int, count: int) -> np.ndarray:
        seen.append((count, n))
        return original(rng, n, count)

    monkeypatch.setattr(_bootstrap, "MAX_CELLS", 1000)
    monkeypatch.setattr(_bootstrap, "resample_weights", spy)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    o = _classification(y.tolist(), y.tolist(), rng.random(300).tolist())
    found = with_intervals(o, resamples=50)
    assert sum(count for count, _ in seen) == 50
    assert max(count * n for count, n in seen) <= 1000
    assert found["roc_auc"].low <= found["roc_auc"].value <= found["roc_auc"].high
