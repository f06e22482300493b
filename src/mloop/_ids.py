"""Sortable identifiers: UUIDv7 as 32 lowercase hex digits, ordered by creation time."""

from __future__ import annotations

import uuid6


def new_id() -> str:
    """A new time-ordered id; later ids sort after earlier ones, even within one millisecond."""
    return uuid6.uuid7().hex


def now_ms() -> int:
    """Wall-clock time in milliseconds since the epoch, the unit every stored time uses."""
    import time

    return time.time_ns() // 1_000_000
