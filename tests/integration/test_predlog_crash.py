"""kill -9 a process appending to the prediction log: every acknowledged record survives.

The child appends as fast as it can (with the compactor running, so the kill can land in
the middle of a compaction too) and prints each request id once ``append`` returned. After
SIGKILL, the ids it printed must all be readable, each exactly once, before and after the
leftover segments are compacted by a new process's log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mloop.serving._predlog import PredictionLog, read_predictions

CHILD = textwrap.dedent(
    """
    import asyncio, sys, threading, time
    from mloop.serving._predlog import PredictionLog, PredictionRecord

    root, fsync, workers, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    log = PredictionLog(root, fsync=fsync, roll_bytes=20_000, roll_interval=0.0,
                        compact_interval=0.01)
    lock = threading.Lock()

    def record(rid):
        return PredictionRecord(rid, int(time.time() * 1000), "iris", "iris", 1, "primary",
                                {"x": [[1.0, 2.0, 3.0, 4.0]]}, [0], 0.5)

    def acknowledge(rid):
        with lock:
            sys.stdout.write(rid + "\\n")
            sys.stdout.flush()

    def work(t):
        try:
            for n in range(10**9):
                log.append(record(f"t{t}-{n}"))
                acknowledge(f"t{t}-{n}")
        except BaseException:
            import os, traceback
            traceback.print_exc()
            os._exit(3)  # the test sees the output end instead of waiting forever

    async def work_async(t):
        for n in range(10**9):
            await log.append_async(record(f"t{t}-{n}"))
            acknowledge(f"t{t}-{n}")

    async def main():
        await asyncio.gather(*(work_async(t) for t in range(workers)))

    if mode == "async":
        asyncio.run(main())
    for t in range(workers):
        threading.Thread(target=work, args=(t,), daemon=True).start()
    time.sleep(3600)
    """
)


def _acknowledged_until_killed(child: subprocess.Popen[bytes], root: Path) -> list[str]:
    """Read acknowledged ids until 1,500 arrived and the compactor has written a part (so
    the kill lands while compaction goes on), SIGKILL the child mid-stream, then keep the
    complete lines it had written before it died."""
    assert child.stdout is not None
    acknowledged: list[str] = []
    deadline = time.monotonic() + 60
    while len(acknowledged) < 1500 or not any(root.rglob("*.parquet")):
        line = child.stdout.readline()
        assert line, f"the child exited early with {child.wait()}"
        acknowledged.append(line.decode().strip())
        assert time.monotonic() < deadline, "the child appended (or compacted) too slowly"
    os.kill(child.pid, signal.SIGKILL)
    rest = child.stdout.read()
    child.wait()
    return acknowledged + rest.decode().split("\n")[:-1]  # complete lines only


@pytest.mark.parametrize(
    ("fsync", "threads", "mode"),
    [("always", 1, "threads"), ("group", 3, "threads"), ("always", 16, "async")],
)
def test_kill_9_loses_no_acknowledged_record(
    tmp_path: Path, fsync: str, threads: int, mode: str
) -> None:
    root = str(tmp_path / "log")
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.Popen(
        [sys.executable, str(script), root, fsync, str(threads), mode],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert child.stdout is not None
    try:
        acknowledged = _acknowledged_until_killed(child, Path(root))
    finally:
        child.kill()
        child.wait()
        child.stdout.close()

    parts = list(Path(root).rglob("*.parquet"))
    assert parts, "the compactor should have run while the child appended"

    before = read_predictions(root, "iris").column("request_id").to_pylist()
    with PredictionLog(root, compact_interval=None) as reopened:
        reopened.compact_now()
    after = read_predictions(root, "iris").column("request_id").to_pylist()

    for found in (before, after):
        assert len(found) == len(set(found)), "a record was read twice"
        missing = set(acknowledged) - set(found)
        assert not missing, f"{len(missing)} acknowledged records lost"
    assert not list((tmp_path / "mloop-home" / "wal" / "iris" / "predictions").glob("*.wal"))
