"""Pipelines on a real local Ray: steps become tasks with their resource requests,
results equal in-process ones, a request no node can meet fails at once, and a failed
execution resumes."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mloop
from mloop.pipelines import Resources, resume, run
from tests.unit.pipelines import pipes

try:
    import ray
except ImportError:  # pragma: no cover - depends on the environment
    if os.environ.get("CI"):
        raise
    pytest.skip("Ray is not installed (pip install 'mloop[ray]')", allow_module_level=True)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(300),
    # Ray's own modules trip these on import and shutdown; nothing of mloop's.
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("ignore:.*pkg_resources.*:UserWarning"),
]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}},  # workers import the test steps
    )
    yield ray
    ray.shutdown()


@pytest.fixture
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated SQLite store (the backends themselves are covered by the unit tests)."""
    template: Path = request.getfixturevalue("_migrated_sqlite")
    target = tmp_path / "pipelines.db"
    with sqlite3.connect(template) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    monkeypatch.setenv("MLOOP_DB_URI", f"sqlite:///{target}")
    monkeypatch.setenv("MLOOP_CAPTURE", "false")
    return f"sqlite:///{target}"


@mloop.step(resources=Resources(cpus=3))
def greedy() -> int:
    return 1


@mloop.pipeline
def too_big() -> Any:
    return greedy()


def test_steps_run_as_ray_tasks_with_the_same_results(local_ray: Any, store: str) -> None:
    here = run(pipes.simple, {"rows": 6}, no_cache=True)
    remote = run(pipes.simple, {"rows": 6}, executor="ray", no_cache=True)
    assert remote.status == "succeeded", remote.reason
    assert remote.executor == "ray"
    assert remote.output("totals") == here.output("totals")
    assert remote.output("doubled").equals(here.output("doubled"))
    workers = {line.split()[1] for line in _calls()[3:]}
    assert str(os.getpid()) not in workers
    step_run = mloop.get_run(remote.step("double").run_id or "")
    assert step_run.info.parent_run_id == remote.run_id
    cached = run(pipes.simple, {"rows": 6}, executor="ray")
    assert {s.status for s in cached.steps} == {"cached"}


def test_a_request_no_node_can_meet_fails_at_once(local_ray: Any, store: str) -> None:
    failed = run(too_big, executor="ray")
    assert failed.status == "failed"
    assert "asks for 3 CPU, more than the Ray cluster has" in (failed.reason or "")


def test_retries_failure_and_resume_on_ray(
    local_ray: Any, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOOP_EXECUTOR", "ray")
    retried = run(pipes.retrying, {"failures": 1})
    assert retried.status == "succeeded", retried.reason
    assert retried.step("flaky").attempts == 2
    pipes.broken_flag().touch()
    failed = run(pipes.breakable, {"rows": 4})
    assert failed.status == "failed"
    assert "the fragile step is broken" in (failed.reason or "")
    pipes.broken_flag().unlink()
    resumed = resume(failed.id)
    assert resumed.status == "succeeded", resumed.reason
    assert resumed.output() == {"sum": 2.0, "rows": 2.0}


def _calls() -> list[str]:
    return (Path(os.environ["MLOOP_HOME"]) / "calls.log").read_text().splitlines()
