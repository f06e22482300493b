"""`mloop monitor …` in-process: run, show (sparklines, HTML), rules, alerts, watch."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.fixtures.monitoring import HOUR, T0, Traffic, register_training, serve_window
from tests.unit.cli.helpers import one_error_line, run_cli, run_json

RULES = """
name: iris-drift
deployment: iris
metric: drift.max_score
threshold: 0.3
sinks: [log]
---
- name: iris-errors
  deployment: iris
  metric: error_rate
  op: ">="
  threshold: 0.2
  window: 1h
  for: 1h
"""
CONFIG = """
window: 1h
min_rows: 20
drift:
  defaults:
    numeric: {method: wasserstein, threshold: 0.25}
"""


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


@pytest.fixture
def setup(traffic: Traffic, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    register_training()
    (tmp_path / "rules.yaml").write_text(RULES)
    (tmp_path / "monitor.yaml").write_text(CONFIG)
    assert run_cli(capsys, "monitor", "config", "iris", str(tmp_path / "monitor.yaml"))[0] == 0
    for hour in range(3):
        serve_window(
            traffic, T0 + hour * HOUR, 200, seed=hour, shift={3: 1.5} if hour == 2 else None
        )
    return tmp_path


def test_rules_apply_list_delete(setup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    applied = run_json(capsys, "monitor", "rules", "apply", str(setup / "rules.yaml"))
    assert applied == [
        {"name": "iris-drift", "action": "created"},
        {"name": "iris-errors", "action": "created"},
    ]
    again = run_json(capsys, "monitor", "rules", "apply", str(setup / "rules.yaml"))
    assert [a["action"] for a in again] == ["unchanged", "unchanged"]
    listed = run_json(capsys, "monitor", "rules", "list")
    assert [r["name"] for r in listed] == ["iris-drift", "iris-errors"]
    assert listed[1]["for"] == "1h"
    code, out, _ = run_cli(capsys, "monitor", "rules", "delete", "iris-errors")
    assert code == 0
    assert "Deleted" in out
    code, _, err = run_cli(capsys, "monitor", "rules", "delete", "iris-errors")
    assert code == 2
    assert "does not exist" in one_error_line(err)


def test_a_bad_rule_file_names_the_field(setup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = setup / "bad.yaml"
    bad.write_text("name: x\ndeployment: iris\nmetric: drift.max_score\nthreshold: high\n")
    code, _, err = run_cli(capsys, "monitor", "rules", "apply", str(bad))
    assert code == 2
    assert "threshold" in one_error_line(err)
    bad.write_text("name: x\ndeployment: iris\nmetric: vibes\nthreshold: 1\n")
    code, _, err = run_cli(capsys, "monitor", "rules", "apply", str(bad))
    assert "unknown metric 'vibes'" in one_error_line(err)


def test_run_show_and_alerts(setup: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_cli(capsys, "monitor", "rules", "apply", str(setup / "rules.yaml"))
    result = run_json(capsys, "monitor", "run", "iris", "--at", _iso(T0 + 3 * HOUR))
    assert [w["start_ms"] for w in result["windows"]] == [T0 + HOUR, T0 + 2 * HOUR]
    assert [a["rule"] for a in result["fired"]] == ["iris-drift"]

    code, out, _ = run_cli(capsys, "monitor", "run", "iris", "--at", _iso(T0 + 3 * HOUR))
    assert code == 0
    assert "already computed" in out
    assert "still firing" in out

    code, out, _ = run_cli(capsys, "monitor", "show", "iris", "--html", str(setup / "m.html"))
    assert code == 0
    assert "input drift" in out
    assert any(ch in out for ch in "▁▂▃▄▅▆▇█")
    page = (setup / "m.html").read_text()
    assert page.count("<svg") >= 4
    assert "iris-drift" in page
    assert "<script" not in page

    alerts = run_json(capsys, "monitor", "alerts", "iris", "--firing")
    assert [a["rule"] for a in alerts] == ["iris-drift"]


def test_run_now_computes_the_window_in_progress(
    setup: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_json(
        capsys, "monitor", "run", "iris", "--now", "--at", _iso(T0 + 2 * HOUR + HOUR // 2)
    )
    partial = result["windows"][-1]
    assert partial["partial"] is True
    assert partial["metrics"]["count"] == 100


def test_watch_runs_a_bounded_number_of_rounds(
    setup: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(
        capsys, "monitor", "watch", "iris", "--every", "20ms", "--max-runs", "2"
    )
    assert code == 0, err
    assert out.count("iris:") == 2
    code, _, err = run_cli(capsys, "monitor", "watch", "--cron", "every minute", "--max-runs", "1")
    assert code == 2
    assert "cron" in one_error_line(err)


def test_show_without_windows(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "monitor", "show", "nothing")
    assert code == 0
    assert "No 1h windows" in out
    code, _, err = run_cli(capsys, "monitor", "run", "iris", "--window", "forever")
    assert code == 2
    assert "not a duration" in one_error_line(err)
    assert json.loads(run_cli(capsys, "monitor", "config", "iris")[1])["window"] == "1h"
