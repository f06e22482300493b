"""Encrypted blobs on a real S3-compatible server (moto): round trips, and no plaintext in S3."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import boto3
import pytest

from mloop.artifacts import (
    ArtifactStore,
    BlobInfo,
    FileKeyProvider,
    generate_kek_file,
    open_artifact_store,
    rewrap_store,
)
from mloop.artifacts._encryption import DEFAULT_SEGMENT_SIZE, MAGIC
from mloop.errors import EncryptionKeyError, IntegrityError

pytestmark = pytest.mark.s3

CANARY = b"S3-PLAINTEXT-CANARY-"
PREFIX = "team/artifacts"


@pytest.fixture
def kek(tmp_path: Path) -> FileKeyProvider:
    generate_kek_file(tmp_path / "s3.kek")
    return FileKeyProvider(tmp_path / "s3.kek")


@pytest.fixture
def store(s3_bucket: str, moto_endpoint: str, kek: FileKeyProvider) -> ArtifactStore:
    return open_artifact_store(
        f"s3://{s3_bucket}/{PREFIX}", s3_endpoint_url=moto_endpoint, key_provider=kek
    )


def _object(s3_bucket: str, moto_endpoint: str, digest: str) -> bytes:
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    key = f"{PREFIX}/blobs/sha256/{digest[:2]}/{digest[2:]}"
    body: bytes = s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    return body


def _put_object(s3_bucket: str, moto_endpoint: str, digest: str, body: bytes) -> None:
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    key = f"{PREFIX}/blobs/sha256/{digest[:2]}/{digest[2:]}"
    s3.put_object(Bucket=s3_bucket, Key=key, Body=body)


@pytest.mark.parametrize("size", [0, 1000, 2 * DEFAULT_SEGMENT_SIZE + 123])
def test_round_trip_and_no_plaintext_in_the_bucket(
    store: ArtifactStore, s3_bucket: str, moto_endpoint: str, size: int, tmp_path: Path
) -> None:
    data = (CANARY * (size // len(CANARY) + 1))[:size]

    info = store.put_stream(io.BytesIO(data))

    assert info == BlobInfo(hashlib.sha256(data).hexdigest(), size)
    assert store.get_bytes(info.digest) == data
    assert store.size(info.digest) == size
    store.download(info.digest, tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == data
    stored = _object(s3_bucket, moto_endpoint, info.digest)
    assert stored.startswith(MAGIC)
    assert CANARY[:10] not in stored


def test_de_duplication_writes_nothing_new(
    store: ArtifactStore, s3_bucket: str, moto_endpoint: str
) -> None:
    data = os.urandom(DEFAULT_SEGMENT_SIZE + 7)
    digest = store.put_bytes(data).digest
    before = _object(s3_bucket, moto_endpoint, digest)

    store.put_stream(io.BytesIO(data))

    assert _object(s3_bucket, moto_endpoint, digest) == before
    assert [b.digest for b in store.list()] == [digest]


def test_wrong_key_and_tampering_on_s3(
    store: ArtifactStore, s3_bucket: str, moto_endpoint: str, tmp_path: Path
) -> None:
    digest = store.put_bytes(CANARY * 1000).digest
    generate_kek_file(tmp_path / "other.kek")
    other = open_artifact_store(
        f"s3://{s3_bucket}/{PREFIX}",
        s3_endpoint_url=moto_endpoint,
        key_provider=FileKeyProvider(tmp_path / "other.kek"),
    )

    with pytest.raises(EncryptionKeyError, match="is encrypted with key-encryption key"):
        other.get_bytes(digest)

    stored = bytearray(_object(s3_bucket, moto_endpoint, digest))
    stored[-20] ^= 0xFF
    _put_object(s3_bucket, moto_endpoint, digest, bytes(stored))
    with pytest.raises(IntegrityError, match="fails authentication"):
        store.get_bytes(digest)


def test_rewrap_on_s3(
    store: ArtifactStore, kek: FileKeyProvider, s3_bucket: str, moto_endpoint: str, tmp_path: Path
) -> None:
    digest = store.put_bytes(CANARY).digest
    generate_kek_file(tmp_path / "new.kek")
    new = FileKeyProvider(tmp_path / "new.kek")
    rotated = open_artifact_store(
        f"s3://{s3_bucket}/{PREFIX}", s3_endpoint_url=moto_endpoint, key_provider=new
    )

    assert rewrap_store(rotated, previous=kek).rewrapped == 1

    assert new.key_id.encode() in _object(s3_bucket, moto_endpoint, digest)
    assert rotated.get_bytes(digest) == CANARY
