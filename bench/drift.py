"""Drift benchmark: mloop beside Evidently and a raw Polars scan, same data, one run.

    python bench/drift.py                              # 1M + 1M rows, every tool importable here
    python bench/drift.py --rows 200000                # quicker
    python bench/drift.py --evidently-python /tmp/ev/bin/python   # Evidently from its own venv
    python bench/drift.py --only evidently --data-dir D          # inside Evidently's venv

Evidently 0.7 needs pandas < 3, so it usually lives in its own environment:

    python -m venv /tmp/ev && /tmp/ev/bin/pip install evidently 'pandas<3' pyarrow psutil

The data set is generated once (numpy Generator, fixed seed) into Parquet files under
``--data-dir`` (a temp folder by default): 20 numeric and 5 categorical columns, with drift
injected in six of them and the rest drawn again from the same distributions. Every tool
runs in a fresh subprocess whose process tree is polled with psutil for peak RSS; each
prints its wall time (reading the Parquet files to verdict), peak memory, the ratios, and
its confusion table against the injected truth.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

SEED = 20240917
NUMERIC = [f"n{i:02d}" for i in range(20)]
CATEGORICAL = [f"c{i}" for i in range(5)]
#: the injected changes: column -> what was done to the current frame
TRUTH = {
    "n03": "mean shift of 0.1 std (normal)",
    "n08": "mean shift of 0.1 std (log-normal)",
    "n07": "scale x1.2 around the mean (normal)",
    "n12": "missing share 1% -> 5%",
    "c1": "category shares move 3 points (a: 30% -> 27%, b: 15% -> 18%)",
    "c2": "5 never-seen categories take 5% of rows",
}
TOOLS = ("mloop", "polars", "evidently")


# -- data ------------------------------------------------------------------------------


def _numeric(rng: np.random.Generator, i: int, n: int, current: bool) -> np.ndarray:
    """Column ``n{i}``: ten distribution families, drift injected per TRUTH."""
    family = i % 10
    if family == 0:
        x = rng.normal(50, 10, n)
    elif family == 1:
        x = rng.lognormal(1, 0.8, n)
    elif family == 2:
        x = rng.exponential(3, n)
    elif family == 3:
        x = rng.normal(0, 1, n)
    elif family == 4:
        x = rng.uniform(-5, 5, n)
    elif family == 5:
        x = rng.poisson(4, n).astype(np.float64)
    elif family == 6:
        x = rng.integers(0, 1000, n).astype(np.float64)
    elif family == 7:
        x = rng.normal(100, 15, n)
    elif family == 8:
        x = rng.lognormal(0, 0.5, n)
    else:
        x = rng.gamma(2, 2, n)
    name = f"n{i:02d}"
    if current and name in ("n03", "n08"):
        std = {3: 1.0, 8: math.sqrt((math.exp(0.25) - 1) * math.exp(0.25))}[i]
        x = x + 0.1 * std
    if current and name == "n07":
        x = 100 + (x - 100) * 1.2
    if family == 9:  # a column with NaN
        x[rng.random(n) < 0.02] = np.nan
    return x


def _missing_share(name: str, current: bool) -> float:
    if name == "n12":
        return 0.05 if current else 0.01
    return 0.01 if name in ("n02", "n05", "n12", "n15") else 0.0


def _categorical(rng: np.random.Generator, i: int, n: int, current: bool) -> pa.Array:
    if i in (0, 1, 2):
        labels = [chr(ord("a") + k) for k in range(10)]
        probs = [0.30, 0.15, 0.12, 0.10, 0.09, 0.07, 0.06, 0.05, 0.04, 0.02]
        if current and i == 1:
            probs[0], probs[1] = 0.27, 0.18
        if current and i == 2:
            labels += [f"new_{k}" for k in range(5)]
            probs = [p * 0.95 for p in probs] + [0.01] * 5
    elif i == 3:  # 5 000 ids, Zipf-like
        labels = [f"id_{k:05d}" for k in range(5000)]
        weights = 1.0 / np.arange(1, 5001) ** 1.1
        probs = list(weights / weights.sum())
    else:  # a boolean-like flag with nulls
        labels = ["true", "false"]
        probs = [0.35, 0.65]
    p = np.asarray(probs, dtype=np.float64)
    codes = rng.choice(len(labels), size=n, p=p / p.sum())
    values = pc.take(pa.array(labels, pa.string()), pa.array(codes))
    if i == 4:
        mask = pa.array(rng.random(n) < 0.03)
        values = pc.if_else(mask, pa.scalar(None, pa.string()), values)
    return values


def frame(n: int, current: bool) -> pa.Table:
    rng = np.random.default_rng([SEED, int(current)])
    columns: dict[str, pa.Array] = {}
    for i, name in enumerate(NUMERIC):
        x = _numeric(rng, i, n, current)
        share = _missing_share(name, current)
        mask = rng.random(n) < share if share else None
        columns[name] = pa.array(x, pa.float64(), mask=mask)
    for i, name in enumerate(CATEGORICAL):
        columns[name] = _categorical(rng, i, n, current)
    return pa.table(columns)


def ensure_data(data_dir: Path, rows: int) -> tuple[Path, Path]:
    data_dir.mkdir(parents=True, exist_ok=True)
    ref, cur = data_dir / f"reference-{rows}.parquet", data_dir / f"current-{rows}.parquet"
    for path, current in ((ref, False), (cur, True)):
        if not path.exists():
            start = time.perf_counter()
            table = frame(rows, current)
            pq.write_table(table, path, row_group_size=128 * 1024)
            print(
                f"generated {path.name}: {table.num_rows:,} rows, "
                f"{table.nbytes / 2**20:.0f} MiB in Arrow, {time.perf_counter() - start:.1f} s",
                flush=True,
            )
    return ref, cur


def arrow_size_mb(paths: tuple[Path, Path]) -> float:
    return float(sum(pq.read_table(p).nbytes for p in paths)) / 2**20


# -- the tools (each runs in its own process) --------------------------------------------


def run_mloop(ref: Path, cur: Path) -> dict[str, Any]:
    from mloop.data._drift import detect_drift
    from mloop.data._statistics import compute_statistics

    start = time.perf_counter()
    ref_stats = compute_statistics(str(ref))
    cur_stats = compute_statistics(str(cur))
    statistics_done = time.perf_counter()
    report = detect_drift(ref_stats, cur_stats)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "statistics_seconds": statistics_done - start,
        "drift_seconds": seconds - (statistics_done - start),
        "flagged": report.drifted_features(),
        "scores": {f.name: [f.method, f.score, f.threshold] for f in report.features},
    }


def run_polars(ref: Path, cur: Path) -> dict[str, Any]:
    """The practical floor: one Polars pass per frame computing counts, moments and value
    counts, then 1 000-bin histograms on the reference's range (numpy bincount), and the
    same decisions as mloop's defaults (normalized Wasserstein 0.05, L-inf 0.01, presence
    0.01) computed from those histograms."""
    import polars as pl

    start = time.perf_counter()
    frames = [pl.read_parquet(ref), pl.read_parquet(cur)]
    summaries = []
    for df in frames:
        exprs: list[pl.Expr] = []
        for c in NUMERIC:
            col = pl.col(c)
            exprs += [
                col.null_count().alias(f"{c}:null"),
                col.is_nan().sum().alias(f"{c}:nan"),
                col.filter(col.is_not_nan()).min().alias(f"{c}:min"),
                col.filter(col.is_not_nan()).max().alias(f"{c}:max"),
                col.filter(col.is_not_nan()).std().alias(f"{c}:std"),
            ]
        exprs += [pl.col(c).null_count().alias(f"{c}:null") for c in CATEGORICAL]
        summaries.append(df.select(exprs).row(0, named=True))
    flagged: list[str] = []
    scores: dict[str, float] = {}
    rows = [f.height for f in frames]
    bins = 1000
    for c in NUMERIC:
        lo, hi = summaries[0][f"{c}:min"], summaries[0][f"{c}:max"]
        hists = []
        for df in frames:
            x = df.get_column(c).drop_nulls().drop_nans().to_numpy()
            idx = np.clip(((x - lo) / (hi - lo) * bins).astype(np.int64), -1, bins)
            hists.append(np.bincount(idx + 1, minlength=bins + 2) / max(x.size, 1))
        width = (hi - lo) / bins
        w = float(np.abs(np.cumsum(hists[0]) - np.cumsum(hists[1])).sum() * width)
        scores[c] = w / summaries[0][f"{c}:std"]
        presence = max(
            abs(summaries[1][f"{c}:{k}"] / rows[1] - summaries[0][f"{c}:{k}"] / rows[0])
            for k in ("null", "nan")
        )
        if scores[c] > 0.05 or presence > 0.01:
            flagged.append(c)
    for c in CATEGORICAL:
        counts = [dict(df.get_column(c).drop_nulls().value_counts().iter_rows()) for df in frames]
        keys = set(counts[0]) | set(counts[1])
        totals = [sum(x.values()) for x in counts]
        scores[c] = max(
            abs(counts[0].get(k, 0) / totals[0] - counts[1].get(k, 0) / totals[1]) for k in keys
        )
        presence = abs(summaries[1][f"{c}:null"] / rows[1] - summaries[0][f"{c}:null"] / rows[0])
        if scores[c] > 0.01 or presence > 0.01:
            flagged.append(c)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "flagged": flagged, "scores": scores}


def run_evidently(ref: Path, cur: Path) -> dict[str, Any]:
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    start = time.perf_counter()
    ref_df, cur_df = pd.read_parquet(ref), pd.read_parquet(cur)
    snapshot = Report([DataDriftPreset()]).run(current_data=cur_df, reference_data=ref_df)
    flagged, scores = [], {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if not str(config.get("type", "")).endswith("ValueDrift"):
            continue
        column, value, threshold = config["column"], float(metric["value"]), config["threshold"]
        p_value = "p_value" in str(config.get("method", "")).lower()
        scores[column] = [config.get("method"), value, threshold]
        if (value < threshold) if p_value else (value >= threshold):
            flagged.append(column)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "flagged": flagged, "scores": scores}


RUNNERS = {"mloop": run_mloop, "polars": run_polars, "evidently": run_evidently}


# -- orchestration ------------------------------------------------------------------------


def measure(python: str, tool: str, data_dir: Path, rows: int) -> dict[str, Any] | None:
    """Run one tool in a fresh process; poll its process tree for peak RSS."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    cmd = [python, __file__, "--only", tool, "--data-dir", str(data_dir), "--rows", str(rows)]
    cmd += ["--result-file", str(out)]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(cmd, env=env)
    root = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        total = 0
        try:
            for p in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
        except psutil.Error:
            pass
        peak = max(peak, total)
        time.sleep(0.02)
    if proc.returncode != 0 or not out.stat().st_size:
        print(f"{tool}: failed with exit code {proc.returncode}", flush=True)
        return None
    result: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    result["peak_mb"] = peak / 2**20
    return result


def confusion(flagged: list[str]) -> tuple[int, int, int, int, list[str], list[str]]:
    columns = NUMERIC + CATEGORICAL
    tp = sum(c in TRUTH and c in flagged for c in columns)
    fp_cols = [c for c in columns if c in flagged and c not in TRUTH]
    fn_cols = [c for c in columns if c in TRUTH and c not in flagged]
    tn = len(columns) - tp - len(fp_cols) - len(fn_cols)
    return tp, len(fp_cols), len(fn_cols), tn, fp_cols, fn_cols


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "mloop-drift-bench"
    )
    parser.add_argument("--only", help="comma-separated subset of " + ",".join(TOOLS))
    parser.add_argument("--evidently-python", help="interpreter of a venv with Evidently")
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    ref, cur = ensure_data(args.data_dir, args.rows)

    if args.result_file:  # child mode: run one tool, write its result
        tool = args.only
        args.result_file.write_text(json.dumps(RUNNERS[tool](ref, cur)))
        return

    wanted = args.only.split(",") if args.only else list(TOOLS)
    size = arrow_size_mb((ref, cur))
    print(
        f"\n{args.rows:,} + {args.rows:,} rows, {len(NUMERIC)} numeric + {len(CATEGORICAL)} "
        f"categorical columns; both frames {size:.0f} MiB in Arrow; {os.cpu_count()} CPUs"
    )
    print("injected drift: " + "; ".join(f"{k}: {v}" for k, v in TRUTH.items()) + "\n")
    results: dict[str, dict[str, Any]] = {}
    for tool in wanted:
        python = sys.executable
        if tool == "evidently":
            if args.evidently_python:
                python = args.evidently_python
            else:
                try:
                    import evidently  # noqa: F401
                except ImportError:
                    print(
                        "evidently: not importable here (it needs pandas < 3). Run it in its own venv:\n"
                        "  python -m venv /tmp/ev && /tmp/ev/bin/pip install evidently 'pandas<3' pyarrow psutil\n"
                        f"  python bench/drift.py --evidently-python /tmp/ev/bin/python --data-dir {args.data_dir}\n"
                        f"  (or: /tmp/ev/bin/python bench/drift.py --only evidently --data-dir {args.data_dir})\n"
                    )
                    continue
        result = measure(python, tool, args.data_dir, args.rows)
        if result is not None:
            results[tool] = result

    print(
        f"{'tool':<10} {'wall s':>8} {'peak MiB':>9} {'peak/Arrow':>10}   TP FP FN TN   false +/-"
    )
    for tool, r in results.items():
        tp, fp, fn, tn, fp_cols, fn_cols = confusion(r["flagged"])
        errors = ", ".join([f"+{c}" for c in fp_cols] + [f"-{c}" for c in fn_cols]) or "none"
        print(
            f"{tool:<10} {r['seconds']:8.2f} {r['peak_mb']:9.0f} {r['peak_mb'] / size:10.2f}   "
            f"{tp:2d} {fp:2d} {fn:2d} {tn:2d}   {errors}"
        )
    if "mloop" in results:
        ours = results["mloop"]["seconds"]
        print(
            f"mloop: statistics of both files {results['mloop']['statistics_seconds']:.2f} s, "
            f"drift over the statistics {results['mloop']['drift_seconds'] * 1000:.0f} ms"
        )
        for tool in ("polars", "evidently"):
            if tool in results:
                print(
                    f"mloop vs {tool}: {results[tool]['seconds'] / ours:.2f}x faster "
                    f"({ours / results[tool]['seconds']:.2f}x the {tool} time)"
                )
        print("\nmloop scores (method score / threshold):")
        for name, (method, score, threshold) in results["mloop"]["scores"].items():
            mark = "DRIFT" if name in results["mloop"]["flagged"] else ""
            truth = "injected" if name in TRUTH else ""
            print(f"  {name:<5} {method:<15} {score:10.5f} / {threshold:<6} {mark:<6} {truth}")


if __name__ == "__main__":
    main()
