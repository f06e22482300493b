"""The artifact store against a real S3-compatible server (moto)."""

from __future__ import annotations

import hashlib
import io
import random
from pathlib import Path

import boto3
import pytest

from mloop.artifacts import ArtifactStore, BlobInfo, open_artifact_store
from mloop.errors import IntegrityError, NotFound

pytestmark = pytest.mark.s3


@pytest.fixture
def store(s3_bucket: str, moto_endpoint: str) -> ArtifactStore:
    return open_artifact_store(f"s3://{s3_bucket}/team/artifacts", s3_endpoint_url=moto_endpoint)


def _key(digest: str) -> str:
    return f"team/artifacts/blobs/sha256/{digest[:2]}/{digest[2:]}"


class _Generated(io.RawIOBase):
    """Deterministic pseudo-random bytes, produced on demand so nothing big sits in memory."""

    def __init__(self, total: int, seed: int) -> None:
        self._left = total
        self._random = random.Random(seed)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self._left)
        buffer[:n] = self._random.randbytes(n)
        self._left -= n
        return n


def test_put_get_round_trip(store: ArtifactStore, s3_bucket: str, moto_endpoint: str) -> None:
    info = store.put_bytes(b"hello s3")

    assert info == BlobInfo(hashlib.sha256(b"hello s3").hexdigest(), 8)
    assert store.get_bytes(info.digest) == b"hello s3"
    assert store.exists(info.digest)
    assert store.size(info.digest) == 8
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    assert s3.get_object(Bucket=s3_bucket, Key=_key(info.digest))["Body"].read() == b"hello s3"


def test_list_and_delete(store: ArtifactStore) -> None:
    blobs = [store.put_bytes(f"blob {n}".encode()) for n in range(3)]

    assert list(store.list()) == sorted(blobs, key=lambda b: b.digest)

    store.delete(blobs[1].digest)

    assert not store.exists(blobs[1].digest)
    with pytest.raises(NotFound):
        store.get_bytes(blobs[1].digest)
    with pytest.raises(NotFound):
        store.delete(blobs[1].digest)


def test_same_content_is_stored_once(
    store: ArtifactStore, s3_bucket: str, moto_endpoint: str
) -> None:
    first = store.put_bytes(b"dup")
    second = store.put_stream(io.BytesIO(b"dup"))

    assert first == second
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    listed = s3.list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert [obj["Key"] for obj in listed] == [_key(first.digest)]


def test_streaming_put_of_a_large_stream(store: ArtifactStore) -> None:
    total = 20 << 20
    expected = hashlib.sha256()
    source = _Generated(total, seed=7)
    while chunk := source.read(1 << 20):
        expected.update(chunk)

    info = store.put_stream(io.BufferedReader(_Generated(total, seed=7)))

    assert info == BlobInfo(expected.hexdigest(), total)
    read_back = hashlib.sha256()
    with store.open(info.digest) as reader:
        while chunk := reader.read(1 << 20):
            read_back.update(chunk)
    assert read_back.hexdigest() == info.digest


def test_overwritten_object_is_detected(
    store: ArtifactStore, s3_bucket: str, moto_endpoint: str, tmp_path: Path
) -> None:
    digest = store.put_bytes(b"the real model").digest
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    s3.put_object(Bucket=s3_bucket, Key=_key(digest), Body=b"a poisoned model")

    with pytest.raises(IntegrityError, match=digest):
        store.get_bytes(digest)
    with store.open(digest) as reader, pytest.raises(IntegrityError):
        reader.read()
    with pytest.raises(IntegrityError):
        store.download(digest, tmp_path / "model.bin")
    assert list(tmp_path.iterdir()) == []
