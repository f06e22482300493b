"""`mloop triggers`: apply, list, show, history, delete; bad input is one line and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from mloop.registry import list_audit_log
from tests.unit.cli.helpers import one_error_line, run_cli, run_json

YAML = """
- name: nightly
  pipeline: mloop.agent:retraining_pipeline
  params: {data: churn@latest}
  on: {schedule: "0 3 * * *"}
- name: on-data
  pipeline: pkg.mod:fn
  cooldown: 1h
  enabled: false
  on:
    dataset: churn
"""


@pytest.fixture
def file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MLOOP_USER", "ada")
    monkeypatch.setenv("COLUMNS", "200")  # one table row per line
    path = tmp_path / "triggers.yaml"
    path.write_text(YAML)
    return path


def test_apply_is_idempotent_and_list_shows_the_triggers(
    file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "triggers", "apply", str(file))
    assert code == 0
    assert out.splitlines() == ["Created trigger nightly", "Created trigger on-data"]
    assert run_json(capsys, "triggers", "apply", str(file)) == [
        {"name": "nightly", "action": "unchanged"},
        {"name": "on-data", "action": "unchanged"},
    ]
    file.write_text(YAML.replace("cooldown: 1h", "cooldown: 2h"))
    assert [a["action"] for a in run_json(capsys, "triggers", "apply", str(file))] == [
        "unchanged",
        "updated",
    ]
    listed = run_json(capsys, "triggers", "list")
    assert [(t["name"], t["kind"], t["enabled"]) for t in listed] == [
        ("nightly", "schedule", True),
        ("on-data", "dataset", False),
    ]
    assert listed[0]["next_fire_ms"] % 86_400_000 == 3 * 3_600_000  # 03:00 UTC
    assert listed[0]["last_firing"] is None
    code, out, _ = run_cli(capsys, "triggers", "list")
    assert "schedule 0 3 * * * (UTC)" in out
    assert "(disabled)" in out
    assert "never" in out
    assert [e.action for e in list_audit_log(target="trigger:on-data")] == [
        "trigger.update",
        "trigger.create",
    ]


def test_show_history_and_delete(file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_cli(capsys, "triggers", "apply", str(file))
    shown = run_json(capsys, "triggers", "show", "on-data")
    assert shown["on"] == {"dataset": {"name": "churn", "param": "data"}}
    assert (shown["cooldown"], shown["recent"]) == ("1h", [])
    code, out, _ = run_cli(capsys, "triggers", "show", "nightly")
    assert code == 0
    assert "mloop.agent:retraining_pipeline" in out
    assert "Next" in out
    assert run_json(capsys, "triggers", "history") == []
    code, out, _ = run_cli(capsys, "triggers", "history", "nightly")
    assert (code, out.strip()) == (0, "No firings yet.")
    code, out, _ = run_cli(capsys, "triggers", "enable", "on-data")
    assert (code, out.strip()) == (0, "Enabled trigger on-data")
    assert run_json(capsys, "triggers", "show", "on-data")["enabled"] is True
    run_cli(capsys, "triggers", "disable", "on-data")
    assert run_json(capsys, "triggers", "show", "on-data")["enabled"] is False
    code, out, _ = run_cli(capsys, "triggers", "delete", "on-data")
    assert (code, out.strip()) == (0, "Deleted trigger on-data")
    assert [t["name"] for t in run_json(capsys, "triggers", "list")] == ["nightly"]


@pytest.mark.parametrize(
    ("args", "text", "message"),
    [
        (("show", "nope"), None, "trigger 'nope' does not exist"),
        (("delete", "nope"), None, "nothing to delete"),
        (("history", "--status", "done"), None, "status 'done' is not one of"),
        (
            ("apply", "{file}"),
            "- {name: x, pipeline: y, on: {alert: r}}",
            "'package.module:function'",
        ),
        (
            ("apply", "{file}"),
            "- {name: x, pipeline: y:z, on: {schedule: '* * * * * *'}}",
            "five fields",
        ),
        (("apply", "{file}"), "name: [", "is not valid YAML"),
        (("apply", "missing.yaml"), None, "does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    file: Path,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    text: str | None,
    message: str,
) -> None:
    if text is not None:
        file.write_text(text)
    code, _, err = run_cli(capsys, "triggers", *(a.format(file=file) for a in args))
    assert code == 2
    assert message in one_error_line(err)


def test_fire_runs_the_pipeline_and_exits_by_its_outcome(
    file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    file.write_text(
        f"""
- name: works
  pipeline: tests.unit.agent.test_trigger_run:marking_pipeline
  params: {{folder: "{marks}"}}
  on: {{schedule: "@daily"}}
- name: refused
  pipeline: tests.unit.agent.test_trigger_run:marking_pipeline
  params: {{folder: "{marks}", outcome: refuse}}
  on: {{schedule: "@daily"}}
"""
    )
    run_cli(capsys, "triggers", "apply", str(file))
    code, out, _ = run_cli(capsys, "triggers", "fire", "works")
    assert code == 0
    assert out.startswith("Trigger works: succeeded (execution ")
    code, out, _ = run_cli(capsys, "triggers", "fire", "refused")
    assert code == 1
    assert "Trigger refused: stopped — the gate refused models:/churn/2" in out
    fired = run_json(capsys, "triggers", "history")
    assert [(f["trigger"], f["kind"], f["status"]) for f in fired] == [
        ("refused", "manual", "stopped"),
        ("works", "manual", "succeeded"),
    ]
    code, out, _ = run_cli(capsys, "triggers", "history", "--status", "stopped")
    assert "f1 0.71 < baseline 0.74 + 0.01" in out
    assert "works" not in out
    assert run_json(capsys, "triggers", "show", "works")["last_firing"]["status"] == "succeeded"
    assert len(list(marks.glob("*.run"))) == 2
    page = tmp_path / "reports" / "firings.html"
    code, out, _ = run_cli(capsys, "triggers", "history", "--html", str(page))
    assert code == 0
    assert f"Wrote {page}" in out
    text = page.read_text()
    assert "<svg" in text
    assert "<script" not in text
    assert "f1 0.71 &lt; baseline 0.74 + 0.01" in text  # reasons are escaped
    assert text.count("class='s stopped'") == 1
