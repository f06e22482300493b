"""``mloop data …`` run in-process through ``main``, as the console script runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mloop.data._versions import get_dataset_version, list_datasets
from tests.unit.cli.helpers import one_error_line, run_cli, run_json


@pytest.fixture(autouse=True)
def _wide_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("MLOOP_CAPTURE", "false")


def write(
    path: Path, n: int = 200, shift: float = 0.0, cities: tuple[str, ...] = ("a", "b")
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.table(
            {
                "x": [float(i % 50) + shift for i in range(n)],
                "city": [cities[i % len(cities)] for i in range(n)],
                "label": [i % 2 for i in range(n)],
            }
        ),
        path,
    )
    return path


@pytest.fixture
def train(tmp_path: Path) -> Path:
    return write(tmp_path / "train" / "part-0.parquet")


# -- register, list, show ---------------------------------------------------------------------


def test_register_list_show(train: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "data", "register", "sales", str(train.parent), "-d", "v1")
    assert code == 0, err
    assert "Registered sales@1" in out
    assert "200 rows" in out
    data = run_json(capsys, "data", "register", "sales", str(train.parent))
    assert data["ref"] == "sales@1"  # identical content, same version

    code, out, _ = run_cli(capsys, "data", "list")
    assert code == 0
    assert "sales" in out
    assert [d["name"] for d in run_json(capsys, "data", "list")] == ["sales"]
    versions = run_json(capsys, "data", "list", "sales")
    assert [v["ref"] for v in versions] == ["sales@1"]

    shown = run_json(capsys, "data", "show", "sales@1")
    assert shown["num_rows"] == 200
    assert shown["description"] == "v1"
    assert shown["files"][0]["path"] == "part-0.parquet"
    code, out, _ = run_cli(capsys, "data", "show", "sales@latest", "--verify")
    assert code == 0
    assert "sales@1" in out
    assert "part-0.parquet" in out
    assert "as registered" in out


def test_register_by_reference_with_digest(train: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(capsys, "data", "register", "ref", str(train), "--reference", "--digest")
    assert data["storage"] == "reference"
    assert data["files"][0]["uri"] == train.resolve().as_uri()
    assert data["files"][0]["digest"]
    write(train, n=10)
    shown = run_json(capsys, "data", "show", "ref@1", "--verify")
    assert shown["changes"][0]["change"] == "changed"


def test_list_with_nothing_registered(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "data", "list")
    assert code == 0
    assert "No datasets yet" in out


# -- stats, schema, validation ----------------------------------------------------------------


def test_stats_of_files_and_of_a_version_and_saved(
    train: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "data", "stats", str(train))
    assert code == 0, err
    assert "200 rows" in out
    assert "city" in out
    data = run_json(capsys, "data", "stats", str(train))
    assert data["num_rows"] == 200
    run_cli(capsys, "data", "register", "s", str(train))
    assert run_json(capsys, "data", "stats", "s@1")["num_rows"] == 200
    saved = tmp_path / "train.stats"
    code, out, _ = run_cli(capsys, "data", "stats", str(train), "--save", str(saved))
    assert code == 0
    assert saved.stat().st_size > 0
    assert run_json(capsys, "data", "stats", str(saved))["num_rows"] == 200


def test_infer_schema_then_validate(
    train: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    schema = tmp_path / "schema.yaml"
    code, out, err = run_cli(capsys, "data", "infer-schema", str(train), "-o", str(schema))
    assert code == 0, err
    assert schema.read_text()
    code, out, _ = run_cli(capsys, "data", "infer-schema", str(train))
    assert code == 0
    assert "city" in out

    code, out, err = run_cli(capsys, "data", "validate", str(train), "--schema", str(schema))
    assert code == 0, err
    assert "No anomalies" in out

    bad = write(tmp_path / "bad.parquet", cities=("a", "b", "zzz-new"))
    pq.write_table(pq.read_table(bad).drop_columns(["x"]), bad)
    code, out, _ = run_cli(capsys, "data", "validate", str(bad), "--schema", str(schema), "--json")
    assert code == 1
    report = json.loads(out)
    assert not report["valid"]
    assert {a["feature"] for a in report["anomalies"]} >= {"x", "city"}
    code, out, _ = run_cli(capsys, "data", "validate", str(bad), "--schema", str(schema))
    assert code == 1
    assert "ERROR" in out


# -- drift and diff ---------------------------------------------------------------------------


def test_drift_table_json_html(
    train: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current = write(tmp_path / "current.parquet", shift=40.0)
    run_cli(capsys, "data", "register", "base", str(train))
    saved = tmp_path / "ref.stats"
    run_cli(capsys, "data", "stats", str(train), "--save", str(saved))
    for reference in (str(train), "base@1", str(saved)):
        code, out, err = run_cli(
            capsys,
            "data",
            "drift",
            "--reference",
            reference,
            "--current",
            str(current),
            "--format",
            "json",
        )
        assert code == 0, err
        report = json.loads(out)
        by_name = {f["name"]: f for f in report["features"]}
        assert by_name["x"]["drifted"]
        assert not by_name["city"]["drifted"]
        assert set(by_name["x"]) >= {"name", "type", "method", "score", "threshold", "drifted"}
    code, out, _ = run_cli(
        capsys, "data", "drift", "--reference", "base@1", "--current", str(current)
    )
    assert code == 0
    assert "x" in out
    assert "yes" in out
    html = tmp_path / "report.html"
    code, out, _ = run_cli(
        capsys,
        "data",
        "drift",
        "-r",
        str(train),
        "-c",
        str(current),
        "--format",
        "html",
        "-o",
        str(html),
    )
    assert code == 0
    assert "<html" in html.read_text().lower()
    config = tmp_path / "drift.yaml"
    config.write_text("features:\n  x:\n    skip: true\n")
    report = json.loads(
        run_cli(
            capsys,
            "data",
            "drift",
            "-r",
            str(train),
            "-c",
            str(current),
            "--format",
            "json",
            "--config",
            str(config),
        )[1]
    )
    assert "x" not in {f["name"] for f in report["features"]}


def test_diff_of_two_versions(
    train: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_cli(capsys, "data", "register", "d", str(train.parent))
    write(train.parent / "part-1.parquet", shift=30.0)
    run_cli(capsys, "data", "register", "d", str(train.parent))
    data = run_json(capsys, "data", "diff", "d@1", "d@2")
    assert data["files"]["added"] == ["part-1.parquet"]
    assert data["rows"] == {"a": 200, "b": 400}
    code, out, _ = run_cli(capsys, "data", "diff", "d@1", "d@2")
    assert code == 0
    assert "part-1.parquet" in out
    code, out, _ = run_cli(capsys, "data", "diff", "d@1", "d@1")
    assert "Identical content" in out


# -- sanitize ---------------------------------------------------------------------------------


def test_sanitize_reports_and_registers_a_clean_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = 100
    table = pa.table(
        {
            "x": [float(i) for i in range(rows)] + [5.0, 5.0],
            "text": [f"row {i}" for i in range(rows)] + ["row 5", "DROP TABLE users"],
            "label": [i % 2 for i in range(rows)] + [1, 0],
        }
    )
    source = tmp_path / "raw.parquet"
    pq.write_table(table, source)
    deny = tmp_path / "deny.txt"
    deny.write_text("# forbidden content\nDROP TABLE\n")
    run_cli(capsys, "data", "register", "raw", str(source))
    data = run_json(
        capsys,
        "data",
        "sanitize",
        "raw@1",
        "--label",
        "label",
        "--deny-list",
        str(deny),
        "--register-clean",
        "clean",
    )
    assert data["registered"] == "clean@1"
    clean = get_dataset_version("clean@1")
    assert clean.num_rows is not None
    assert clean.num_rows < rows + 2
    assert clean.provenance["sanitized_from"] == "raw@1"
    assert clean.provenance["removed_rows"] == rows + 2 - clean.num_rows
    assert clean.provenance["parents"] == ["raw@1"]
    assert "removed" in (clean.description or "")
    code, out, _ = run_cli(capsys, "data", "sanitize", str(source), "--deny-list", str(deny))
    assert code == 0
    assert "rows flagged" in out


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["data", "register", "x", "missing.parquet"], "does not exist"),
        (["data", "register", "bad name", "."], "dataset name"),
        (["data", "show", "nope@1"], "does not exist"),
        (["data", "show", "not a ref"], "NAME@VERSION"),
        (["data", "stats", "missing.parquet"], "does not exist"),
        (["data", "stats", "ghost@3"], "does not exist"),
        (["data", "stats", "corrupt.parquet"], "corrupt.parquet"),
        (["data", "stats", "notes.stats"], "statistics file"),
        (["data", "infer-schema", "missing.csv"], "does not exist"),
        (["data", "validate", "train.parquet", "--schema", "nope.yaml"], "nope.yaml"),
        (["data", "drift", "-r", "train.parquet", "-c", "train.parquet", "--format", "xml"], "xml"),
        (
            ["data", "drift", "-r", "train.parquet", "-c", "train.parquet", "--config", "no.yaml"],
            "no.yaml",
        ),
        (["data", "diff", "a@1", "b@1"], "does not exist"),
        (["data", "sanitize", "missing.parquet"], "does not exist"),
        (["data", "sanitize", "train.parquet", "--deny-list", "none.txt"], "none.txt"),
        (["data", "list", "unknown"], "does not exist"),
        (["data", "register"], "Missing argument"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    write(tmp_path / "train.parquet")
    (tmp_path / "corrupt.parquet").write_bytes(b"PAR1 garbage")
    (tmp_path / "notes.stats").write_text("not statistics")
    code, out, err = run_cli(capsys, *args)
    assert code == 2, (out, err)
    assert expected in one_error_line(err)
    assert list_datasets() == []
