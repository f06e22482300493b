"""docs/rollouts.md stays true: its plan file is a valid plan, and the default plan and
the checks' defaults it states are the code's."""

from __future__ import annotations

import re
from pathlib import Path

from mloop.agent import RolloutPlan

DOC = Path(__file__).parents[3] / "docs" / "rollouts.md"


def test_the_documented_plan_file_is_valid() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert len(blocks) == 1
    import yaml

    plan = RolloutPlan.parse(yaml.safe_load(blocks[0]), source="docs/rollouts.md")
    assert plan.describe() == ("shadow 30m → canary 1% 30m → canary 10% 1h → canary 50% 1h → 100%")
    assert plan.checks.max_mae_ratio is None


def test_the_documented_defaults() -> None:
    text = DOC.read_text()
    default = RolloutPlan()
    assert default.describe() in text
    checks = default.checks
    for name, value in [
        ("max_error_rate_increase", checks.max_error_rate_increase),
        ("max_divergence", checks.max_divergence),
        ("min_online_metric_delta", checks.min_online_metric_delta),
        ("max_mae_ratio", checks.max_mae_ratio),
    ]:
        shown = f"{value:g}".replace("-", "−")
        assert re.search(rf"`{name}` \|[^\n]*\| {re.escape(shown)} \|", text), name
    assert f"default {checks.min_requests})" in text
    assert f"(default {checks.max_wait};" in text
