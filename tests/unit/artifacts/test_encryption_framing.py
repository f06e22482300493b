"""Property tests of the envelope: segment framing, and what any change to it leads to."""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import random
import secrets

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mloop.artifacts import ArtifactStore, FileKeyProvider, KeyProvider
from mloop.artifacts._encryption import (
    MAGIC,
    MIN_SEGMENT_SIZE,
    PREFIX_BYTES,
    TAG_BYTES,
    EnvelopeHeader,
    open_plaintext,
    plaintext_size,
    read_header,
    seal,
)
from mloop.artifacts._kek import kek_document, parse_kek
from mloop.artifacts._memory import MemoryBackend
from mloop.errors import ConfigError, EncryptionKeyError, IntegrityError

EXAMPLES = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> KeyProvider:
    path = tmp_path_factory.mktemp("kek") / "k.kek"
    path.write_bytes(kek_document(secrets.token_bytes(32)))
    return FileKeyProvider(path)


def _chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def _envelope(provider: KeyProvider, data: bytes, segment_size: int) -> tuple[str, bytes]:
    out = io.BytesIO()
    digest, _ = seal([data], out, provider, segment_size=segment_size)
    return digest, out.getvalue()


def _store_with(digest: str, stored: bytes, provider: KeyProvider) -> ArtifactStore:
    backend = MemoryBackend()
    backend.objects[f"blobs/sha256/{digest[:2]}/{digest[2:]}"] = stored
    return ArtifactStore(backend, key_provider=provider)


segment_sizes = st.integers(min_value=MIN_SEGMENT_SIZE, max_value=200)
contents = st.binary(max_size=1500)


@EXAMPLES
@given(data=contents, segment_size=segment_sizes, cuts=st.lists(st.integers(0, 2000)))
def test_any_content_in_any_chunks_round_trips(
    provider: KeyProvider, data: bytes, segment_size: int, cuts: list[int]
) -> None:
    out = io.BytesIO()

    digest, size = seal(_chunked(data, cuts), out, provider, segment_size=segment_size)

    stored = out.getvalue()
    header = len(stored) - len(data) - TAG_BYTES * max(1, -(-len(data) // segment_size))
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert stored.startswith(MAGIC)
    assert stored[13:45] == bytes.fromhex(digest)
    _, parsed = read_header(io.BytesIO(stored), digest, "memory://")
    assert parsed is not None
    assert len(parsed.to_bytes()) == header
    assert plaintext_size(io.BytesIO(stored), digest, len(stored), "memory://") == len(data)
    assert open_plaintext(io.BytesIO(stored), digest, provider, "memory://").read() == data
    with open_plaintext(io.BytesIO(stored), digest, provider, "memory://") as reader:
        pieces = iter(lambda: reader.read(segment_size // 3 + 1), b"")
        assert b"".join(pieces) == data


@EXAMPLES
@given(
    data=st.binary(min_size=1, max_size=600),
    segment_size=segment_sizes,
    at=st.integers(min_value=0),
    bit=st.integers(0, 7),
)
def test_any_flipped_bit_is_refused(
    provider: KeyProvider, data: bytes, segment_size: int, at: int, bit: int
) -> None:
    digest, stored = _envelope(provider, data, segment_size)
    at %= len(stored)
    changed = stored[:at] + bytes([stored[at] ^ (1 << bit)]) + stored[at + 1 :]

    with pytest.raises((IntegrityError, ConfigError)):
        _store_with(digest, changed, provider).get_bytes(digest)


@EXAMPLES
@given(data=st.binary(max_size=600), segment_size=segment_sizes, cut=st.integers(min_value=1))
def test_any_truncation_or_extension_is_refused(
    provider: KeyProvider, data: bytes, segment_size: int, cut: int
) -> None:
    digest, stored = _envelope(provider, data, segment_size)
    shorter = stored[: cut % len(stored)]
    longer = stored + secrets.token_bytes(1 + cut % 300)

    for changed in (shorter, longer):
        store = _store_with(digest, changed, provider)
        if len(changed) < PREFIX_BYTES:
            # Too short to be an envelope, so read as plaintext: only the content itself
            # (the empty blob cut to nothing, say) can pass verification.
            with contextlib.suppress(IntegrityError):
                assert store.get_bytes(digest) == data
            continue
        with pytest.raises(IntegrityError):
            store.get_bytes(digest)


@EXAMPLES
@given(
    length=st.integers(min_value=2 * MIN_SEGMENT_SIZE + 1, max_value=800),
    segment_size=st.integers(MIN_SEGMENT_SIZE, 64),
    draw=st.data(),
)
def test_any_reordering_of_segments_is_refused(
    provider: KeyProvider, length: int, segment_size: int, draw: st.DataObject
) -> None:
    data = random.Random(length).randbytes(length)
    digest, stored = _envelope(provider, data, segment_size)
    sealed = segment_size + TAG_BYTES
    count = -(-length // segment_size)
    start = len(stored) - length - TAG_BYTES * count
    segments = [stored[start + i * sealed : start + (i + 1) * sealed] for i in range(count)]
    order = draw.draw(
        st.permutations(range(count)).filter(lambda p: p != list(range(count))), label="order"
    )
    shuffled = b"".join(segments[i] for i in order)

    with pytest.raises(IntegrityError, match="fails authentication"):
        _store_with(digest, stored[:start] + shuffled, provider).get_bytes(digest)


@EXAMPLES
@given(fields=st.binary(max_size=200))
def test_header_parsing_never_fails_with_anything_but_a_clear_error(
    provider: KeyProvider, fields: bytes
) -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    preamble = MAGIC + b"\x01" + (32 + len(fields)).to_bytes(4, "big") + bytes.fromhex(digest)
    stored = preamble + fields + b"\x00" * 40

    try:
        _, header = read_header(io.BytesIO(stored), digest, "memory://")
    except IntegrityError:
        return
    assert isinstance(header, EnvelopeHeader)
    assert EnvelopeHeader.from_fields(header.to_bytes()[13:]) == header


@EXAMPLES
@given(content=st.binary(max_size=300))
def test_kek_parsing_returns_a_key_or_a_clear_error(content: bytes) -> None:
    try:
        key = parse_kek(content)
    except EncryptionKeyError as exc:
        error = exc
    else:
        assert len(key) == 32
        return
    assert "mloop keys kek" in str(error)


@EXAMPLES
@given(key=st.binary(min_size=32, max_size=32))
def test_kek_documents_round_trip(key: bytes) -> None:
    assert parse_kek(kek_document(key)) == key


def test_the_smallest_blobs_have_one_final_segment(provider: KeyProvider) -> None:
    digest, stored = _envelope(provider, b"", 64)
    _, header = read_header(io.BytesIO(stored), digest, "memory://")

    assert header is not None
    assert len(stored) == len(header.to_bytes()) + TAG_BYTES
    assert _store_with(digest, stored, provider).get_bytes(digest) == b""
