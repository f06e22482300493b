"""The write-ahead framing: round trips, torn tails, damage in the middle, group commit."""

from __future__ import annotations

import threading
import zlib
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mloop.errors import ConfigError
from mloop.serving._predlog_wal import (
    HEADER,
    WalWriter,
    claimed,
    encode_frame,
    read_segment,
    scan_frames,
    segments,
)

json_objects = st.dictionaries(
    st.text(max_size=8),
    st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), st.text(max_size=40)),
    max_size=6,
).map(orjson.dumps)


@given(st.lists(json_objects, max_size=20))
def test_frames_round_trip(payloads: list[bytes]) -> None:
    data = b"".join(encode_frame(p) for p in payloads)

    scan = scan_frames(data)

    assert [p for _, p in scan.frames] == payloads
    assert (scan.damaged, scan.torn) == (0, False)


@given(st.lists(json_objects, min_size=1, max_size=10), st.data())
def test_a_cut_off_write_loses_only_the_last_frame(
    payloads: list[bytes], data: st.DataObject
) -> None:
    whole = b"".join(encode_frame(p) for p in payloads)
    last = len(encode_frame(payloads[-1]))
    cut = data.draw(st.integers(len(whole) - last + 1, len(whole) - 1))

    scan = scan_frames(whole[:cut])

    assert [p for _, p in scan.frames] == payloads[:-1]
    assert scan.torn
    assert scan.damaged == 0


@given(st.lists(json_objects, min_size=3, max_size=10), st.data())
def test_damage_in_the_middle_skips_that_frame_and_keeps_the_rest(
    payloads: list[bytes], data: st.DataObject
) -> None:
    frames = [encode_frame(p) for p in payloads]
    victim = data.draw(st.integers(0, len(frames) - 2))
    position = data.draw(st.integers(0, len(frames[victim]) - 1))
    damaged = bytearray(frames[victim])
    damaged[position] ^= data.draw(st.integers(1, 255))
    frames[victim] = bytes(damaged)

    scan = scan_frames(b"".join(frames))

    kept = [p for _, p in scan.frames]
    assert kept == payloads[:victim] + payloads[victim + 1 :]
    assert scan.damaged == 1
    assert not scan.torn


@given(st.binary(max_size=300))
def test_any_bytes_scan_without_raising(data: bytes) -> None:
    scan = scan_frames(data)
    for offset, payload in scan.frames:
        assert data[offset + 8 : offset + 8 + len(payload)] == payload


def test_the_crc_covers_the_length() -> None:
    frame = bytearray(encode_frame(b'{"a":1}'))
    frame[0] += 1  # a longer length: the CRC no longer matches
    assert scan_frames(bytes(frame) + encode_frame(b'{"b":2}')).frames[0][1] == b'{"b":2}'
    assert int.from_bytes(frame[4:8], "little") == zlib.crc32(b"\x07\0\0\0" + b'{"a":1}')


def test_writer_segments_are_locked_until_rolled(tmp_path: Path) -> None:
    writer = WalWriter(tmp_path, sync="always")
    writer.append([b'{"n":1}', b'{"n":2}'])
    (path,) = segments(tmp_path)

    with claimed(path) as ours:
        assert not ours
    assert writer.roll()
    with claimed(path) as ours:
        assert ours
    scan = read_segment(path)
    assert path.read_bytes().startswith(HEADER)
    assert [p for _, p in scan.frames] == [b'{"n":1}', b'{"n":2}']
    assert not writer.roll()  # nothing open
    writer.close()
    with pytest.raises(ConfigError, match="closed"):
        writer.append([b"{}"])


def test_roll_by_size(tmp_path: Path) -> None:
    writer = WalWriter(tmp_path, sync="off", roll_bytes=100)
    for n in range(10):
        writer.append([orjson.dumps({"n": n, "pad": "x" * 40})])
    writer.close()

    found = [orjson.loads(p)["n"] for s in segments(tmp_path) for _, p in read_segment(s).frames]
    assert sorted(found) == list(range(10))
    assert len(segments(tmp_path)) == 5


@pytest.mark.parametrize("sync", ["always", "group", "interval", "off"])
def test_concurrent_appends_all_land(tmp_path: Path, sync: str) -> None:
    writer = WalWriter(tmp_path, sync=sync, roll_bytes=2000)  # type: ignore[arg-type]

    def work(thread: int) -> None:
        for n in range(50):
            writer.append([orjson.dumps({"t": thread, "n": n})])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writer.close()

    found = [orjson.loads(p) for s in segments(tmp_path) for _, p in read_segment(s).frames]
    assert sorted((r["t"], r["n"]) for r in found) == [(t, n) for t in range(4) for n in range(50)]


def test_unknown_policy(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="always, group, interval, off"):
        WalWriter(tmp_path, sync="sometimes")  # type: ignore[arg-type]


@pytest.mark.parametrize("sync", ["always", "group", "off"])
def test_async_appends_share_fsyncs_and_all_land(
    tmp_path: Path, sync: str, fsyncs: list[int]
) -> None:
    import asyncio

    writer = WalWriter(tmp_path, sync=sync, roll_bytes=1500)  # type: ignore[arg-type]

    async def main() -> None:
        await asyncio.gather(*(writer.append_async([orjson.dumps({"n": n})]) for n in range(200)))

    asyncio.run(main())
    appended = len(fsyncs)
    writer.close()

    found = [orjson.loads(p)["n"] for s in segments(tmp_path) for _, p in read_segment(s).frames]
    assert sorted(found) == list(range(200))
    assert len(segments(tmp_path)) > 1  # rolled on the way, waiters released by the roll
    if sync == "off":
        assert appended == 2 * len(segments(tmp_path))  # new segments only: file + folder
    else:
        assert appended < 200  # group commit: appends waiting together shared an fsync


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The file descriptors ``os.fsync`` is called on (the real fsync still runs)."""
    import os

    called: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        called.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    return called


@pytest.mark.parametrize("mode", ["thread", "async"])
def test_interval_appends_return_unsynced_and_a_background_round_syncs_them(
    tmp_path: Path, fsyncs: list[int], mode: str
) -> None:
    import asyncio
    import time

    writer = WalWriter(tmp_path, sync="interval", flush_interval=0.05)
    payloads = [orjson.dumps({"n": n}) for n in range(5)]
    if mode == "thread":
        writer.append(payloads)
    else:
        asyncio.run(writer.append_async(payloads))
    assert writer._segment is not None
    fd = writer._segment.fd
    deadline = time.monotonic() + 10
    while writer._synced < writer._written and time.monotonic() < deadline:
        time.sleep(0.01)
    assert writer._synced == writer._written, "the flusher did not fsync within 10 s"
    # one fsync when the segment was created, one by the flusher: none by the append
    assert fsyncs.count(fd) == 2
    writer.close()
    found = [orjson.loads(p)["n"] for s in segments(tmp_path) for _, p in read_segment(s).frames]
    assert found == list(range(5))


def test_interval_appends_never_wait_for_the_disk_and_closing_syncs(
    tmp_path: Path, fsyncs: list[int]
) -> None:
    writer = WalWriter(tmp_path, sync="interval", flush_interval=3600)
    for n in range(20):
        writer.append([orjson.dumps({"n": n})])
    assert writer._segment is not None
    fd = writer._segment.fd
    assert fsyncs.count(fd) == 1  # the segment's header only
    writer.close()
    assert fsyncs.count(fd) == 2  # closing the segment made the appends durable
    assert writer._syncer is not None
    assert not writer._syncer.is_alive()


def test_an_async_append_cancelled_while_waiting_is_still_written(tmp_path: Path) -> None:
    import asyncio

    writer = WalWriter(tmp_path, sync="group")

    async def main() -> None:
        task = asyncio.ensure_future(writer.append_async([b'{"n":1}']))
        await asyncio.sleep(0)
        task.cancel()
        await writer.append_async([b'{"n":2}'])

    asyncio.run(main())
    writer.close()
    found = [p for s in segments(tmp_path) for _, p in read_segment(s).frames]
    assert found == [b'{"n":1}', b'{"n":2}']


def test_only_old_half_created_segments_are_removed(tmp_path: Path) -> None:
    import os

    from mloop.serving._predlog_wal import remove_stale_temporaries

    old, fresh = tmp_path / "a.wal.tmp", tmp_path / "b.wal.tmp"
    old.write_bytes(HEADER)
    fresh.write_bytes(HEADER)
    os.utime(old, (0, 0))

    remove_stale_temporaries(tmp_path)

    assert not old.exists()
    assert fresh.exists()  # may belong to a writer between create and lock
