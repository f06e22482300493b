"""Dataset versions against every metadata backend (SQLite, PostgreSQL) and against S3
objects referenced in place (moto)."""

from __future__ import annotations

import io
import multiprocessing
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mloop.artifacts import open_artifact_store
from mloop.config import get_settings
from mloop.data._versions import DatasetRegistry
from mloop.errors import IntegrityError, InvalidInput, NotFound
from mloop.store import open_store


@pytest.fixture
def registry(db_uri: str, tmp_path: Path) -> Iterator[DatasetRegistry]:
    reg = DatasetRegistry(open_store(db_uri), open_artifact_store(str(tmp_path / "blobs")))
    yield reg
    reg.close()


def frame(n: int, offset: int = 0) -> pa.Table:
    return pa.table(
        {"x": [float(i + offset) for i in range(n)], "k": [str(i % 4) for i in range(n)]}
    )


def test_versions_round_trip(registry: DatasetRegistry) -> None:
    one = registry.register("sales", frame(10), description="d1")
    assert registry.register("sales", frame(10)).version == 1
    two = registry.register("sales", frame(10, 5))
    assert (one.version, two.version) == (1, 2)
    assert registry.get("sales@latest") == two
    assert registry.get(("sales", 1)).description == "d1"
    assert [v.ref for v in registry.list_versions("sales")] == ["sales@1", "sales@2"]
    [summary] = registry.list_datasets()
    assert (summary.name, summary.latest_version, summary.num_versions) == ("sales", 2, 2)
    assert registry.get("sales@2").statistics().num_rows == 10
    with pytest.raises(NotFound):
        registry.get("sales@3")


def test_a_failed_registration_leaves_no_version(registry: DatasetRegistry, tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    pq.write_table(frame(5), folder / "a.parquet")
    (folder / "b.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(InvalidInput, match=r"b\.parquet"):
        registry.register("broken", folder)
    assert registry.list_datasets() == []


def _register_in_process(db_uri: str, blobs: str, source: str, gate: str, workers: int) -> int:
    """Register once every worker is ready, so the four really race."""
    registry = DatasetRegistry(open_store(db_uri), open_artifact_store(blobs))
    try:
        Path(gate, Path(source).stem).touch()
        deadline = time.monotonic() + 30
        while len(list(Path(gate).iterdir())) < workers and time.monotonic() < deadline:
            time.sleep(0.002)
        return registry.register("race", source).version
    finally:
        registry.close()


@pytest.mark.slow
def test_concurrent_registrations_get_consecutive_numbers(db_uri: str, tmp_path: Path) -> None:
    open_store(db_uri).close()  # migrate once, up front
    sources = []
    for i in range(4):
        path = tmp_path / f"part{i}.parquet"
        pq.write_table(frame(10, 100 * i), path)
        sources.append(str(path))
    blobs = str(tmp_path / "blobs")
    gate = tmp_path / "gate"
    gate.mkdir()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(4, mp_context=context) as pool:
        futures = [
            pool.submit(_register_in_process, db_uri, blobs, source, str(gate), 4)
            for source in sources
        ]
        numbers = [f.result(timeout=60) for f in futures]
    assert sorted(numbers) == [1, 2, 3, 4]
    registry = DatasetRegistry(open_store(db_uri), open_artifact_store(blobs))
    try:
        versions = registry.list_versions("race")
        assert [v.version for v in versions] == [1, 2, 3, 4]
        assert len({v.digest for v in versions}) == 4
    finally:
        registry.close()


# -- S3 references ----------------------------------------------------------------------------


def _put(client: object, bucket: str, key: str, table: pa.Table) -> None:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    client.put_object(Bucket=bucket, Key=key, Body=sink.getvalue())  # type: ignore[attr-defined]


@pytest.mark.s3
def test_s3_objects_are_referenced_with_their_etag_and_changes_are_caught(
    s3_bucket: str, moto_endpoint: str, tmp_path: Path
) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=moto_endpoint)
    _put(client, s3_bucket, "events/day=1/part.parquet", frame(10))
    _put(client, s3_bucket, "events/day=2/part.parquet", frame(15, 10))
    settings = get_settings(s3_endpoint_url=moto_endpoint)
    registry = DatasetRegistry(
        open_store(f"sqlite:///{tmp_path}/s3.db"),
        open_artifact_store(str(tmp_path / "blobs")),
        settings=settings,
    )
    try:
        version = registry.register("events", f"s3://{s3_bucket}/events/", compute_digest=True)
        assert version.storage == "reference"
        assert version.num_rows == 25
        assert [f.path for f in version.files] == ["day=1/part.parquet", "day=2/part.parquet"]
        etag = client.head_object(Bucket=s3_bucket, Key="events/day=1/part.parquet")["ETag"]
        assert version.files[0].etag == etag.strip('"')
        assert version.files[0].uri == f"s3://{s3_bucket}/events/day=1/part.parquet"
        assert version.files[0].digest is not None
        assert version.verify() == []
        assert version.to_arrow().num_rows == 25
        assert (
            registry.register("events", f"s3://{s3_bucket}/events/", compute_digest=True) == version
        )

        _put(client, s3_bucket, "events/day=1/part.parquet", frame(10, 99))
        [change] = registry.get("events@1").verify()
        assert change.change == "changed"
        assert "ETag" in change.detail
        with pytest.raises(IntegrityError, match="changed since it was registered"):
            version.to_arrow()
        assert version.to_arrow(allow_changed=True).column("x")[0].as_py() == 99.0

        client.delete_object(Bucket=s3_bucket, Key="events/day=2/part.parquet")
        assert [c.change for c in version.verify()] == ["changed", "missing"]

        copied = registry.register(
            "copied", f"s3://{s3_bucket}/events/day=1/*.parquet", reference=False
        )
        assert copied.storage == "stored"
        assert copied.files[0].uri is None
        client.delete_object(Bucket=s3_bucket, Key="events/day=1/part.parquet")
        assert copied.to_arrow().num_rows == 10  # the copy does not depend on the bucket
    finally:
        registry.close()


@pytest.mark.s3
def test_a_missing_s3_prefix_is_a_clear_error(
    s3_bucket: str, moto_endpoint: str, tmp_path: Path
) -> None:
    registry = DatasetRegistry(
        open_store(f"sqlite:///{tmp_path}/s3.db"),
        open_artifact_store(str(tmp_path / "blobs")),
        settings=get_settings(s3_endpoint_url=moto_endpoint),
    )
    try:
        with pytest.raises(InvalidInput, match="does not exist"):
            registry.register("none", f"s3://{s3_bucket}/nothing/here.parquet")
    finally:
        registry.close()


def test_the_datasets_migration_goes_down_and_up_again(db_uri: str) -> None:
    from alembic import command
    from sqlalchemy import inspect

    from mloop.store._engine import _alembic_config

    store = open_store(db_uri)
    try:
        assert {"datasets", "dataset_versions", "dataset_files"} <= set(
            inspect(store.engine).get_table_names()
        )
        with store.engine.begin() as conn:
            command.downgrade(_alembic_config(conn), "0001")
        assert "dataset_versions" not in inspect(store.engine).get_table_names()
        with store.engine.begin() as conn:
            command.upgrade(_alembic_config(conn), "head")
        assert "dataset_files" in inspect(store.engine).get_table_names()
    finally:
        store.close()
