"""Trigger and PipelineSchedule documents on SQLite and PostgreSQL: stored through the
agent's triggers, idempotent, exported back (scheduled triggers as PipelineSchedule), the
two kinds sharing one name space, and errors located in the document."""

from __future__ import annotations

from pathlib import Path

import pytest

from mloop.agent._triggers import get_trigger, list_triggers, save_trigger
from mloop.iac import DocumentsInvalid, apply, export, plan
from mloop.registry import list_audit_log
from tests.unit.iac.conftest import write

TRIGGERS = """
apiVersion: mloop/v1
kind: PipelineSchedule
metadata:
  name: nightly
spec:
  pipeline: mloop.agent:retraining_pipeline
  params: {data: churn@latest, label: churned}
  schedule: "0 3 * * *"
---
apiVersion: mloop/v1
kind: Trigger
metadata:
  name: on-drift
spec:
  pipeline: mloop.agent:retraining_pipeline
  on:
    alert: churn-drift
  cooldown: 1h
---
apiVersion: mloop/v1
kind: Trigger
metadata:
  name: on-decline
spec:
  pipeline: my_project.pipelines:retrain
  on:
    performance: {deployment: churn, metric: online_metric, below: 0.8, window: 2h}
"""


def test_triggers_apply_idempotently_and_export_back(db: str, tmp_path: Path) -> None:
    path = write(tmp_path / "triggers.yaml", TRIGGERS)
    first = apply(path)
    assert [(c.kind, c.name, c.action) for c in first.changes] == [
        ("PipelineSchedule", "nightly", "create"),
        ("Trigger", "on-drift", "create"),
        ("Trigger", "on-decline", "create"),
    ]
    nightly = get_trigger("nightly")
    assert nightly.on.schedule is not None
    assert nightly.on.schedule.cron == "0 3 * * *"
    assert nightly.params == {"data": "churn@latest", "label": "churned"}
    assert get_trigger("on-drift").on.alert == "churn-drift"
    audit = len(list_audit_log(target="trigger:nightly"))

    assert {c.action for c in apply(path).changes} == {"unchanged"}
    assert len(list_audit_log(target="trigger:nightly")) == audit

    out = export(tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in out.files) == [
        "pipeline-schedules/nightly.yaml",
        "triggers/on-decline.yaml",
        "triggers/on-drift.yaml",
    ]
    schedule = next(d for d in out.documents if d["kind"] == "PipelineSchedule")
    assert schedule["spec"] == {
        "pipeline": "mloop.agent:retraining_pipeline",
        "params": {"data": "churn@latest", "label": "churned"},
        "schedule": "0 3 * * *",
    }
    assert "'on':" in (tmp_path / "out" / "triggers" / "on-drift.yaml").read_text()
    assert {c.action for c in apply(tmp_path / "out").changes} == {"unchanged"}


def test_a_changed_trigger_is_an_update_with_its_fields(db: str, tmp_path: Path) -> None:
    path = write(tmp_path / "t.yaml", TRIGGERS)
    apply(path)
    write(path, TRIGGERS.replace('"0 3 * * *"', '"30 4 * * 1"').replace("1h", "2h"))
    changes = {c.name: c for c in plan(path).changes}
    assert changes["on-decline"].action == "unchanged"
    assert [(f.path, f.before, f.after) for f in changes["nightly"].fields()] == [
        ("schedule", "0 3 * * *", "30 4 * * 1")
    ]
    assert [(f.path, f.after) for f in changes["on-drift"].fields()] == [("cooldown", "2h")]
    assert get_trigger("nightly").on.schedule.cron == "0 3 * * *"  # type: ignore[union-attr]
    apply(path)
    assert get_trigger("nightly").on.schedule.cron == "30 4 * * 1"  # type: ignore[union-attr]


def test_a_trigger_written_with_on_schedule_equals_a_pipeline_schedule(
    db: str, tmp_path: Path
) -> None:
    save_trigger(
        {
            "name": "nightly",
            "pipeline": "mloop.agent:retraining_pipeline",
            "on": {"schedule": "0 3 * * *"},
        }
    )
    as_trigger = write(
        tmp_path / "t.yaml",
        """
        apiVersion: mloop/v1
        kind: Trigger
        metadata: {name: nightly}
        spec:
          pipeline: mloop.agent:retraining_pipeline
          on: {schedule: "0 3 * * *"}
        """,
    )
    assert [c.action for c in plan(as_trigger).changes] == ["unchanged"]
    both = write(tmp_path / "both" / "x.yaml", TRIGGERS.split("---")[0])
    write(tmp_path / "both" / "y.yaml", as_trigger.read_text())
    with pytest.raises(DocumentsInvalid) as caught:
        plan(both.parent)
    (problem,) = caught.value.problems
    assert problem.field == "metadata.name"
    assert "declared again (first as PipelineSchedule" in problem.message


@pytest.mark.parametrize(
    ("spec", "line", "field", "message"),
    [
        ('  pipeline: p.q:r\n  schedule: "61 * * * *"\n', 7, "spec.schedule", "cron"),
        ("  pipeline: p.q:r\n", 5, "spec.schedule", "required field is missing"),
        ("  pipeline: not a ref\n  schedule: '@daily'\n", 6, "spec.pipeline", "module:function"),
        ('  pipeline: p.q:r\n  on: {alert: x}\n  schedule: "@daily"\n', 7, "spec.on", "not on:"),
        ('  pipeline: p.q:r\n  schedule: "@daily"\n  cooldwn: 1h\n', 8, "spec.cooldwn", "unknown"),
        ('  name: x\n  pipeline: p.q:r\n  schedule: "@daily"\n', 6, "spec.name", "metadata.name"),
    ],
)
def test_schedule_errors_name_the_line_and_field(
    sqlite_db: str, tmp_path: Path, spec: str, line: int, field: str, message: str
) -> None:
    head = "apiVersion: mloop/v1\nkind: PipelineSchedule\nmetadata:\n  name: s\nspec:\n"
    path = tmp_path / "s.yaml"
    path.write_text(head + spec, encoding="utf-8")
    with pytest.raises(DocumentsInvalid) as caught:
        apply(path)
    (problem,) = caught.value.problems
    assert (problem.line, problem.field) == (line, field)
    assert message in problem.message
    assert list_triggers() == []


def test_trigger_errors_name_the_line_and_field(sqlite_db: str, tmp_path: Path) -> None:
    path = write(
        tmp_path / "t.yaml",
        """
        apiVersion: mloop/v1
        kind: Trigger
        metadata:
          name: "bad name!"
        spec:
          pipeline: a.b:c
          on:
            performance:
              deployment: churn
              below: 0.8
              above: 0.9
        """,
    )
    with pytest.raises(DocumentsInvalid) as caught:
        apply(path)
    found = [(p.line, p.field) for p in caught.value.problems]
    assert (4, "metadata.name") in found
    assert (8, "spec.on.performance") in found
    assert any("exactly one of below" in p.message for p in caught.value.problems)
