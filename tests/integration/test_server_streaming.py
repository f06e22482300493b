"""Artifacts stream through the server in bounded memory, both ways.

A 300 MB artifact, generated on the fly (never held whole by the test), goes up through
``RestBackend`` to ``python -m mloop.server`` in a subprocess and comes back down, while
a thread samples the server process's RSS. The peak must stay under 200 MB and the bytes
that come back must hash to what was sent.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from mloop.tracking._rest_backend import RestBackend

SIZE = 300 * 1024 * 1024
RSS_LIMIT = 200 * 1024 * 1024
BLOCK = 1 << 20


class _Generated(io.RawIOBase):
    """``size`` pseudo-random bytes made block by block, hashed as they are read."""

    def __init__(self, size: int) -> None:
        self._left = size
        self._seed = os.urandom(BLOCK)
        self._counter = 0
        self._pending = b""
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if not self._pending and self._left:
            self._counter += 1
            block = self._counter.to_bytes(8, "big") + self._seed[8:]
            self._pending = block[: min(BLOCK, self._left)]
            self._left -= len(self._pending)
            self.sha256.update(self._pending)
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


class _PeakRss:
    """Samples a process's resident memory every few milliseconds in a thread."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self._process.memory_info().rss
                rss += sum(c.memory_info().rss for c in self._process.children(recursive=True))
            except psutil.Error:
                return
            self.peak = max(self.peak, rss)
            time.sleep(0.02)

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[tuple[str, int]]:
    port = _free_port()
    env = {**os.environ, "MLOOP_HOME": str(tmp_path / "server-home"), "TMPDIR": str(tmp_path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "mloop.server", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                _, err = process.communicate(timeout=5)
                pytest.fail(f"server did not start: {err.decode()[-2000:]}")
            time.sleep(0.05)
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


@pytest.mark.slow
def test_300_mb_artifact_streams_up_and_down_in_bounded_server_memory(
    server_process: tuple[str, int],
) -> None:
    url, pid = server_process
    backend = RestBackend(url)
    try:
        experiment_id = backend.create_experiment("streaming")
        run_id = backend.create_run(
            experiment_id, run_name="big", user_id=None, start_time=1, tags={}, parent_run_id=None
        ).info.run_id
        source = _Generated(SIZE)
        with _PeakRss(pid) as rss:
            stored = backend.log_artifact_stream(
                run_id, "big/blob.bin", io.BufferedReader(source, BLOCK)
            )
            received = hashlib.sha256()
            size = 0
            with backend.open_artifact(run_id, "big/blob.bin") as stream:
                while chunk := stream.read(BLOCK):
                    received.update(chunk)
                    size += len(chunk)
    finally:
        backend.close()
    assert stored.size == SIZE
    assert stored.digest == source.sha256.hexdigest()
    assert size == SIZE
    assert received.hexdigest() == source.sha256.hexdigest()
    assert 0 < rss.peak < RSS_LIMIT, f"server peak RSS {rss.peak / 2**20:.0f} MB"
    print(f"server peak RSS while streaming 300 MB: {rss.peak / 2**20:.1f} MB")
