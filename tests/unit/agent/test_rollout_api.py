"""The public surface of mloop.agent is pinned, and every name resolves on first use."""

from __future__ import annotations

import subprocess
import sys

import mloop.agent


def test_the_agent_api() -> None:
    assert set(mloop.agent.__all__) == {
        # rollouts and plans
        "Checks", "Rollout", "RolloutEvent", "RolloutPlan", "Step", "abort_rollout",
        "advance_rollouts", "delete_plan", "get_plan", "get_rollout", "list_plans",
        "list_rollouts", "rollout_events", "save_plan", "start_rollout", "write_rollout_html",
        # the agent: leader election and ticks
        "Lease", "NotLeader", "TickReport", "acquire_lease", "get_lease", "release_lease",
        "run_agent", "tick",
        # retraining triggers
        "Firing", "Trigger", "apply_triggers", "delete_trigger", "fire_trigger", "get_trigger",
        "list_firings", "list_triggers", "retraining_pipeline", "run_due", "save_trigger",
        "set_trigger_enabled",
    }  # fmt: skip
    for name in mloop.agent.__all__:
        assert getattr(mloop.agent, name) is not None


def test_importing_the_agent_package_loads_no_store() -> None:
    code = "import sys, mloop.agent; print(sorted({'sqlalchemy', 'pydantic'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
