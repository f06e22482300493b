"""`mloop predictions export`, `mloop feedback` and `mloop review` run in-process."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from mloop.cli._predictions import parse_when
from mloop.errors import InvalidInput
from mloop.serving._feedback import read_feedback
from mloop.serving._predlog import PredictionLog, PredictionRecord
from mloop.serving._review import queue_for_review
from tests.unit.cli.helpers import one_error_line, run_cli

T0 = 1_772_360_000_000  # 2026-03-01T10:13:20Z
HOUR = 3_600_000


@pytest.fixture(autouse=True)
def logged() -> None:
    with PredictionLog(compact_interval=None) as log:
        for n in range(3):
            record = PredictionRecord(
                f"req-{n}",
                T0 + n * HOUR,
                "iris",
                "iris",
                2,
                "primary",
                {"x": [[n, 1.5]]},
                {"label": ["setosa"]},
                0.7,
                {"atypical": False},
            )
            log.append(queue_for_review(record) if n == 1 else record)
        log.compact_now()
        log.append(
            PredictionRecord("req-9", T0 + 3 * HOUR, "iris", "iris", 2, "primary", [], [], 0.1)
        )


def test_export_jsonl_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "predictions", "export", "iris")

    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["request_id"] for r in rows] == ["req-0", "req-1", "req-2", "req-9"]
    assert rows[0]["inputs"] == {"x": [[0, 1.5]]}
    assert rows[0]["guards"] == {"atypical": False}
    assert rows[0]["time"] == "2026-03-01T10:13:20Z"
    assert (rows[0]["deployment"], rows[0]["version"]) == ("iris", 2)


def test_export_window(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(
        capsys,
        "predictions",
        "export",
        "iris",
        "--since",
        "2026-03-01T11:00:00Z",
        "--until",
        "2026-03-01T13:00:00",
    )
    assert code == 0
    assert [json.loads(line)["request_id"] for line in out.splitlines()] == ["req-1", "req-2"]


def test_export_parquet_is_read_by_polars(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "out.parquet"
    code, _, err = run_cli(
        capsys, "predictions", "export", "iris", "--format", "parquet", "-o", str(target)
    )

    assert code == 0, err
    assert "4 predictions written" in err
    frame = pl.read_parquet(target)
    assert frame["request_id"].to_list() == ["req-0", "req-1", "req-2", "req-9"]
    assert frame.filter(pl.col("needs_review"))["request_id"].to_list() == ["req-1"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_export_jsonl_to_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    assert run_cli(capsys, "predictions", "export", "iris", "--output", str(target))[0] == 0
    assert len(target.read_text().splitlines()) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "parquet"], "--format parquet needs --output PATH"),
        (["--since", "last tuesday"], "--since 'last tuesday' is neither a time"),
        (["--output", "/nonexistent/dir/x.jsonl"], "folder /nonexistent/dir does not exist"),
    ],
)
def test_export_errors(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code, _, err = run_cli(capsys, "predictions", "export", "iris", *args)
    assert code == 2
    assert message in one_error_line(err)


def test_export_refuses_a_bad_deployment_name(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "predictions", "export", "../etc")
    assert code == 2
    assert "deployment name '../etc' is not valid" in one_error_line(err)


def test_parse_when() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert parse_when("90m", "--since", now=now) == datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
    assert parse_when("2d", "--since", now=now) == datetime(2026, 2, 27, 12, tzinfo=UTC)
    assert parse_when("2026-03-01", "--since") == datetime(2026, 3, 1, tzinfo=UTC)
    assert parse_when(None, "--since") is None
    with pytest.raises(InvalidInput, match="--until '5 parsecs'"):
        parse_when("5 parsecs", "--until")


def test_feedback_one_and_bulk(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run_cli(capsys, "feedback", "iris", "--request-id", "req-0", "--label", "setosa")[0] == 0
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text("request_id,label,outcome\nreq-1,2,\nreq-2,,churned\n")
    jsonl_file = tmp_path / "labels.jsonl"
    jsonl_file.write_text('{"request_id": "req-9", "label": "virginica"}\n\n')

    code, out, _ = run_cli(capsys, "feedback", "iris", "--file", str(csv_file))
    assert code == 0
    assert "Recorded 2 feedback item(s)" in out
    assert run_cli(capsys, "feedback", "iris", "--file", str(jsonl_file))[0] == 0

    events = {r["request_id"]: r for r in read_feedback(None, "iris").to_pylist()}
    assert events["req-0"]["label"] == '"setosa"'
    assert events["req-1"]["label"] == "2"  # numbers stay numbers
    assert (events["req-2"]["label"], events["req-2"]["outcome"]) == (None, "churned")
    assert events["req-9"]["label"] == '"virginica"'
    assert {e["source"] for e in events.values()} == {"cli"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give --request-id ID with --label and/or --outcome, or --file"),
        (["--request-id", "a"], "feedback item 0 (a) has neither a label nor an outcome"),
        (["--file", "missing.csv"], "--file missing.csv does not exist"),
        (["--file", "x.csv", "--label", "1"], "give either --file or --request-id"),
    ],
)
def test_feedback_errors(capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    code, _, err = run_cli(capsys, "feedback", "iris", *args)
    assert code == 2
    assert message in one_error_line(err)


def test_feedback_file_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"request_id": "a", "label": 1}\n{oops\n')
    no_header = tmp_path / "bad.csv"
    no_header.write_text("id,label\na,1\n")
    other = tmp_path / "labels.txt"
    other.write_text("a 1\n")

    for path, message in (
        (bad_json, "bad.jsonl, line 2: not JSON"),
        (no_header, "the CSV header needs request_id"),
        (other, "use a .csv or .jsonl file"),
    ):
        code, _, err = run_cli(capsys, "feedback", "iris", "--file", str(path))
        assert code == 2
        assert message in one_error_line(err)
    assert read_feedback(None, "iris").num_rows == 0


def test_review_list_and_label(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "review", "list", "iris")
    assert code == 0
    assert "req-1" in out
    assert "req-0" not in out

    code, out, _ = run_cli(capsys, "review", "label", "req-1", "versicolor")
    assert code == 0
    assert "Labeled req-1 of iris as 'versicolor'" in out

    code, out, _ = run_cli(capsys, "review", "list", "iris", "--status", "labeled", "--json")
    (item,) = json.loads(out)
    assert (item["request_id"], item["label"], item["status"]) == ("req-1", "versicolor", "labeled")
    assert item["labeled_by"]
    assert json.loads(run_cli(capsys, "review", "list", "iris", "--json")[1]) == []

    code, _, err = run_cli(capsys, "review", "label", "req-0", "x")
    assert code == 2
    assert "'req-0' is not in the review queue" in one_error_line(err)
