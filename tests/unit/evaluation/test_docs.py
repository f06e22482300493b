"""docs/evaluation.md stays true: its quick start runs and blesses, its gate parses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mloop.evaluation import GateSpec

DOC = Path(__file__).parents[3] / "docs" / "evaluation.md"


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(), re.DOTALL)


def test_the_documented_gate_parses_with_every_rule() -> None:
    [gate] = [b for b in _blocks("yaml") if "min_improvement" in b]
    spec = GateSpec.from_yaml_text(gate)
    assert set(spec.to_json()) >= {
        "metric",
        "thresholds",
        "slices",
        "fairness",
        "robustness",
        "backdoor",
    }


def test_the_quick_start_runs_and_blesses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLOOP_USER", "ada")
    monkeypatch.setenv("MLOOP_CAPTURE", "false")
    quick_start = _blocks("python")[0]
    exec(compile(quick_start, str(DOC), "exec"), {})  # our own documentation
    out = capsys.readouterr().out
    assert out.startswith("blessed []")
    assert "<svg" in (tmp_path / "cancer-v2.html").read_text()
