"""Dataset versions through the public functions, on the embedded stores (SQLite, folder)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import mloop
from mloop.data import _statistics
from mloop.data._diff import diff
from mloop.data._sources import parse_ref
from mloop.data._versions import (
    DatasetVersion,
    get_dataset_version,
    list_datasets,
    list_versions,
    open_registry,
    read_manifest,
    register,
)
from mloop.errors import IntegrityError, InvalidInput, NotFound


@pytest.fixture(autouse=True)
def _quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOOP_CAPTURE", "false")


def table(n: int = 20, offset: int = 0) -> pa.Table:
    return pa.table(
        {
            "x": [float(i + offset) for i in range(n)],
            "city": [["paris", "oslo", "lima"][i % 3] for i in range(n)],
        }
    )


def write_parquet(path: Path, data: pa.Table) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(data, path)
    return path


def write_csv(path: Path, n: int = 10, offset: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = "\n".join(f"{i + offset},{'ab'[i % 2]}" for i in range(n))
    path.write_text(f"x,city\n{rows}\n")
    return path


def write_jsonl(path: Path, n: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f'{{"x": {i}, "city": "c{i % 2}"}}\n' for i in range(n)))
    return path


# -- registering each kind of source ----------------------------------------------------------


def test_a_parquet_file_is_stored_and_read_back(tmp_path: Path) -> None:
    source = write_parquet(tmp_path / "in" / "train.parquet", table())
    version = register("sales", source, description="first cut")
    assert (version.name, version.version, version.ref) == ("sales", 1, "sales@1")
    assert version.num_rows == 20
    assert version.storage == "stored"
    assert [f.path for f in version.files] == ["train.parquet"]
    assert version.files[0].digest is not None
    assert version.files[0].uri is None
    assert version.description == "first cut"
    assert version.created_by
    assert version.to_arrow().equals(table())
    assert version.to_pandas()["x"].sum() == sum(range(20))
    assert version.to_polars().height == 20
    assert version.to_arrow(columns=["city"]).column_names == ["city"]
    assert len(version.digest) == 64


def test_a_folder_of_csv_and_a_glob_of_jsonl(tmp_path: Path) -> None:
    folder = tmp_path / "csvs"
    write_csv(folder / "a.csv", 5)
    write_csv(folder / "part" / "b.csv", 7, offset=100)
    (folder / "_SUCCESS").write_text("")
    (folder / ".hidden.csv").write_text("junk")
    version = register("csvs", folder)
    assert [f.path for f in version.files] == ["a.csv", "part/b.csv"]
    assert version.num_rows == 12
    assert version.to_arrow().num_rows == 12

    write_jsonl(tmp_path / "logs" / "day1.jsonl", 3)
    write_jsonl(tmp_path / "logs" / "day2.jsonl", 4)
    write_jsonl(tmp_path / "logs" / "other.ndjson", 100)
    globbed = register("logs", str(tmp_path / "logs" / "*.jsonl"))
    assert [f.path for f in globbed.files] == ["day1.jsonl", "day2.jsonl"]
    assert globbed.num_rows == 7
    assert [f.format for f in globbed.files] == ["jsonl", "jsonl"]


@pytest.mark.parametrize(
    "make",
    [
        lambda: table(),
        lambda: pl.from_arrow(table()),
        lambda: table().to_pandas(),
        lambda: pl.from_arrow(table()).lazy(),
    ],
    ids=["arrow", "polars", "pandas", "polars-lazy"],
)
def test_in_memory_tables_are_stored_as_deterministic_parquet(make: object) -> None:
    first = register("frame", make())  # type: ignore[operator]
    second = register("frame", make())  # type: ignore[operator]
    assert first == second
    assert first.version == second.version == 1
    assert [f.path for f in first.files] == ["data.parquet"]
    assert first.num_rows == 20
    assert first.to_arrow().column("x").to_pylist() == [float(i) for i in range(20)]


def test_identical_content_returns_the_existing_version_different_content_the_next(
    tmp_path: Path,
) -> None:
    source = write_parquet(tmp_path / "d.parquet", table())
    one = register("ds", source)
    copy = write_parquet(tmp_path / "elsewhere" / "d.parquet", table())
    assert register("ds", copy).version == 1
    assert register("ds", table(offset=1)).version == 2
    assert register("ds", table(offset=2)).version == 3
    assert register("ds", source).version == 1
    assert [v.version for v in list_versions("ds")] == [1, 2, 3]
    assert get_dataset_version("ds@latest").version == 3
    assert get_dataset_version(("ds", 1)) == one
    assert get_dataset_version("ds@1").digest == one.digest
    other = register("other", source)
    assert (other.version, other.digest) == (1, one.digest)
    summary = {d.name: d for d in list_datasets()}
    assert summary["ds"].latest_version == 3
    assert summary["ds"].num_versions == 3
    assert sorted(summary) == ["ds", "other"]


def test_the_manifest_is_stored_and_versioned(tmp_path: Path) -> None:
    version = register("m", write_parquet(tmp_path / "d.parquet", table()))
    with open_registry() as registry:
        files = read_manifest(registry.artifacts.get_bytes(version.digest))
    assert [f.path for f in files] == ["d.parquet"]
    with pytest.raises(InvalidInput, match="format version 99"):
        read_manifest(b'{"format": "mloop.dataset-manifest", "format_version": 99, "files": []}')
    with pytest.raises(InvalidInput, match="not a dataset manifest"):
        read_manifest(b"[]")


# -- statistics -------------------------------------------------------------------------------


def test_statistics_are_stored_once_and_reloaded_without_the_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_parquet(tmp_path / "d.parquet", table(50))
    calls: list[object] = []
    original = _statistics.compute_statistics

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(args[0])
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_statistics, "compute_statistics", counting)
    register("s", source)
    assert len(calls) == 1
    register("s", source)  # identical content: nothing computed again
    assert len(calls) == 1
    source.unlink()
    monkeypatch.setattr(_statistics, "compute_statistics", None)  # any re-read would fail
    stats = get_dataset_version("s@1").statistics()
    assert stats.num_rows == 50
    assert set(stats.features) == {"x", "city"}


# -- external references ----------------------------------------------------------------------


def test_a_file_uri_is_referenced_and_changes_are_detected(tmp_path: Path) -> None:
    source = write_parquet(tmp_path / "ext" / "d.parquet", table())
    version = register("ext", source.as_uri())
    assert version.storage == "reference"
    assert version.is_reference
    [file] = version.files
    assert file.uri == source.as_uri()
    assert file.digest is None
    assert file.mtime_ns == source.stat().st_mtime_ns
    assert version.verify() == []
    assert version.to_arrow().num_rows == 20

    write_parquet(source, table(30))
    [change] = version.verify()
    assert change.change == "changed"
    assert change.uri == source.as_uri()
    with pytest.raises(IntegrityError, match=r"ext@1 references .*changed since it was registered"):
        version.to_arrow()
    assert version.to_arrow(allow_changed=True).num_rows == 30

    source.unlink()
    assert [c.change for c in version.verify()] == ["missing"]


def test_local_files_can_be_referenced_with_their_digest(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "d.csv", 10)
    version = register("ref", source, reference=True, compute_digest=True)
    [file] = version.files
    assert file.uri == source.resolve().as_uri()
    assert file.digest is not None
    stat = source.stat()
    source.write_text(source.read_text().replace("1,b", "9,b"))  # same size
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and same mtime
    assert version.verify() == []
    [change] = version.verify(deep=True)
    assert "SHA-256" in change.detail


def test_a_stored_version_verifies_its_blobs(tmp_path: Path) -> None:
    version = register("blobs", write_parquet(tmp_path / "d.parquet", table()))
    assert version.verify(deep=True) == []
    with open_registry() as registry:
        assert version.files[0].digest is not None
        registry.artifacts.delete(version.files[0].digest)
    assert [c.change for c in version.verify()] == ["missing"]


# -- lineage ----------------------------------------------------------------------------------


def test_a_run_producing_and_reading_versions_is_recorded(tmp_path: Path) -> None:
    from sqlalchemy import select

    from mloop.store import schema as s

    source = write_parquet(tmp_path / "d.parquet", table())
    with mloop.start_run() as run:
        produced = register("lin", source, step="prepare")
        mloop.log_input(produced, context="training")
    assert produced.run_id == run.info.run_id
    assert produced.step == "prepare"
    assert produced.provenance["run_id"] == run.info.run_id
    with open_registry() as registry, registry.store.read() as conn:
        edges = {
            (e.src_kind, e.src_id, e.dst_kind, e.dst_id, e.relation)
            for e in conn.execute(select(s.LineageEdge.__table__))
        }
    assert ("run", run.info.run_id, "dataset", "lin@1", "produced") in edges
    assert ("dataset", "lin@1", "run", run.info.run_id, "input") in edges
    inputs = mloop.MloopClient().get_run(run.info.run_id)
    assert inputs is not None
    with pytest.raises(NotFound, match="run 'nope' does not exist"):
        register("lin2", source, run_id="nope")


def test_derived_versions_name_their_parents(tmp_path: Path) -> None:
    parent = register("raw", table())
    child = register("clean", table(5), parents=[parent], provenance={"removed_rows": 15})
    assert child.provenance["parents"] == ["raw@1"]
    assert child.provenance["removed_rows"] == 15


# -- failures ---------------------------------------------------------------------------------


def test_a_corrupt_second_file_leaves_no_version(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    write_parquet(folder / "a.parquet", table())
    (folder / "b.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(InvalidInput, match=r"b\.parquet"):
        register("bad", folder)
    assert list_datasets() == []
    with pytest.raises(NotFound, match="does not exist"):
        get_dataset_version("bad@1")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("missing.parquet", "does not exist"),
        ("nothing-*.csv", "matches no files"),
        ("notes.txt", "unknown data format"),
        ("empty", "holds no data files"),
        ("gopher://x/y.csv", "unknown scheme"),
        (42, "cannot register 'int'"),
    ],
)
def test_bad_sources_say_what_to_do(tmp_path: Path, source: object, message: str) -> None:
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInput, match=message):
        register("bad", source)


def test_ragged_csv_and_bad_names_and_references_are_refused(tmp_path: Path) -> None:
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3\n")
    with pytest.raises(InvalidInput, match=r"ragged\.csv"):
        register("ragged", ragged)
    with pytest.raises(InvalidInput, match="dataset name"):
        register("no spaces", table())
    with pytest.raises(InvalidInput, match="holds no rows"):
        register("empty", pa.table({"a": pa.array([], pa.int64())}))
    with pytest.raises(InvalidInput, match="cannot be referenced"):
        register("mem", table(), reference=True)
    with pytest.raises(InvalidInput, match="NAME@VERSION"):
        get_dataset_version("a@b@c")
    with pytest.raises(InvalidInput, match="not valid"):
        parse_ref(("a", 0))
    register("known", table())
    with pytest.raises(NotFound, match="versions are 1 to 1"):
        get_dataset_version("known@7")
    with pytest.raises(NotFound, match="mloop data list"):
        list_versions("unknown")


@pytest.mark.parametrize("reference", [None, True], ids=["copied", "referenced"])
def test_a_file_changing_while_registered_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reference: bool | None
) -> None:
    source = write_csv(tmp_path / "live.csv", 10)
    original = _statistics.compute_statistics

    def writer_meanwhile(*args: object, **kwargs: object) -> object:
        result = original(*args, **kwargs)  # type: ignore[arg-type]
        with source.open("a") as handle:
            handle.write("99,z\n")
        return result

    monkeypatch.setattr(_statistics, "compute_statistics", writer_meanwhile)
    with pytest.raises(InvalidInput, match="changed while it was being registered"):
        register("live", source, reference=reference)
    assert list_datasets() == []


# -- diff -------------------------------------------------------------------------------------


def test_diff_reports_files_rows_schema_and_statistics(tmp_path: Path) -> None:
    folder = tmp_path / "v"
    write_parquet(folder / "a.parquet", table(40))
    write_parquet(folder / "b.parquet", table(40, offset=40))
    one = register("d", folder)
    (folder / "b.parquet").unlink()

    def changed(offset: int) -> pa.Table:
        return pa.table(
            {
                "x": [float(i + offset) for i in range(40)],
                "city": [i % 3 for i in range(40)],
                "extra": list(range(40)),
            }
        )

    write_parquet(folder / "a.parquet", changed(0))
    write_parquet(folder / "c.parquet", changed(1000))
    two = register("d", folder)
    result = diff(one, "d@2")
    assert (result.a, result.b) == ("d@1", "d@2")
    assert result.changed
    assert result.files_added == ["c.parquet"]
    assert result.files_removed == ["b.parquet"]
    assert result.files_changed == ["a.parquet"]
    assert (result.rows_a, result.rows_b) == (80, 80)
    changes = {(c.column, c.change) for c in result.schema_changes}
    assert ("city", "type_changed") in changes
    assert ("extra", "added") in changes
    assert any(s.column == "x" and s.statistic == "mean" for s in result.stat_shifts)
    assert result.drift is not None
    assert "x" in result.drift.drifted_features()
    data = result.to_dict()
    assert data["files"]["added"] == ["c.parquet"]
    assert data["drift"]["features"]
    same = diff(two, two)
    assert not same.changed
    assert same.schema_changes == []
    assert same.stat_shifts == []


def test_dataset_versions_compare_by_identity(tmp_path: Path) -> None:
    version = register("eq", table())
    again = get_dataset_version("eq@1")
    assert isinstance(again, DatasetVersion)
    assert version == again
    assert hash(version) == hash(again)
    assert version != object()
    assert version.to_dict()["ref"] == "eq@1"
    assert repr(version).startswith("<DatasetVersion eq@1 rows=20 files=1 stored")
    assert pd.DataFrame(version.to_pandas()).shape == (20, 2)


def test_a_file_uri_glob_can_be_copied_instead_of_referenced(tmp_path: Path) -> None:
    write_csv(tmp_path / "d" / "a.csv", 4)
    write_csv(tmp_path / "d" / "b.csv", 6)
    write_csv(tmp_path / "d" / "sub" / "c.csv", 6)
    version = register("g", f"file://{tmp_path}/d/*.csv", reference=False)
    assert version.storage == "stored"
    assert [f.path for f in version.files] == ["a.csv", "b.csv"]
    assert all(f.uri is None and f.digest for f in version.files)
    assert version.num_rows == 10
    for file in (tmp_path / "d").glob("*.csv"):
        file.unlink()
    assert version.to_arrow().num_rows == 10
    assert version.verify(deep=True) == []


def test_cli_arguments_resolve_to_statistics_and_tables(tmp_path: Path) -> None:
    from mloop.data._sources import is_ref, load_statistics, load_table

    source = write_parquet(tmp_path / "d.parquet", table())
    register("args", source)
    assert is_ref("args@1")
    assert not is_ref(str(source))
    assert load_statistics("args@latest").num_rows == 20
    assert load_statistics(source.as_uri()).num_rows == 20
    assert load_table("args@1").num_rows == 20
    assert load_table(source.as_uri()).num_rows == 20
    assert load_table(str(source)).num_rows == 20
    saved = tmp_path / "saved.stats"
    saved.write_bytes(load_statistics(str(source)).to_bytes())
    assert load_statistics(str(saved)).num_rows == 20
    with pytest.raises(InvalidInput, match="neither an existing path nor a dataset reference"):
        load_table("x@y@z")
