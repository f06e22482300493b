"""The prediction log: durable appends, compaction to Parquet, reads that merge both."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mloop.errors import ConfigError, InvalidInput
from mloop.registry._names import deployment_name
from mloop.serving._predlog import PredictionLog, PredictionRecord, read_predictions
from mloop.serving._predlog_store import check_deployment
from mloop.serving._predlog_wal import encode_frame, segments

HOUR = 3_600_000
T0 = int(datetime(2026, 3, 1, 10, 30, tzinfo=UTC).timestamp() * 1000)


def record(
    n: int, *, time_ms: int = T0, deployment: str = "iris", **changes: object
) -> PredictionRecord:
    fields: dict[str, object] = {
        "request_id": f"req-{n}",
        "time_ms": time_ms + n,
        "deployment": deployment,
        "model": "iris",
        "version": 3,
        "role": "primary",
        "inputs": {"x": [[5.1, 3.5, 1.4, 0.2]]},
        "outputs": {"label": ["setosa"]},
        "latency_ms": 1.25,
        "guards": {"atypical": 0.1},
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
    }
    fields.update(changes)
    return PredictionRecord(**fields)  # type: ignore[arg-type]


@pytest.fixture
def root(tmp_path: Path) -> str:
    return str(tmp_path / "log")


@pytest.fixture
def log(root: str) -> PredictionLog:
    return PredictionLog(root, compact_interval=None)


def ids(table: object) -> list[str]:
    return table.column("request_id").to_pylist()  # type: ignore[attr-defined,no-any-return]


def test_round_trip_before_and_after_compaction(log: PredictionLog, root: str) -> None:
    log.append(record(0))
    log.append_many([record(1), record(2, role="shadow", needs_review=True)])

    before = read_predictions(root, "iris")
    assert log.compact_now() == 3
    after = read_predictions(root, "iris")

    assert before.to_pylist() == after.to_pylist()
    row = after.to_pylist()[2]
    assert row["request_id"] == "req-2"
    assert row["deployment"] == "iris"
    assert row["role"] == "shadow"
    assert row["needs_review"] is True
    assert orjson.loads(row["inputs"]) == {"x": [[5.1, 3.5, 1.4, 0.2]]}
    assert orjson.loads(row["guards"]) == {"atypical": 0.1}
    assert row["time"] == datetime.fromtimestamp((T0 + 2) / 1000, UTC)
    assert segments(log.wal_root / "iris" / "predictions") == []
    log.close()


def test_numpy_inputs_are_stored_as_json(log: PredictionLog, root: str) -> None:
    log.append(record(0, inputs=np.array([[1.0, 2.0]]), outputs=np.array([0.25])))
    log.close()

    row = read_predictions(root, "iris").to_pylist()[0]
    assert (orjson.loads(row["inputs"]), orjson.loads(row["outputs"])) == ([[1.0, 2.0]], [0.25])


def test_parquet_layout_is_hive_partitioned_and_polars_reads_it(
    log: PredictionLog, root: str
) -> None:
    log.append_many([record(0), record(1, time_ms=T0 + HOUR), record(2, deployment="other")])
    log.close()

    parts = sorted(str(p.relative_to(root)) for p in Path(root).rglob("*.parquet"))
    assert [p.rsplit("/", 1)[0] for p in parts] == [
        "deployment=iris/date=2026-03-01/hour=10",
        "deployment=iris/date=2026-03-01/hour=11",
        "deployment=other/date=2026-03-01/hour=10",
    ]
    frame = pl.scan_parquet(f"{root}/deployment=*/*/*/*.parquet", hive_partitioning=True).collect()
    assert sorted(zip(frame["request_id"], frame["deployment"], frame["hour"], strict=True)) == [
        ("req-0", "iris", 10),
        ("req-1", "iris", 11),
        ("req-2", "other", 10),
    ]


def test_since_and_until(log: PredictionLog, root: str) -> None:
    log.append_many([record(n, time_ms=T0 + n * HOUR) for n in range(4)])
    log.compact_now()
    log.append(record(9, time_ms=T0 + 2 * HOUR))  # still in the WAL

    window = read_predictions(
        root, "iris", since=T0 + HOUR, until=datetime(2026, 3, 1, 12, 30, 0, 10000)
    )
    assert ids(window) == ["req-1", "req-2", "req-9"]
    assert read_predictions(root, "iris", since=T0 + 10 * HOUR).num_rows == 0
    log.close()


def test_torn_tail_of_a_crashed_writer_is_dropped_and_the_rest_recovered(root: str) -> None:
    crashed = PredictionLog(root, compact_interval=None)
    crashed.append_many([record(0), record(1)])
    crashed._log.writer("iris").roll()  # what a dead writer leaves: an unlocked segment
    (segment,) = segments(crashed.wal_root / "iris" / "predictions")
    with segment.open("ab") as stream:  # a write cut off by the crash: never acknowledged
        stream.write(encode_frame(orjson.dumps(record(2)))[:-5])

    assert ids(read_predictions(root, "iris")) == ["req-0", "req-1"]
    reopened = PredictionLog(root, compact_interval=None)
    assert reopened.compact_now() == 2
    reopened.close()
    assert ids(read_predictions(root, "iris")) == ["req-0", "req-1"]
    assert segments(crashed.wal_root / "iris" / "predictions") == []
    crashed.close()


def test_compaction_is_idempotent(log: PredictionLog, root: str, tmp_path: Path) -> None:
    log.append_many([record(0), record(1, time_ms=T0 + HOUR)])
    log._log.writer("iris").roll()
    (segment,) = segments(log.wal_root / "iris" / "predictions")
    kept = tmp_path / "segment"
    shutil.copy(segment, kept)
    assert log.compact_now() == 2
    parts = sorted(Path(root).rglob("*.parquet"))

    shutil.copy(kept, segment)  # a crash after the Parquet write, before the delete
    assert ids(read_predictions(root, "iris")) == ["req-0", "req-1"]  # WAL + Parquet, once
    assert log.compact_now() == 2
    assert sorted(Path(root).rglob("*.parquet")) == parts  # same part names, rewritten
    assert ids(read_predictions(root, "iris")) == ["req-0", "req-1"]
    log.close()


def test_a_request_answered_twice_is_kept_twice(log: PredictionLog, root: str) -> None:
    log.append_many([record(0), record(0, role="shadow", model="iris-v2")])
    log.close()

    table = read_predictions(root, "iris")
    assert ids(table) == ["req-0", "req-0"]
    assert sorted(table.column("role").to_pylist()) == ["primary", "shadow"]


def test_background_compaction(root: str) -> None:
    import time

    log = PredictionLog(root, roll_interval=0.0, compact_interval=0.05)
    log.append(record(0))
    deadline = time.monotonic() + 10
    while not list(Path(root).rglob("*.parquet")):
        assert time.monotonic() < deadline, "the compactor never ran"
        time.sleep(0.02)
    log.close()
    assert ids(read_predictions(root, "iris")) == ["req-0"]


def test_compaction_in_a_low_priority_child_process(root: str) -> None:
    import os
    import time

    import psutil

    log = PredictionLog(root, roll_interval=0.0, compact_interval=0.05, compact_in="process")
    for i in range(3):
        log.append(record(i))
    deadline = time.monotonic() + 60  # started one interval in; it starts an interpreter
    while not list(Path(root).rglob("*.parquet")):
        assert time.monotonic() < deadline, "the compactor process never compacted"
        time.sleep(0.02)
    assert log._compactor is not None
    child = psutil.Process(log._compactor.process.pid)
    assert child.pid != os.getpid()
    assert child.nice() == 19
    log.close()
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
    assert sorted(ids(read_predictions(root, "iris"))) == ["req-0", "req-1", "req-2"]


def test_a_compactor_process_that_dies_is_replaced(root: str) -> None:
    import time

    log = PredictionLog(root, roll_interval=0.0, compact_interval=0.05, compact_in="process")
    deadline = time.monotonic() + 60
    while log._compactor is None:
        assert time.monotonic() < deadline, "the compactor process never started"
        time.sleep(0.02)
    first = log._compactor.process
    first.kill()
    first.join(10)
    log.append(record(7))
    deadline = time.monotonic() + 60  # the watchdog looks every 5 s at most
    while not list(Path(root).rglob("*.parquet")):
        assert time.monotonic() < deadline, "nothing compacted after the compactor died"
        time.sleep(0.05)
    assert log._compactor.process.pid != first.pid
    log.close()
    assert ids(read_predictions(root, "iris")) == ["req-7"]


def test_bad_deployment_names_and_closed_logs(log: PredictionLog, root: str) -> None:
    with pytest.raises(InvalidInput, match=r"deployment name '\.\./x' is not valid"):
        log.append(record(0, deployment="../x"))
    with pytest.raises(InvalidInput, match="not valid"):
        read_predictions(root, "a/b")
    log.close()
    with pytest.raises(ConfigError, match="closed"):
        log.append(record(1))


def test_unknown_fsync_policy(root: str) -> None:
    with pytest.raises(ConfigError, match="unknown fsync policy 'maybe'"):
        PredictionLog(root, fsync="maybe")


@pytest.mark.parametrize("fsync", [True, False, "group"])
def test_every_policy_logs(root: str, fsync: bool | str) -> None:
    with PredictionLog(root, fsync=fsync, compact_interval=None) as log:
        log.append(record(0))
    assert ids(read_predictions(root, "iris")) == ["req-0"]


def test_default_root_and_wal_come_from_settings(tmp_path: Path) -> None:
    with PredictionLog(compact_interval=None) as log:
        log.append(record(0))
        assert log.wal_root == (tmp_path / "mloop-home" / "wal").absolute()
    assert (tmp_path / "mloop-home" / "predictions" / "deployment=iris").is_dir()
    assert ids(read_predictions(None, "iris")) == ["req-0"]


@pytest.mark.s3
def test_s3_root(s3_bucket: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOOP_S3_ENDPOINT_URL", moto_endpoint)
    root = f"s3://{s3_bucket}/logs"
    with PredictionLog(root, compact_interval=None) as log:
        log.append_many([record(0), record(1, time_ms=T0 + HOUR)])
        assert ids(read_predictions(root, "iris")) == ["req-0", "req-1"]

    assert ids(read_predictions(root, "iris")) == ["req-0", "req-1"]
    import boto3

    keys = [
        o["Key"]
        for o in boto3.client("s3", endpoint_url=moto_endpoint).list_objects_v2(Bucket=s3_bucket)[
            "Contents"
        ]
    ]
    assert sorted(k.rsplit("/", 1)[0] for k in keys) == [
        "logs/deployment=iris/date=2026-03-01/hour=10",
        "logs/deployment=iris/date=2026-03-01/hour=11",
    ]


def test_damage_in_the_middle_of_a_segment_loses_only_that_record(
    log: PredictionLog, root: str, caplog: pytest.LogCaptureFixture
) -> None:
    log.append_many([record(n) for n in range(5)])
    log._log.writer("iris").roll()
    (segment,) = segments(log.wal_root / "iris" / "predictions")
    data = bytearray(segment.read_bytes())
    middle = data.index(b"req-2")
    data[middle] ^= 0xFF  # a bad block inside the third record
    segment.write_bytes(bytes(data))

    assert ids(read_predictions(root, "iris")) == ["req-0", "req-1", "req-3", "req-4"]
    assert "skipped 1 damaged record" in caplog.text
    assert log.compact_now() == 4
    assert ids(read_predictions(root, "iris")) == ["req-0", "req-1", "req-3", "req-4"]
    log.close()


def test_a_new_log_recovers_segments_left_by_a_dead_process(root: str, tmp_path: Path) -> None:
    import time

    dead = PredictionLog(root, compact_interval=None)
    dead.append(record(0))
    (segment,) = segments(dead.wal_root / "iris" / "predictions")
    leftover = segment.read_bytes()
    dead.close()
    segment.parent.mkdir(parents=True, exist_ok=True)
    for part in Path(root).rglob("*.parquet"):
        part.unlink()
    (segment.parent / "0123456789abcdef0123456789abcdef.wal").write_bytes(leftover)  # unlocked

    fresh = PredictionLog(root, compact_interval=0.05)  # recovers in the background at once
    deadline = time.monotonic() + 10
    while segments(fresh.wal_root / "iris" / "predictions"):
        assert time.monotonic() < deadline, "the leftover segment was never compacted"
        time.sleep(0.02)
    fresh.close()
    assert ids(read_predictions(root, "iris")) == ["req-0"]


def test_close_keeps_the_wal_when_the_root_cannot_be_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    log = PredictionLog(str(blocked), compact_interval=None)
    log.append(record(0))
    log.close()  # does not raise: the record is safe in the write-ahead file

    assert "compaction at close failed" in caplog.text
    assert len(segments(log.wal_root / "iris" / "predictions")) == 1
    root = str(tmp_path / "log")
    with PredictionLog(root, compact_interval=None) as healthy:
        assert healthy.compact_now() == 1
    assert ids(read_predictions(root, "iris")) == ["req-0"]


@settings(deadline=None)
@given(
    st.one_of(
        st.text(min_size=1, max_size=260),
        st.from_regex(r"[A-Za-z0-9.][A-Za-z0-9._/-]{0,259}", fullmatch=True),
    )
)
def test_deployment_names_the_registry_accepts_are_single_folders(name: str) -> None:
    try:
        deployment_name(name)
        registry_ok = True
    except InvalidInput:
        registry_ok = False
    try:
        check_deployment(name)
    except InvalidInput:
        assert not registry_ok  # the registry refuses what the log cannot keep
        return
    assert registry_ok
    assert len(f"deployment={name}".encode()) <= 255
    assert name not in (".", "..")
    assert "/" not in name
    assert "\\" not in name
