"""`mloop pipeline run | list | show | resume` in-process, as the console script runs."""

from __future__ import annotations

import pytest

from mloop.cli._pipeline import parse_params
from mloop.errors import InvalidInput
from tests.unit.cli.helpers import one_error_line, run_cli, run_json
from tests.unit.pipelines import pipes


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


def test_run_list_show(sqlite_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(
        capsys, "pipeline", "run", "tests.unit.pipelines.pipes:simple", "--param", "rows=5"
    )
    assert code == 0, err
    assert "succeeded" in out
    assert "make_frame" in out
    assert "totals" in out
    cached = run_json(
        capsys, "pipeline", "run", "tests.unit.pipelines.pipes:simple", "-p", "rows=5"
    )
    assert [s["status"] for s in cached["steps"]] == ["cached", "cached", "cached"]
    forced = run_json(
        capsys, "pipeline", "run", "tests.unit.pipelines.pipes:simple", "-p", "rows=5", "--no-cache"
    )
    assert [s["status"] for s in forced["steps"]] == ["succeeded"] * 3
    listed = run_json(capsys, "pipeline", "list")
    assert [e["id"] for e in listed] == [forced["id"], cached["id"], listed[2]["id"]]
    code, out, _ = run_cli(capsys, "pipeline", "list", "--pipeline", "simple")
    assert forced["id"] in out
    assert "3/3" in out
    code, out, _ = run_cli(capsys, "pipeline", "show", forced["id"])
    assert code == 0
    assert "rows=5" in out
    assert "double" in out
    shown = run_json(capsys, "pipeline", "show", cached["id"])
    assert shown["outputs"]["totals"]["ref"]["kind"] == "json"


def test_a_stopped_run_exits_1_with_the_reason_and_a_failed_one_resumes(
    sqlite_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(
        capsys, "pipeline", "run", "tests.unit.pipelines.pipes:gated", "-p", "minimum=1000"
    )
    assert code == 1
    assert "sum 6.0 is below the minimum 1000" in out
    pipes.broken_flag().touch()
    code, out, _ = run_cli(
        capsys, "pipeline", "run", "tests.unit.pipelines.pipes:breakable", "--json"
    )
    assert code == 1
    import json

    failed = json.loads(out)
    assert failed["status"] == "failed"
    pipes.broken_flag().unlink()
    resumed = run_json(capsys, "pipeline", "resume", failed["id"])
    assert resumed["status"] == "succeeded"
    assert resumed["attempts"] == 2
    code, _, err = run_cli(capsys, "pipeline", "resume", failed["id"])
    assert code == 2
    assert "nothing to resume" in one_error_line(err)


def test_bad_input_is_one_line_and_exit_2(
    sqlite_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for args, message in [
        (("run", "no_such_module:fn"), "cannot import 'no_such_module'"),
        (("run", "tests.unit.pipelines.pipes:simple", "-p", "rows"), "is not NAME=VALUE"),
        (("run", "tests.unit.pipelines.pipes:simple", "-p", "nope=1"), "has no parameter nope"),
        (
            ("run", "tests.unit.pipelines.pipes:simple", "--executor", "dask"),
            "unknown pipeline executor",
        ),
        (("show", "0" * 32), "does not exist"),
    ]:
        code, _, err = run_cli(capsys, "pipeline", *args)
        assert code == 2, args
        assert message in one_error_line(err)


def test_params_are_yaml_scalars() -> None:
    assert parse_params(["rows=5", "name=iris", "ratio=0.5", "flag=true", "text='5'", "empty="]) == {
        "rows": 5, "name": "iris", "ratio": 0.5, "flag": True, "text": "5", "empty": ""
    }  # fmt: skip
    with pytest.raises(InvalidInput, match="not NAME=VALUE"):
        parse_params(["=3"])


def test_on_a_terminal_the_dag_is_drawn_live(
    sqlite_db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    code, out, err = run_cli(
        capsys, "pipeline", "run", "tests.unit.pipelines.pipes:gated", "-p", "minimum=1"
    )
    assert code == 0, err
    assert "gated" in out
    assert "✔" in err  # the live view's marks, drawn on stderr
    assert "▶" in err


def test_the_dag_tree_nests_chains_and_names_other_inputs() -> None:
    from rich.console import Console

    from mloop.cli._pipeline import dag_tree

    console = Console(width=100, record=True, color_system=None)
    console.print(
        dag_tree(
            "demo",
            [
                ("load", "cached", [], ""),
                ("fit", "running", ["load"], "1.2s"),
                ("other", "failed", [], ""),
                ("score", "pending", ["other", "fit"], ""),
            ],
        )
    )
    text = console.export_text()
    assert "◆ load  cached" in text
    assert "▶ fit  running  1.2s" in text
    assert "· score  pending  ← other" in text
    assert text.index("fit") < text.index("score")
