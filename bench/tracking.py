"""Tracking benchmarks: mloop beside MLflow, same workload, same machine, one run.

    python bench/tracking.py            # quick sizes (a few minutes)
    python bench/tracking.py --full     # the sizes named in the issue
    python bench/tracking.py --only runs --full --repeat 3   # run creation alone, repeated

MLflow runs only when it is importable (``pip install -e '.[bench]'``). Every section
prints mloop's figure, MLflow's, and the ratio (how many times faster mloop is).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil

import mloop
from mloop.tracking import _fluent

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
os.environ.setdefault("MLOOP_CAPTURE", "true")
os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"

try:
    import mlflow
    from mlflow.entities import Metric as MlflowMetric
    from mlflow.tracking import MlflowClient
except ImportError:  # the comparison is skipped, mloop's figures still print
    mlflow = None


ROWS: list[tuple[str, str, str, str]] = []


def report(section: str, what: str, ours: float, theirs: float | None, unit: str) -> None:
    ratio = f"{theirs / ours:8.1f}x" if theirs is not None and ours > 0 else "      —"
    theirs_text = f"{theirs:12.4f}" if theirs is not None else "           —"
    line = f"{section:<14} {what:<46} mloop {ours:12.4f}  mlflow {theirs_text} {unit:<8} {ratio}"
    print(line, flush=True)
    ROWS.append((section, what, f"{ours:.4f}", ratio.strip()))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tree_rss_mb(pid: int) -> tuple[float, int]:
    proc = psutil.Process(pid)
    procs = [proc, *proc.children(recursive=True)]
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += p.memory_info().rss
    return total / 2**20, len(procs)


@contextlib.contextmanager
def server(
    cmd: list[str], port: int, env: dict[str, str]
) -> Iterator[tuple[float, float, int, int]]:
    """Start a server, yield (seconds to answer /health, RSS MB, processes, pid), stop it."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = start + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                    break
            except OSError:
                if time.perf_counter() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"server {cmd[0]} did not start") from None
                time.sleep(0.02)
        ready = time.perf_counter() - start
        time.sleep(0.5)
        rss, count = tree_rss_mb(proc.pid)
        yield ready, rss, count, proc.pid
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(proc.pid).children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
        proc.kill()
        proc.wait()


def settle(pid: int, idle_percent: float = 10.0, limit: float = 120.0) -> float:
    """Wait until a server's processes are idle; return the seconds waited.

    MLflow's server answers /health while its job-runner processes are still starting and
    keep both cores busy for a while; timing anything then would charge that to whoever
    runs at that moment.
    """
    start = time.perf_counter()
    root = psutil.Process(pid)
    while time.perf_counter() - start < limit:
        procs = [root, *root.children(recursive=True)]
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.cpu_percent(None)
        time.sleep(1.0)
        busy = 0.0
        for p in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                busy += p.cpu_percent(None)
        if busy < idle_percent:
            break
    return time.perf_counter() - start


def mloop_server(home: Path) -> tuple[list[str], int, dict[str, str]]:
    port = free_port()
    env = {**os.environ, "MLOOP_HOME": str(home)}
    return [sys.executable, "-m", "mloop.server", "--port", str(port)], port, env


def mlflow_server(home: Path, workers: int) -> tuple[list[str], int, dict[str, str]]:
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--backend-store-uri",
        f"sqlite:///{home}/mlflow.db",
        "--default-artifact-root",
        str(home / "mlartifacts"),
        "--workers",
        str(workers),
    ]
    return cmd, port, dict(os.environ)


def use_mloop(uri: str | None, home: Path) -> None:
    _fluent._reset_for_tests()
    os.environ["MLOOP_HOME"] = str(home)
    mloop.set_tracking_uri(uri)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# -- workloads -------------------------------------------------------------------------------


def mloop_single_metrics(n: int) -> float:
    mloop.set_experiment(f"single-{random.random()}")

    def work() -> None:
        with mloop.start_run():
            for i in range(n):
                mloop.log_metric("loss", 1.0 / (i + 1), step=i)

    return timed(work) / n


def mlflow_single_metrics(n: int) -> float:
    mlflow.set_experiment(f"single-{random.random()}")

    def work() -> None:
        with mlflow.start_run():
            for i in range(n):
                mlflow.log_metric("loss", 1.0 / (i + 1), step=i)

    return timed(work) / n


def mloop_batched(n: int) -> float:
    mloop.set_experiment(f"batched-{random.random()}")

    def work() -> None:
        with mloop.start_run():
            for i in range(0, n, 10):
                mloop.log_metrics({f"m{j}": float(i + j) for j in range(10)}, step=i)

    return timed(work)


def mlflow_batched(n: int) -> float:
    mlflow.set_experiment(f"batched-{random.random()}")
    client = MlflowClient()

    def work() -> None:
        with mlflow.start_run() as run:
            now = int(time.time() * 1000)
            points = [MlflowMetric(f"m{i % 10}", float(i), now, i - i % 10) for i in range(n)]
            for k in range(0, n, 1000):
                client.log_batch(run.info.run_id, metrics=points[k : k + 1000])

    return timed(work)


def create_runs(module: object, n: int, experiment: str) -> float:
    m = module

    def work() -> None:
        m.set_experiment(experiment)  # type: ignore[attr-defined]
        for i in range(n):
            with m.start_run():  # type: ignore[attr-defined]
                m.log_params({f"p{j}": f"v{(i + j) % 7}" for j in range(10)})  # type: ignore[attr-defined]
                m.log_metrics({f"m{j}": random.random() for j in range(5)})  # type: ignore[attr-defined]

    return timed(work)


def search(module: object, experiment: str) -> tuple[float, int]:
    m = module
    start = time.perf_counter()
    runs = m.search_runs(  # type: ignore[attr-defined]
        experiment_names=[experiment],
        filter_string="metrics.m0 > 0.5 and params.p1 = 'v3'",
        order_by=["metrics.m1 DESC"],
        max_results=100,
        **({} if m is mlflow else {"output_format": "list"}),
    )
    return time.perf_counter() - start, len(runs)


# -- sections --------------------------------------------------------------------------------


def section_embedded(args: argparse.Namespace, tmp: Path) -> None:
    use_mloop(None, tmp / "mloop-embedded")
    ours = mloop_single_metrics(args.metrics)
    theirs = None
    if mlflow:
        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow-embedded.db")
        theirs = mlflow_single_metrics(args.mlflow_metrics)
    report(
        "embedded",
        f"log_metric, per call ({args.metrics:,} calls)",
        ours * 1e3,
        theirs * 1e3 if theirs else None,
        "ms",
    )

    ours = mloop_batched(args.batched)
    theirs = mlflow_batched(args.batched) if mlflow else None
    report("embedded", f"{args.batched:,} points batched, total", ours, theirs, "s")

    n = args.runs
    ours = create_runs(mloop, n, "create")
    theirs = (
        create_runs(mlflow, args.mlflow_runs, "create") * n / args.mlflow_runs if mlflow else None
    )
    report("embedded", f"create {n:,} runs (10 params, 5 metrics)", ours, theirs, "s")
    ours_s, found = search(mloop, "create")
    theirs_s = search(mlflow, "create")[0] if mlflow else None
    report(
        "embedded",
        f"search_runs filter+order ({found} hits)",
        ours_s * 1e3,
        theirs_s * 1e3 if theirs_s else None,
        "ms",
    )


def section_server(args: argparse.Namespace, tmp: Path) -> None:
    cmd, port, env = mloop_server(tmp / "mloop-server")
    with server(cmd, port, env) as (ready, rss, procs, _):
        report("startup", f"mloop server ready (/health), {procs} process(es)", ready, None, "s")
        report("startup", "mloop server RSS", rss, None, "MB")
        use_mloop(f"http://127.0.0.1:{port}", tmp / "unused")
        ours = mloop_single_metrics(args.metrics)
        ours_runs = create_runs(mloop, args.runs, "create")
        ours_search = search(mloop, "create")[0]
        _fluent._reset_for_tests()
    if not mlflow:
        return
    for workers in (1, 4):
        home = tmp / f"mlflow-server-{workers}"
        home.mkdir()
        cmd, port, env = mlflow_server(home, workers)
        with server(cmd, port, env) as (their_ready, their_rss, their_procs, _):
            report(
                "startup", f"ready (/health) vs mlflow {workers} workers", ready, their_ready, "s"
            )
            report(
                "startup",
                f"RSS vs mlflow {workers} workers ({their_procs} procs)",
                rss,
                their_rss,
                "MB",
            )
            mlflow.set_tracking_uri(f"http://127.0.0.1:{port}")
            theirs = mlflow_single_metrics(args.mlflow_server_metrics)
            report(
                "server",
                f"log_metric per call vs mlflow {workers} workers",
                ours * 1e3,
                theirs * 1e3,
                "ms",
            )
            if workers == 1:
                theirs_runs = (
                    create_runs(mlflow, args.mlflow_runs, "create") * args.runs / args.mlflow_runs
                )
                report(
                    "server",
                    f"create {args.runs:,} runs (mlflow extrapolated)",
                    ours_runs,
                    theirs_runs,
                    "s",
                )
                theirs_search = search(mlflow, "create")[0]
                report(
                    "server",
                    "search_runs filter+order",
                    ours_search * 1e3,
                    theirs_search * 1e3,
                    "ms",
                )


def section_scale(args: argparse.Namespace, tmp: Path) -> None:
    """Search over many runs, populated through the backend in big batches (no MLflow)."""
    from mloop.artifacts import open_artifact_store
    from mloop.store import open_store
    from mloop.tracking import Metric, Param
    from mloop.tracking._sql_backend import SqlBackend

    uris = {"sqlite": f"sqlite:///{tmp}/scale.db"}
    pg = os.environ.get(
        "MLOOP_BENCH_PG_URI", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    with contextlib.suppress(Exception):
        from sqlalchemy import create_engine, text

        admin = create_engine(pg, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("DROP DATABASE IF EXISTS mloop_bench WITH (FORCE)"))
            conn.execute(text("CREATE DATABASE mloop_bench"))
        uris["postgresql"] = pg.rsplit("/", 1)[0] + "/mloop_bench"
    for name, uri in uris.items():
        backend = SqlBackend(open_store(uri), open_artifact_store(str(tmp / "scale-blobs")))
        exp = backend.create_experiment("scale")
        start = time.perf_counter()
        rng = random.Random(0)
        for i in range(args.scale):
            run = backend.create_run(
                exp, run_name=None, user_id=None, start_time=i, tags={}, parent_run_id=None
            )
            backend.log_batch(
                run.info.run_id,
                metrics=[Metric(f"m{j}", rng.random(), 0, 0) for j in range(20)],
                params=[Param(f"p{j}", f"v{rng.randrange(10)}") for j in range(20)],
            )
        built = time.perf_counter() - start
        report("scale", f"{name}: create {args.scale:,} runs x 20p x 20m", built, None, "s")
        if name == "postgresql":  # what autovacuum does after a bulk load, done now
            from sqlalchemy import text

            with backend.store.engine.begin() as conn:
                conn.execute(text("ANALYZE"))
        timings = []
        for _ in range(5):
            t0 = time.perf_counter()
            runs, _ = backend.search_runs(
                [exp],
                "metrics.m0 > 0.9 and params.p3 = 'v7'",
                order_by=["metrics.m1 DESC"],
                max_results=100,
            )
            timings.append(time.perf_counter() - t0)
        report(
            "scale",
            f"{name}: search first page of 100 ({len(runs)} hits), best of 5",
            min(timings) * 1e3,
            None,
            "ms",
        )
        backend.close()


def section_runs(args: argparse.Namespace, tmp: Path) -> None:
    """Run creation alone, repeated, mloop and MLflow alternating (the noisiest goal).

    Each store is warmed up first (created and migrated, imports done), so the timing is
    the runs alone. Both servers stay up together and take turns, so a busy moment on a
    shared machine hits both sides rather than one; MLflow's server is first left to finish
    starting (see :func:`settle`).
    """
    use_mloop(None, tmp / "mloop-runs")
    create_runs(mloop, 5, "warm-up")
    if mlflow:
        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow-runs.db")
        create_runs(mlflow, 5, "warm-up")
    for attempt in range(1, args.repeat + 1):
        ours = create_runs(mloop, args.runs, f"runs-{attempt}")
        theirs = None
        if mlflow:
            theirs = create_runs(mlflow, args.mlflow_runs, f"runs-{attempt}")
            theirs *= args.runs / args.mlflow_runs
        report("runs", f"embedded: create {args.runs:,} runs, try {attempt}", ours, theirs, "s")
    _fluent._reset_for_tests()

    cmd, port, env = mloop_server(tmp / "mloop-runs-server")
    with contextlib.ExitStack() as stack:
        stack.enter_context(server(cmd, port, env))
        ours_uri = f"http://127.0.0.1:{port}"
        theirs_uri = None
        if mlflow:
            home = tmp / "mlflow-runs-server"
            home.mkdir()
            their_cmd, their_port, their_env = mlflow_server(home, 1)
            their_pid = stack.enter_context(server(their_cmd, their_port, their_env))[3]
            theirs_uri = f"http://127.0.0.1:{their_port}"
            mlflow.set_tracking_uri(theirs_uri)
            create_runs(mlflow, 5, "warm-up")
            waited = settle(their_pid)
            print(f"(mlflow server busy starting its job runners: waited {waited:.0f} s)")
        use_mloop(ours_uri, tmp / "unused")
        create_runs(mloop, 5, "warm-up")
        for attempt in range(1, args.repeat + 1):
            ours = create_runs(mloop, args.runs, f"runs-{attempt}")
            theirs = None
            if mlflow:
                theirs = create_runs(mlflow, args.mlflow_runs, f"runs-{attempt}")
                theirs *= args.runs / args.mlflow_runs
            report(
                "runs",
                f"server (mlflow 1 worker): create {args.runs:,}, try {attempt}",
                ours,
                theirs,
                "s",
            )
        _fluent._reset_for_tests()


SECTIONS = {
    "embedded": section_embedded,
    "server": section_server,
    "scale": section_scale,
    "runs": section_runs,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="the issue's sizes (slow for MLflow)")
    parser.add_argument(
        "--only",
        default="embedded,server,scale",
        help=f"comma-separated sections to run, of: {', '.join(SECTIONS)}",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="attempts of the 'runs' section (default 3)"
    )
    args = parser.parse_args()
    full = args.full
    args.metrics = 10_000
    args.mlflow_metrics = 10_000 if full else 1_000
    args.mlflow_server_metrics = 2_000 if full else 300
    args.batched = 100_000
    args.runs = 1_000
    args.mlflow_runs = 1_000 if full else 100
    args.scale = 100_000 if full else 10_000
    print(
        f"mloop {mloop.__version__}, mlflow {mlflow.__version__ if mlflow else 'not installed'}, "
        f"{os.cpu_count()} cores; ratio = mlflow / mloop (higher is better for mloop)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only.split(","):
            SECTIONS[name](args, Path(tmp))


if __name__ == "__main__":
    main()
