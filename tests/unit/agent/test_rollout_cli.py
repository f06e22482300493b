"""`mloop rollout`: plans saved from YAML, start/status/list/abort by id, prefix or
deployment, and bad input as one line with exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from mloop.agent import advance_rollouts, get_rollout
from tests.unit.agent._rollout_world import (
    MINUTE,
    World,
)
from tests.unit.cli.helpers import one_error_line, run_cli, run_json

PLAN = """
steps:
  - shadow 1m
  - canary 10% 1m
  - 100%
checks:
  min_requests: 20
  max_wait: 5m
"""


@pytest.fixture
def plan_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COLUMNS", "200")  # one table row per line
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN)
    return path


def test_plans_from_yaml(
    sqlite_world: World, plan_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "rollout", "plan", "save", "quick", str(plan_file))
    assert (code, out.strip()) == (0, "Saved plan quick: shadow 1m → canary 10% 1m → 100%")
    (listed,) = run_json(capsys, "rollout", "plan", "list")
    assert listed["name"] == "quick"
    assert listed["plan"]["checks"]["min_requests"] == 20
    code, out, _ = run_cli(capsys, "rollout", "plan", "show", "quick")
    assert "min_requests" in out
    assert "@champion" in out
    code, out, _ = run_cli(capsys, "rollout", "plan", "delete", "quick")
    assert (code, out.strip()) == (0, "Deleted plan quick")
    assert run_json(capsys, "rollout", "plan", "list") == []

    plan_file.write_text("steps:\n  - canary 5%\n  - 100%\n")
    code, _, err = run_cli(capsys, "rollout", "plan", "save", "bad", str(plan_file))
    assert code == 2
    assert one_error_line(err) == (
        "error: plan.yaml: steps[0] (canary 5%) needs a window: how long it is held and "
        "checked, e.g. window: 10m"
    )
    plan_file.write_text("checks: {min_request: 3}\n")
    code, _, err = run_cli(capsys, "rollout", "plan", "save", "bad", str(plan_file))
    assert "checks.min_request: unknown field" in one_error_line(err)
    plan_file.write_text("steps: [shadow 1m\n")
    code, _, err = run_cli(capsys, "rollout", "plan", "save", "bad", str(plan_file))
    assert "plan.yaml is not valid YAML" in one_error_line(err)


def test_start_status_list_abort(
    sqlite_world: World, plan_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(
        capsys, "rollout", "start", "fraud", "--candidate", "iris:2", "--plan", str(plan_file)
    )
    assert code == 0
    assert out.startswith("Started rollout ")
    assert "of iris:2 on fraud (primary iris:1): step 1/3: shadow" in out
    rollout_id = out.split()[2]

    status = run_json(capsys, "rollout", "status", "fraud")  # by deployment
    assert (status["id"], status["state"], status["step"]) == (rollout_id, "running", 0)
    assert [e["kind"] for e in status["events"]] == ["started", "step"]
    started = status["step_started_ms"]
    sqlite_world.serve(started, started + MINUTE, 100)
    advance_rollouts(started + MINUTE // 2)  # a check while the step holds
    code, out, _ = run_cli(capsys, "rollout", "status", rollout_id[:10])  # by prefix
    assert code == 0
    assert "● shadow 1m █████░░░░░" in out
    assert "○ canary 10% 1m" in out
    assert "requests" in out
    assert "passing" in out

    listed = run_json(capsys, "rollout", "list", "--state", "running")
    assert [r["id"] for r in listed] == [rollout_id]
    code, out, _ = run_cli(capsys, "rollout", "list")
    assert rollout_id in out
    assert "step 1/3: shadow" in out

    code, _, err = run_cli(capsys, "rollout", "start", "fraud", "-c", "iris:3")
    assert code == 2
    assert f"already has a running rollout {rollout_id}" in one_error_line(err)

    code, out, _ = run_cli(capsys, "rollout", "abort", "fraud", "--reason", "not today")
    assert (code, out.strip()) == (
        0,
        f"Aborted rollout {rollout_id}: fraud is back to iris:1 (revision 3)",
    )
    assert get_rollout(rollout_id).reason == "not today"
    code, out, _ = run_cli(capsys, "rollout", "status", rollout_id)
    assert "aborted" in out
    assert "✗ shadow 1m" in out
    code, _, err = run_cli(capsys, "rollout", "abort", rollout_id)
    assert "has ended (aborted); there is nothing to abort" in one_error_line(err)


def test_bad_input_is_one_line(sqlite_world: World, capsys: pytest.CaptureFixture[str]) -> None:
    for args, message in [
        (("rollout", "start", "fraud", "-c", "iris:1"), "already the primary of 'fraud'"),
        (("rollout", "start", "fraud", "-c", "iris:2", "--plan", "nope"), "plan 'nope'"),
        (("rollout", "status", "nothing-here"), "rollout 'nothing-here' does not exist"),
        (("rollout", "list", "--state", "done"), "state 'done' is not one of running"),
    ]:
        code, _, err = run_cli(capsys, *args)
        assert code == 2, args
        assert message in one_error_line(err), args
    code, out, _ = run_cli(capsys, "rollout", "list")
    assert out.startswith("No rollouts yet")
