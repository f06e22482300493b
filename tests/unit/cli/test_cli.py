"""The ``mloop`` command, run in-process through ``main`` as the console script runs it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

import mloop
from mloop.cli._render import format_duration, format_when, one_line
from mloop.store import head_revision
from mloop.tracking import MloopClient
from tests.unit.cli.helpers import one_error_line, run_cli, run_json


@pytest.fixture(autouse=True)
def _wide_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Wide tables (no folded cells to trip assertions) and no environment capture (speed)."""
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("MLOOP_CAPTURE", "false")


@pytest.fixture
def runs() -> dict[str, str]:
    """Two runs in experiment ``cli`` and one in ``other``; returns their ids by name."""
    ids: dict[str, str] = {}
    mloop.set_experiment("cli")
    with mloop.start_run(run_name="alpha") as run:
        mloop.log_params({"model": "rf", "depth": 3})
        for step, value in enumerate([0.5, 0.7, 0.8]):
            mloop.log_metric("f1", value, step=step)
        mloop.log_metric("acc", 0.9)
        mloop.set_tag("team", "[vision]")
        mloop.log_text("hello artifact", "notes/hello.txt")
        mloop.log_input("dataset:iris@v1", context="training")
        ids["alpha"] = run.info.run_id
    with mloop.start_run(run_name="beta") as run:
        mloop.log_params({"model": "lr", "depth": 3})
        mloop.log_metrics({"f1": 0.9, "acc": 0.85})
        ids["beta"] = run.info.run_id
    mloop.set_experiment("other")
    with mloop.start_run(run_name="gamma") as run:
        mloop.log_metric("f1", 0.1)
        ids["gamma"] = run.info.run_id
    return ids


# -- experiments ------------------------------------------------------------------------------


def test_experiments_list_json_contains_them(
    runs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    names = {e["name"] for e in run_json(capsys, "experiments", "list")}
    assert {"cli", "other"} <= names


def test_experiments_list_table(runs: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "experiments", "list")
    assert code == 0
    assert "cli" in out
    assert "other" in out
    assert "Created" in out


# -- runs list --------------------------------------------------------------------------------


def test_runs_list_filter_returns_the_right_runs(
    runs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    found = run_json(
        capsys, "runs", "list", "--experiment", "cli", "--filter", "params.model = 'rf'"
    )
    assert [r["info"]["run_id"] for r in found] == [runs["alpha"]]
    found = run_json(capsys, "runs", "list", "--filter", "metrics.f1 > 0.75")
    assert {r["info"]["run_id"] for r in found} == {runs["alpha"], runs["beta"]}


def test_runs_list_orders_limits_and_spans_experiments(
    runs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    ordered = run_json(capsys, "runs", "list", "--order-by", "metrics.f1 DESC")
    assert [r["info"]["run_id"] for r in ordered] == [runs["beta"], runs["alpha"], runs["gamma"]]
    top = run_json(capsys, "runs", "list", "-o", "metrics.f1 ASC", "--max", "1")
    assert [r["info"]["run_id"] for r in top] == [runs["gamma"]]


def test_runs_list_table_shows_runs_and_metric_columns(
    runs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "runs", "list", "--experiment", "cli")
    assert code == 0
    assert runs["alpha"] in out
    assert runs["beta"] in out
    assert runs["gamma"] not in out
    assert "FINISHED" in out
    assert "f1" in out
    assert "0.9" in out


def test_runs_list_unknown_experiment_is_one_line(
    runs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "runs", "list", "--experiment", "nope")
    assert code == 2
    assert out == ""
    assert "nope" in one_error_line(err)


# -- runs show / compare ----------------------------------------------------------------------


def test_runs_show_prints_params_metrics_tags_artifacts(
    runs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "runs", "show", runs["alpha"])
    assert code == 0
    for expected in ("alpha", "model", "rf", "depth", "f1", "0.8", "acc", "0.9"):
        assert expected in out
    assert "[vision]" in out  # shown as typed, not eaten as Rich markup
    assert "notes/hello.txt" in out
    assert "dataset:iris@v1" in out


def test_runs_show_json(runs: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    shown = run_json(capsys, "runs", "show", runs["alpha"])
    assert shown["info"]["run_id"] == runs["alpha"]
    assert shown["data"]["params"] == {"model": "rf", "depth": "3"}
    assert shown["data"]["metrics"]["f1"] == pytest.approx(0.8)
    assert shown["experiment"]["name"] == "cli"
    assert [a["path"] for a in shown["artifacts"]] == ["notes/hello.txt"]
    assert shown["inputs"][0]["ref"] == "dataset:iris@v1"


def test_runs_compare_marks_differences(
    runs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    compared = run_json(capsys, "runs", "compare", runs["alpha"], runs["beta"])
    assert compared["differences"]["params"] == ["model"]
    assert {"f1", "acc"} <= set(compared["differences"]["metrics"])
    depth = next(p for p in compared["params"] if p["key"] == "depth")
    assert depth == {
        "key": "depth",
        "values": {runs["alpha"]: "3", runs["beta"]: "3"},
        "differs": False,
    }

    code, out, _ = run_cli(capsys, "runs", "compare", runs["alpha"], runs["beta"])
    assert code == 0
    lines = out.splitlines()
    model_line = next(line for line in lines if "params.model" in line)
    depth_line = next(line for line in lines if "params.depth" in line)
    assert "≠" in model_line
    assert "rf" in model_line
    assert "lr" in model_line
    assert "≠" not in depth_line


def test_runs_compare_needs_two_runs(
    runs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "runs", "compare", runs["alpha"])
    assert code == 2
    assert "two" in one_error_line(err)


# -- errors -----------------------------------------------------------------------------------


def test_bad_filter_is_one_line_with_the_column(
    runs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "runs", "list", "--filter", "metrics.f1 >>> 2")
    assert code == 2
    assert out == ""
    assert "column" in one_error_line(err)


def test_unknown_run_id_is_one_line(
    runs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    for command in (["runs", "show"], ["runs", "delete"], ["runs", "compare", runs["alpha"]]):
        code, out, err = run_cli(capsys, *command, "0" * 32)
        assert code == 2
        assert out == ""
        assert "0" * 32 in one_error_line(err)


def test_unknown_option_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "runs", "list", "--bogus")
    assert code == 2
    assert out == ""
    line = one_error_line(err)
    assert "--bogus" in line
    assert "mloop runs list --help" in line


def test_bad_option_value_and_unknown_command_are_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for args in (["runs", "list", "--max", "zero"], ["runs", "list", "--max", "0"], ["nope"]):
        code, _, err = run_cli(capsys, *args)
        assert code == 2
        one_error_line(err)


def test_help_still_works(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0
    assert "runs" in out
    assert "experiments" in out
    assert "demo" in out
    code, out, _ = run_cli(capsys, "runs", "list", "--help")
    assert code == 0
    assert "--filter" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "--version")
    assert code == 0
    assert out.strip() == f"mloop {mloop.__version__}"


def test_ctrl_c_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(*_: Any, **__: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(MloopClient, "search_experiments", interrupted)
    code, _, err = run_cli(capsys, "experiments", "list")
    assert code == 130
    assert "Traceback" not in err


# -- artifacts, delete, reproduce -------------------------------------------------------------


def test_download_artifact_writes_the_file(
    runs: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    dest = tmp_path / "out"
    code, out, err = run_cli(
        capsys, "runs", "download-artifact", runs["alpha"], "notes/hello.txt", "--dest", str(dest)
    )
    assert code == 0, err
    assert (dest / "hello.txt").read_text() == "hello artifact"
    assert str(dest / "hello.txt") in out.replace("\n", "")


def test_download_missing_artifact_is_one_line(
    runs: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run_cli(
        capsys, "runs", "download-artifact", runs["alpha"], "nope.txt", "--dest", str(tmp_path)
    )
    assert code == 2
    assert "nope.txt" in one_error_line(err)


def test_delete_hides_the_run_and_restore_brings_it_back(
    runs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "runs", "delete", runs["alpha"])
    assert code == 0
    assert "restore" in out
    listed = run_json(capsys, "runs", "list")
    assert runs["alpha"] not in {r["info"]["run_id"] for r in listed}
    assert run_json(capsys, "runs", "show", runs["alpha"])["info"]["lifecycle_stage"] == "deleted"

    assert run_cli(capsys, "runs", "restore", runs["alpha"])[0] == 0
    listed = run_json(capsys, "runs", "list")
    assert runs["alpha"] in {r["info"]["run_id"] for r in listed}


def test_purge_removes_the_run(runs: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "runs", "delete", runs["beta"], "--purge")
    assert code == 0, err
    code, _, err = run_cli(capsys, "runs", "show", runs["beta"])
    assert code == 2
    one_error_line(err)


def test_reproduce_prints_the_capture_steps(
    runs: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mloop.tracking import _capture

    seen: dict[str, Any] = {}

    def fake_steps(
        tags: Mapping[str, str], artifact_paths: Iterable[str], run_id: str
    ) -> list[str]:
        seen.update(tags=dict(tags), paths=list(artifact_paths), run_id=run_id)
        return ["git checkout abc123", "python train.py"]

    monkeypatch.setattr(_capture, "reproduce_steps", fake_steps)
    code, out, _ = run_cli(capsys, "runs", "reproduce", runs["alpha"])
    assert code == 0
    assert out.splitlines() == ["git checkout abc123", "python train.py"]
    assert seen["run_id"] == runs["alpha"]
    assert seen["tags"]["team"] == "[vision]"
    assert seen["paths"] == ["notes/hello.txt"]


def test_server_calls_serve(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import mloop.server

    calls: list[tuple[str, int, int, str | None, bool]] = []
    monkeypatch.setattr(
        mloop.server,
        "serve",
        lambda host, port, workers, auth, access_log: calls.append(
            (host, port, workers, auth, access_log)
        ),
    )
    assert run_cli(capsys, "server", "--port", "5123", "--workers", "2")[0] == 0
    assert run_cli(capsys, "server", "--host", "0.0.0.0", "--auth", "on", "--access-log")[0] == 0
    assert calls == [("127.0.0.1", 5123, 2, None, False), ("0.0.0.0", 5000, 1, "on", True)]
    code, _, err = run_cli(capsys, "server", "--port", "70000")
    assert code == 2
    one_error_line(err)


# -- db ---------------------------------------------------------------------------------------


def test_db_upgrade_reports_the_head_revision(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    uri = f"sqlite:///{tmp_path / 'fresh' / 'mloop.db'}"
    head = head_revision()
    code, out, _ = run_cli(capsys, "db", "current", "--uri", uri)
    assert code == 0
    assert "(none)" in out
    code, out, err = run_cli(capsys, "db", "upgrade", "--uri", uri)
    assert code == 0, err
    assert head in out
    assert "(empty)" in out
    code, out, _ = run_cli(capsys, "db", "upgrade", "--uri", uri)
    assert code == 0
    assert "already" in out
    assert head in out
    code, out, _ = run_cli(capsys, "db", "current", "--uri", uri)
    assert code == 0
    assert head in out
    assert "up to date" in out


def test_db_upgrade_default_store_and_bad_uri(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "db", "upgrade")
    assert code == 0, err
    assert head_revision() in out
    code, _, err = run_cli(capsys, "db", "upgrade", "--uri", "mysql://nowhere/db")
    assert code == 2
    assert "mysql" in one_error_line(err)


# -- rendering helpers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, 850, "850ms"),
        (0, 12_340, "12.3s"),
        (0, 245_000, "4m 05s"),
        (0, 7_380_000, "2h 03m"),
        (0, 273_600_000, "3d 04h"),
        (0, None, "—"),
    ],
)
def test_format_duration(start: int, end: int | None, expected: str) -> None:
    assert format_duration(start, end) == expected


def test_format_when_is_relative_when_recent() -> None:
    now = 1_764_000_000_000
    assert format_when(now - 5_000, now_ms=now) == "5s ago"
    assert format_when(now - 12 * 60_000, now_ms=now) == "12 min ago"
    assert format_when(now - 400 * 86_400_000, now_ms=now).count("-") == 2
    assert format_when(None) == "—"


def test_one_line() -> None:
    assert one_line("first\n  second\n\n") == "first; second"


# -- through a tracking server ----------------------------------------------------------------


def test_commands_work_through_a_tracking_server(
    live_server: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("MLOOP_TRACKING_URI", live_server)
    mloop.set_experiment("remote")
    with mloop.start_run(run_name="far") as run:
        mloop.log_param("model", "rf")
        mloop.log_metric("f1", 0.7)
        mloop.log_text("remote bytes", "out/remote.txt")
    run_id = run.info.run_id

    listed = run_json(capsys, "runs", "list", "--filter", "metrics.f1 > 0.5")
    assert [r["info"]["run_id"] for r in listed] == [run_id]
    assert run_json(capsys, "runs", "show", run_id)["data"]["params"] == {"model": "rf"}
    code, _, err = run_cli(
        capsys, "runs", "download-artifact", run_id, "out/remote.txt", "--dest", str(tmp_path)
    )
    assert code == 0, err
    assert (tmp_path / "remote.txt").read_text() == "remote bytes"

    for args in (["runs", "show", "0" * 32], ["runs", "delete", run_id, "--purge"]):
        code, _, err = run_cli(capsys, *args)
        assert code == 2
        one_error_line(err)


def test_unreachable_tracking_server_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLOOP_TRACKING_URI", "http://127.0.0.1:9")
    code, out, err = run_cli(capsys, "runs", "list")
    assert code == 2
    assert out == ""
    assert "127.0.0.1:9" in one_error_line(err)


def test_the_command_tree_is_built_once_and_reused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`main` keeps the Click tree it built (building it inspects every command); the
    reused tree still maps a usage error and a library error to exit 2 with one line."""
    import typer.main

    from mloop.cli import _app

    _app._run_command.cache_clear()
    built: list[object] = []
    real = typer.main.get_command

    def counting(app: Any) -> Any:
        built.append(app)
        return real(app)

    monkeypatch.setattr(typer.main, "get_command", counting)
    code, out, _ = run_cli(capsys, "--version")
    assert (code, out.strip()) == (0, f"mloop {mloop.__version__}")
    code, _, err = run_cli(capsys, "runs", "list", "--no-such-flag")
    assert code == 2
    assert "No such option" in one_error_line(err)
    code, _, err = run_cli(capsys, "models", "scan", str(tmp_path / "missing.pkl"))
    assert code == 2
    assert "missing.pkl" in one_error_line(err)
    assert built == [_app.app]
