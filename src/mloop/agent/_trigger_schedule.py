"""Cron arithmetic for schedule triggers, in UTC and whole milliseconds.

Only the standard five fields (minute hour day-of-month month day-of-week) and the macros
(``@hourly``, ``@daily``, …) are accepted. A sixth field means seconds to croniter but
years or seconds-first to other tools; refusing it keeps a schedule meaning the same thing
to everyone who reads it.

A schedule is due at ``now`` when a fire time lies in ``(since, now]``; only the newest
such time fires (an agent that was down for three nights retrains once, not three times).
"""

from __future__ import annotations

from datetime import UTC, datetime

from croniter import croniter

from mloop.errors import InvalidInput

_MACROS = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)


def check_cron(expression: str) -> str:
    """``expression`` with its spacing normalized, or :class:`InvalidInput` saying what a
    valid one looks like."""
    text = " ".join(str(expression).split())
    if text.lower() in _MACROS:
        return text.lower()
    fields = text.split(" ")
    if len(fields) != 5 or not croniter.is_valid(text):
        raise InvalidInput(
            f"schedule {expression!r} is not a cron expression; write five fields: minute "
            "hour day-of-month month day-of-week, in UTC (e.g. '0 3 * * *' for 03:00 every "
            "day, '*/15 * * * *' every 15 minutes), or a macro such as @daily"
        )
    return text


def last_fire_ms(expression: str, now_ms: int) -> int:
    """The newest fire time at or before ``now_ms``."""
    # croniter's get_prev is strictly before its start, and fire times are whole minutes:
    # starting one second past ``now`` (rounded down) includes a fire time equal to ``now``.
    start = datetime.fromtimestamp(now_ms // 1000 + 1, tz=UTC)
    fired = croniter(expression, start).get_prev(datetime)
    return int(fired.timestamp()) * 1000


def next_fire_ms(expression: str, after_ms: int) -> int:
    """The first fire time strictly after ``after_ms``."""
    start = datetime.fromtimestamp(after_ms // 1000, tz=UTC)
    following = croniter(expression, start).get_next(datetime)
    return int(following.timestamp()) * 1000


def due_fire_ms(expression: str, since_ms: int, now_ms: int) -> int | None:
    """The newest fire time in ``(since_ms, now_ms]``, or None when none falls there."""
    if now_ms <= since_ms:
        return None
    fired = last_fire_ms(expression, now_ms)
    return fired if fired > since_ms else None


def iso_utc(ms: int) -> str:
    """A fire time as an event key: ``2026-11-29T03:00Z``."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%MZ")
