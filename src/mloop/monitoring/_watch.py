"""Running the monitor on a schedule (``mloop monitor watch``): every N, or cron in UTC.

The loop waits on an event, not in ``sleep``, so a caller (or a signal handler) can stop
it at once; ``max_runs`` bounds it (tests, one-shot cron jobs running a few rounds).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mloop.errors import InvalidInput
from mloop.monitoring._spec import duration_ms


@dataclass(frozen=True)
class Schedule:
    """``every_ms`` or a five-field ``cron`` expression (UTC)."""

    every_ms: int | None = None
    cron: str | None = None

    @classmethod
    def parse(cls, *, every: str | None, cron: str | None) -> Schedule:
        if every is not None and cron is not None:
            raise InvalidInput("give --every or --cron, not both")
        if cron is not None:
            from croniter import croniter

            if not croniter.is_valid(cron):
                raise InvalidInput(
                    f"--cron {cron!r} is not a cron expression; write five fields "
                    '(minute hour day month weekday), e.g. "*/5 * * * *"'
                )
            return cls(cron=cron)
        return cls(every_ms=duration_ms(every or "5m", "--every"))

    def next_after(self, now_ms: int, started_ms: int) -> int:
        """When the next round starts: ``every`` after the last round's start (skipping
        rounds that ran over), or the cron expression's next time."""
        if self.cron is not None:
            from croniter import croniter

            moment = datetime.fromtimestamp(now_ms / 1000, UTC)
            return int(croniter(self.cron, moment).get_next(datetime).timestamp() * 1000)
        assert self.every_ms is not None
        due = started_ms + self.every_ms
        while due <= now_ms:
            due += self.every_ms
        return due


def monitored(deployments: list[str]) -> list[str]:
    if deployments:
        return deployments
    from mloop.monitoring._store import monitored_deployments

    return monitored_deployments()


def watch_loop(
    deployments: list[str],
    schedule: Schedule,
    round_: Callable[[list[str]], None],
    *,
    max_runs: int | None,
    stop: threading.Event,
    clock: Callable[[], float] = time.time,
) -> int:
    """Call ``round_`` with the deployments on ``schedule`` until ``stop`` is set or
    ``max_runs`` rounds ran; returns the number of rounds."""
    rounds = 0
    while not stop.is_set():
        started = int(clock() * 1000)
        names = monitored(deployments)
        if not names:
            raise InvalidInput(
                "no deployment to watch: name some, or give one alert rules "
                "(`mloop monitor rules apply`) or a monitor config"
            )
        round_(names)
        rounds += 1
        if max_runs is not None and rounds >= max_runs:
            break
        now = int(clock() * 1000)
        stop.wait(max(0.0, (schedule.next_after(now, started) - now) / 1000))
    return rounds


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (temporary file, then rename)."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise InvalidInput(f"cannot write {path}: folder {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".monitor-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
