"""The server's memory of files sent with new runs: by caller and digest, and bounded."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from mloop.tracking._run_files import DigestCache, ReceivedFiles

callers = st.sampled_from([None, "alice", "bob"])
contents = st.binary(max_size=64)


@given(st.lists(st.tuples(callers, contents), max_size=40), st.tuples(callers, contents))
def test_a_digest_resolves_only_to_bytes_that_caller_sent(
    sent: list[tuple[str | None, bytes]], asked: tuple[str | None, bytes]
) -> None:
    files = ReceivedFiles(max_files=1000, max_bytes=1 << 20)
    for caller, content in sent:
        assert files.remember(caller, content) == hashlib.sha256(content).hexdigest()
    caller, content = asked
    found, missing = files.resolve(caller, {"f": hashlib.sha256(content).hexdigest()})
    if (caller, content) in sent:
        assert found == {"f": content}
        assert missing == []
    else:
        assert found == {}
        assert missing == ["f"]


@given(st.lists(st.tuples(callers, st.binary(max_size=300)), max_size=60))
def test_the_memory_stays_within_its_bounds_keeping_the_newest(
    sent: list[tuple[str | None, bytes]],
) -> None:
    files = ReceivedFiles(max_files=8, max_bytes=1000)
    for caller, content in sent:
        files.remember(caller, content)
        assert len(files._files) <= 8
        assert sum(map(len, files._files.values())) <= 1000
        assert files._bytes == sum(map(len, files._files.values()))
    if sent:  # the one sent last is always there
        caller, content = sent[-1]
        found, _ = files.resolve(caller, {"f": hashlib.sha256(content).hexdigest()})
        assert found == {"f": content}


def test_resolving_returns_the_very_object_received_first() -> None:
    files = ReceivedFiles()
    first = b"lock" * 100
    digest = files.remember("alice", first)
    files.remember("alice", bytes(first))  # the same content again: the first one stays
    found, _ = files.resolve("alice", {"lock": digest})
    assert found["lock"] is first


def test_a_file_larger_than_the_whole_memory_is_not_kept() -> None:
    files = ReceivedFiles(max_files=4, max_bytes=10)
    digest = files.remember(None, b"x" * 11)
    assert files.resolve(None, {"big": digest}) == ({}, ["big"])


def test_digest_cache_hashes_each_object_once_and_never_confuses_objects() -> None:
    cache = DigestCache(limit=2)
    a, b, c = b"a" * 10, b"b" * 10, b"c" * 10
    for content in (a, b, c, a, b, c):
        assert cache.digest(content) == hashlib.sha256(content).hexdigest()
