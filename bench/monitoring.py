"""Monitoring benchmark: one window's drift job over logged predictions, beside a baseline.

    python bench/monitoring.py                    # 200k predictions per window
    python bench/monitoring.py --rows 50000       # quicker

Setup (not timed): two hourly windows of ``--rows`` predictions each — ten numeric
features, two of them shifted in the second window — are written through the real
``PredictionLog`` (fsync off) into a temporary ``MLOOP_HOME`` and compacted to Parquet,
as a server leaves them; the first window is monitored once, so its input statistics are
stored, as they would be after the previous run.

Timed, each once (the machine is shared; run it again to see the spread):

* **mloop**: ``run_monitor`` for the second window — read the window from the log, parse
  the JSON inputs, per-member software metrics, input statistics, drift against the stored
  statistics of the previous window, output drift, store the window.
* **Evidently** ``DataDriftPreset`` on the two windows' feature frames, if ``evidently``
  imports here (it needs pandas < 3, so run this script with the python of a venv holding
  both evidently and mloop: docs/monitoring.md, "Benchmark"); otherwise **pandas + scipy**:
  read both windows from the log, parse the JSON into DataFrames, ``scipy.stats.ks_2samp``
  per feature — what a hand-written job does.

Prints the wall times, their ratio, and which features each flagged.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HOUR = 3_600_000
T0 = 1_772_359_200_000  # 2026-03-01T10:00:00Z
FEATURES = [f"x{i}" for i in range(10)]
SHIFTED = {"x2": 0.1, "x7": 0.2}  # mean shift in standard deviations, second window only
DEPLOYMENT = "bench"


def write_logs(rows: int, seed: int = 7) -> None:
    from mloop.serving._predlog import PredictionLog, PredictionRecord

    rng = np.random.default_rng(seed)
    step = HOUR // rows
    with PredictionLog(fsync="off", compact_interval=None) as log:
        for window in range(2):
            data = rng.normal(size=(rows, len(FEATURES)))
            if window == 1:
                for name, shift in SHIFTED.items():
                    data[:, FEATURES.index(name)] += shift
            batch = []
            for n, row in enumerate(data):
                batch.append(
                    PredictionRecord(
                        request_id=f"w{window}-{n}",
                        time_ms=T0 + window * HOUR + n * step,
                        deployment=DEPLOYMENT,
                        model="bench",
                        version=1,
                        role="primary",
                        inputs={name: [float(v)] for name, v in zip(FEATURES, row, strict=True)},
                        outputs={"predictions": [int(row[0] > 0)]},
                        latency_ms=1.0 + (n % 7),
                    )
                )
                if len(batch) == 10_000:
                    log.append_many(batch)
                    batch = []
            if batch:
                log.append_many(batch)
        log.compact_now()


def run_mloop() -> tuple[float, list[str]]:
    from mloop.monitoring import MonitorConfig, run_monitor

    config = MonitorConfig(min_rows=10)
    run_monitor(DEPLOYMENT, now_ms=T0 + HOUR, config=config)  # the previous window, stored
    started = time.perf_counter()
    result = run_monitor(DEPLOYMENT, now_ms=T0 + 2 * HOUR, config=config)
    elapsed = time.perf_counter() - started
    (window,) = result.windows
    return elapsed, list(window.metrics["drift"]["drifted_features"])


def _frame(start_ms: int) -> Any:
    import orjson
    import pandas as pd

    from mloop.serving import read_predictions

    table = read_predictions(None, DEPLOYMENT, start_ms, start_ms + HOUR)
    rows = [orjson.loads(text) for text in table.column("inputs").to_pylist()]
    return pd.DataFrame({name: [r[name][0] for r in rows] for name in FEATURES})


def run_baseline() -> tuple[str, float, list[str]]:
    import pandas  # noqa: F401 - imported before the clock starts, like mloop's warm-up run
    import scipy.stats  # noqa: F401

    try:  # imported before the clock starts too
        from evidently import Report  # type: ignore[import-not-found]
        from evidently.presets import DataDriftPreset  # type: ignore[import-not-found]
    except ImportError:
        Report = None

    started = time.perf_counter()
    reference, current = _frame(T0), _frame(T0 + HOUR)
    if Report is None:
        from scipy.stats import ks_2samp

        drifted = [
            name
            for name in FEATURES
            if ks_2samp(reference[name], current[name]).pvalue < 0.05  # scipy's usual test
        ]
        return "pandas + scipy ks_2samp", time.perf_counter() - started, drifted
    snapshot = Report([DataDriftPreset()]).run(reference_data=reference, current_data=current)
    drifted = []  # each ValueDrift holds a distance (drift at >= threshold) or a p-value (<)
    for metric in json.loads(snapshot.json())["metrics"]:
        config = metric.get("config", {})
        if str(config.get("type", "")).endswith("ValueDrift"):
            value, threshold = float(metric["value"]), config["threshold"]
            p_value = "p_value" in str(config.get("method", "")).lower()
            if (value < threshold) if p_value else (value >= threshold):
                drifted.append(config["column"])
    return "Evidently DataDriftPreset", time.perf_counter() - started, drifted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="predictions per window")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ["MLOOP_HOME"] = str(Path(home) / "home")
        os.chdir(home)
        started = time.perf_counter()
        write_logs(args.rows)
        print(f"setup: {2 * args.rows:,} predictions logged and compacted in "
              f"{time.perf_counter() - started:.1f} s (not timed below)")  # fmt: skip
        mloop_s, mloop_found = run_mloop()
        name, base_s, base_found = run_baseline()
    print(f"injected drift: {', '.join(f'{k} +{v} std' for k, v in SHIFTED.items())}")
    print(f"mloop run_monitor (one window, {args.rows:,} predictions): {mloop_s:.2f} s, "
          f"flagged {mloop_found}")  # fmt: skip
    print(f"{name} (both windows read + parsed): {base_s:.2f} s, flagged {base_found}")
    print(f"ratio baseline / mloop: {base_s / mloop_s:.2f}x")


if __name__ == "__main__":
    main()
