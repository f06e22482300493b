"""Nothing acknowledged is lost: many writers, exceptions, and interpreter exit."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import mloop
from mloop.tracking import MloopClient

POINTS = 300


def _writer(home: str, index: int) -> None:
    os.environ["MLOOP_HOME"] = home
    os.environ["MLOOP_FLUSH_INTERVAL"] = "0.05"
    os.environ["MLOOP_CAPTURE"] = "false"
    mloop.set_experiment("concurrent")
    with mloop.start_run(run_name=f"writer-{index}"):
        mloop.log_param("index", index)
        for step in range(POINTS):
            mloop.log_metric("value", float(step), step=step)
            if step % 50 == 0:
                mloop.log_metric("sync", float(step), step=step, synchronous=True)


def test_eight_processes_log_to_one_sqlite_store(tmp_path: Path) -> None:
    home = str(tmp_path / "shared-home")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(home, i)) for i in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0] * 8
    os.environ["MLOOP_HOME"] = home
    runs = mloop.search_runs(experiment_names=["concurrent"])
    assert isinstance(runs, list)
    assert len(runs) == 8
    client = MloopClient()
    for run in runs:
        assert run.info.status == "FINISHED"
        history = client.get_metric_history(run.info.run_id, "value")
        assert [m.step for m in history] == list(range(POINTS))


def _script(body: str, home: Path) -> subprocess.CompletedProcess[str]:
    code = "import mloop\n" + textwrap.dedent(body)
    env = {**os.environ, "MLOOP_HOME": str(home), "MLOOP_FLUSH_INTERVAL": "60"}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def test_points_survive_interpreter_exit_and_uncaught_exceptions(tmp_path: Path) -> None:
    home = tmp_path / "home"
    clean = _script(
        """
        mloop.set_experiment("exit")
        mloop.start_run(run_name="no-end")
        for i in range(1000):
            mloop.log_metric("m", float(i), step=i)
        """,
        home,
    )
    assert clean.returncode == 0, clean.stderr
    crashed = _script(
        """
        mloop.set_experiment("exit")
        mloop.start_run(run_name="crash")
        for i in range(1000):
            mloop.log_metric("m", float(i), step=i)
        raise SystemExit("boom")
        """,
        home,
    )
    assert crashed.returncode == 1
    os.environ["MLOOP_HOME"] = str(home)
    client = MloopClient()
    runs = mloop.search_runs(experiment_names=["exit"])
    assert isinstance(runs, list)
    assert {r.info.run_name for r in runs} == {"no-end", "crash"}
    for run in runs:
        assert len(client.get_metric_history(run.info.run_id, "m")) == 1000
