"""Readers: the same data gives the same statistics in every format, and every bad input
fails with one line that names the file and says what to do."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from mloop.data import _readers
from mloop.data._readers import (
    CorruptDataError,
    DataSourceError,
    EmptyDataError,
    UnknownFormatError,
)
from mloop.data._statistics import DatasetStatistics, compute_statistics, statistics_of_table
from mloop.errors import InvalidInput


def sample_table(rows: int = 300, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "num": rng.normal(size=rows).round(6),
            "count": rng.integers(0, 50, rows),
            "city": rng.choice(["paris", "oslo", "lima"], rows),
        }
    )


def write_jsonl(table: pa.Table, path: Path) -> None:
    with path.open("w") as f:
        for row in table.to_pylist():
            f.write(json.dumps(row) + "\n")


def exact_view(stats: DatasetStatistics) -> dict[str, object]:
    """The summary with dtypes left out and floats rounded to 9 significant digits: batch
    boundaries differ between formats, which moves the last bits of means and spreads.
    Samples stay under the KLL sketch's k, so quantiles are exact and must agree."""
    out: dict[str, object] = {"rows": stats.num_rows}
    for name, f in stats.features.items():
        summary = f.to_dict()
        summary.pop("dtype")
        out[name] = rounded(summary)
    return out


def rounded(value: object) -> object:
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v) for v in value]
    return value


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text
    return text


def test_csv_jsonl_and_parquet_give_the_same_statistics(tmp_path: Path) -> None:
    table = sample_table()
    pq.write_table(table, tmp_path / "d.parquet", row_group_size=100)
    pacsv.write_csv(table, tmp_path / "d.csv")
    write_jsonl(table, tmp_path / "d.jsonl")
    with gzip.open(tmp_path / "d.csv.gz", "wb") as f:
        f.write((tmp_path / "d.csv").read_bytes())
    expected = exact_view(statistics_of_table(table))
    for name in ("d.parquet", "d.csv", "d.jsonl", "d.csv.gz"):
        got = exact_view(compute_statistics(tmp_path / name, executor="inline"))
        assert got == expected, name


def test_parquet_row_groups_become_partitions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_readers, "PARTITION_ROWS", 150)
    pq.write_table(sample_table(), tmp_path / "d.parquet", row_group_size=100)
    partitions = _readers.file_partitions(tmp_path / "d.parquet")
    assert [p.row_groups for p in partitions] == [(0, 1), (2,)]  # type: ignore[attr-defined]
    assert sum(p.weight for p in partitions) <= (tmp_path / "d.parquet").stat().st_size


def test_folder_and_glob_sources(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "nested").mkdir(parents=True)
    parts = [sample_table(100, seed) for seed in range(3)]
    pq.write_table(parts[0], data / "a.parquet")
    pacsv.write_csv(parts[1], data / "nested" / "b.csv")
    write_jsonl(parts[2], data / "c.jsonl")
    (data / "_SUCCESS").write_text("")
    (data / ".hidden.csv").write_text("junk,\n1,2,3\n")
    (data / "README").write_text("not data")
    expected = exact_view(statistics_of_table(pa.concat_tables(parts)))
    assert exact_view(compute_statistics(data, executor="inline")) == expected
    assert exact_view(compute_statistics(str(data / "**" / "*.*"), executor="inline")) == expected
    assert (
        compute_statistics([data / "a.parquet", data / "c.jsonl"], executor="inline").num_rows
        == 200
    )


def test_parquet_detected_by_magic_bytes(tmp_path: Path) -> None:
    pq.write_table(sample_table(10), tmp_path / "part-00000")
    assert compute_statistics(tmp_path / "part-00000", executor="inline").num_rows == 10
    assert compute_statistics(tmp_path, executor="inline").num_rows == 10


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError) as info:
        compute_statistics(tmp_path / "nope.parquet")
    assert "nope.parquet does not exist" in one_line(info.value)
    with pytest.raises(DataSourceError, match="matches no files"):
        compute_statistics(str(tmp_path / "*.csv"))


def test_empty_inputs(tmp_path: Path) -> None:
    (tmp_path / "zero.csv").write_bytes(b"")
    with pytest.raises(EmptyDataError) as info:
        compute_statistics(tmp_path / "zero.csv")
    assert "zero.csv is empty (0 bytes)" in one_line(info.value)
    (tmp_path / "header.csv").write_text("a,b\n")
    with pytest.raises(EmptyDataError, match=r"header\.csv contains no rows"):
        compute_statistics(tmp_path / "header.csv")
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    with pytest.raises(EmptyDataError, match="holds no data files"):
        compute_statistics(empty_dir)


def test_in_memory_empty_table_is_allowed() -> None:
    stats = compute_statistics(pa.table({"x": pa.array([], pa.float64())}))
    assert stats.num_rows == 0
    assert stats.features["x"].count == 0


def test_corrupt_parquet(tmp_path: Path) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1" + b"\x00" * 100)
    with pytest.raises(CorruptDataError) as info:
        compute_statistics(bad)
    message = one_line(info.value)
    assert "bad.parquet is not a readable Parquet file" in message
    assert "re-export it" in message


def test_parquet_with_corrupt_pages(tmp_path: Path) -> None:
    path = tmp_path / "pages.parquet"
    pq.write_table(sample_table(5000), path, compression="snappy")
    data = bytearray(path.read_bytes())
    for i in range(4, 40):  # trample the first page header, keep the footer
        data[i] = 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptDataError, match=r"pages\.parquet is not a readable Parquet file"):
        compute_statistics(path, executor="inline")


def test_ragged_csv_names_the_row(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("a,b,c\n1,2,3\n4,5,6\n7,8,9,10\n")
    with pytest.raises(CorruptDataError) as info:
        compute_statistics(path)
    message = one_line(info.value)
    assert "ragged.csv: row 3 (line 4) has 4 fields, expected 3" in message


def test_csv_type_change_mid_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_readers, "CSV_BLOCK_SIZE", 256)
    path = tmp_path / "drift.csv"
    rows = [f"{i},{i % 7}" for i in range(300)] + ["300,seven"]
    path.write_text("id,amount\n" + "\n".join(rows) + "\n")
    with pytest.raises(CorruptDataError) as info:
        compute_statistics(path)
    message = one_line(info.value)
    assert "drift.csv: column 'amount' was read as int64" in message
    assert "'seven' at row 301 (line 302)" in message


def test_jsonl_type_change_and_bad_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_readers, "CSV_BLOCK_SIZE", 256)
    path = tmp_path / "drift.jsonl"
    lines = [json.dumps({"a": i}) for i in range(100)] + [json.dumps({"a": "x"})]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CorruptDataError) as info:
        compute_statistics(path)
    assert "drift.jsonl: line 101: Column(/a) changed from number to string" in one_line(info.value)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"a": 1}\n{"a": }\n')
    with pytest.raises(CorruptDataError, match=r"broken.jsonl: line 2: Invalid value"):
        compute_statistics(broken)


def test_unknown_format(tmp_path: Path) -> None:
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"PK\x03\x04 not parquet")
    with pytest.raises(UnknownFormatError) as info:
        compute_statistics(path)
    message = one_line(info.value)
    assert "data.xlsx: unknown data format" in message
    assert ".parquet" in message


def test_errors_are_invalid_input() -> None:
    assert issubclass(DataSourceError, InvalidInput)
    for cls in (EmptyDataError, CorruptDataError, UnknownFormatError):
        assert issubclass(cls, DataSourceError)


def test_type_conflict_between_files_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("x\n1\n2\n")
    (tmp_path / "b.csv").write_text("x\nred\nblue\n")
    with pytest.raises(DataSourceError) as info:
        compute_statistics(tmp_path, executor="inline")
    message = one_line(info.value)
    assert "b.csv" in message
    assert "make the column's type the same everywhere" in message


def test_table_partition_pickles_only_its_slice() -> None:
    import pickle

    table = pa.table({"x": np.arange(100_000, dtype=np.float64)})
    whole = len(pickle.dumps(_readers.TablePartition(table)))
    part = _readers.TablePartition(table.slice(0, 1000))
    data = pickle.dumps(part)
    assert len(data) < whole / 50
    assert pickle.loads(data).table.equals(table.slice(0, 1000))


def test_local_process_pool_over_a_folder_equals_inline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_readers, "PARTITION_ROWS", 30)
    for i in range(4):
        pq.write_table(sample_table(90, i), tmp_path / f"p{i}.parquet", row_group_size=30)
    (tmp_path / "extra.csv").write_text("num,city,other\n1.5,rome,x\n")
    inline = compute_statistics(tmp_path, executor="inline")
    progress: list[tuple[int, int]] = []
    local = compute_statistics(
        tmp_path, executor="local", progress=lambda d, t: progress.append((d, t))
    )
    assert exact_view(local) == exact_view(inline)
    assert local.num_rows == 361
    assert progress[-1][0] == progress[-1][1]


def test_relative_paths_work_in_worker_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_readers, "PARTITION_ROWS", 10)
    data = tmp_path / "rel"
    data.mkdir()
    for i in range(2):
        pq.write_table(sample_table(20, i), data / f"p{i}.parquet", row_group_size=10)
    monkeypatch.chdir(tmp_path)
    assert compute_statistics("rel", executor="local").num_rows == 40
    assert compute_statistics("rel/*.parquet", executor="local").num_rows == 40
