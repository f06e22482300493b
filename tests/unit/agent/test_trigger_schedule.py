"""Cron arithmetic of schedule triggers (UTC): properties over random expressions and
times, and the calendar's edge cases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mloop.agent._trigger_schedule import (
    check_cron,
    due_fire_ms,
    iso_utc,
    last_fire_ms,
    next_fire_ms,
)
from mloop.errors import InvalidInput


def ms(*parts: int) -> int:
    return int(datetime(*parts, tzinfo=UTC).timestamp() * 1000)  # type: ignore[misc]


def _field(low: int, high: int) -> st.SearchStrategy[str]:
    single = st.integers(low, high).map(str)
    step = st.integers(1, max(1, (high - low) // 2)).map(lambda n: f"*/{n}")
    span = st.tuples(st.integers(low, high), st.integers(low, high)).map(
        lambda p: f"{min(p)}-{max(p)}"
    )
    listed = st.lists(st.integers(low, high), min_size=1, max_size=3, unique=True).map(
        lambda xs: ",".join(map(str, sorted(xs)))
    )
    return st.one_of(st.just("*"), single, step, span, listed)


CRON = st.one_of(
    st.tuples(_field(0, 59), _field(0, 23), _field(1, 28), _field(1, 12), _field(0, 6)).map(
        " ".join
    ),
    st.sampled_from(["@hourly", "@daily", "@weekly", "@monthly", "@yearly", "*/7 * * * *"]),
)
# 2001-2099, at any millisecond
TIMES = st.integers(ms(2001, 1, 1), ms(2099, 1, 1))


@settings(max_examples=150, deadline=None)
@given(CRON, TIMES, TIMES)
def test_next_fire_is_later_and_monotonic(cron: str, a: int, b: int) -> None:
    early, late = sorted((a, b))
    assert next_fire_ms(cron, early) > early
    assert next_fire_ms(cron, early) <= next_fire_ms(cron, late)


@settings(max_examples=150, deadline=None)
@given(CRON, TIMES)
def test_last_and_next_fire_bracket_now_with_nothing_between(cron: str, now: int) -> None:
    last, following = last_fire_ms(cron, now), next_fire_ms(cron, now)
    assert last <= now < following
    assert next_fire_ms(cron, last) == following  # no fire time strictly between
    assert last_fire_ms(cron, following) == following  # a fire time is its own last
    assert last_fire_ms(cron, following - 1) == last
    assert last % 60_000 == 0
    assert following % 60_000 == 0


@settings(max_examples=150, deadline=None)
@given(CRON, TIMES, st.integers(0, 10 * 86_400_000))
def test_due_means_a_fire_time_in_the_half_open_interval(cron: str, since: int, gap: int) -> None:
    now = since + gap
    due = due_fire_ms(cron, since, now)
    if next_fire_ms(cron, since) <= now:
        assert due is not None
        assert since < due <= now
        assert next_fire_ms(cron, due) > now  # the newest one: missed runs coalesce
    else:
        assert due is None


@pytest.mark.parametrize(
    ("cron", "now", "last", "following"),
    [
        # exactly on a fire time: it is the last one, the next is a day later
        ("0 3 * * *", ms(2026, 3, 1, 3), ms(2026, 3, 1, 3), ms(2026, 3, 2, 3)),
        ("0 3 * * *", ms(2026, 3, 1, 3) - 1, ms(2026, 2, 28, 3), ms(2026, 3, 1, 3)),
        # February 29th only in leap years
        ("0 0 29 2 *", ms(2026, 6, 1), ms(2024, 2, 29), ms(2028, 2, 29)),
        # the 31st skips short months
        ("30 12 31 * *", ms(2026, 4, 15), ms(2026, 3, 31, 12, 30), ms(2026, 5, 31, 12, 30)),
        # across the new year
        ("59 23 31 12 *", ms(2027, 1, 1), ms(2026, 12, 31, 23, 59), ms(2027, 12, 31, 23, 59)),
        # day of month OR day of week, as in Vixie cron: the 13th, or any Friday
        ("0 0 13 * 5", ms(2026, 11, 10), ms(2026, 11, 6), ms(2026, 11, 13)),
        ("@hourly", ms(2026, 1, 1, 10, 59, 59), ms(2026, 1, 1, 10), ms(2026, 1, 1, 11)),
    ],
)
def test_calendar_edges(cron: str, now: int, last: int, following: int) -> None:
    assert (iso_utc(last_fire_ms(cron, now)), iso_utc(next_fire_ms(cron, now))) == (
        iso_utc(last),
        iso_utc(following),
    )


def test_missed_runs_fire_once_and_nothing_before_arming() -> None:
    armed = ms(2026, 1, 1, 2)
    assert due_fire_ms("0 3 * * *", armed, ms(2026, 1, 1, 2, 59)) is None
    assert due_fire_ms("0 3 * * *", armed, ms(2026, 1, 4, 12)) == ms(2026, 1, 4, 3)
    assert due_fire_ms("0 3 * * *", ms(2026, 1, 1, 3), ms(2026, 1, 1, 3)) is None  # not after
    assert due_fire_ms("0 3 * * *", armed, armed) is None


def test_expressions_are_normalized_or_refused() -> None:
    assert check_cron("  0   3 * *   * ") == "0 3 * * *"
    assert check_cron("@DAILY") == "@daily"
    for bad in ("0 3 * *", "0 0 3 * * *", "60 * * * *", "* 24 * * *", "@sometimes", ""):
        with pytest.raises(InvalidInput, match="five fields"):
            check_cron(bad)
