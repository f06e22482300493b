"""Retraining triggers: what makes the agent run a pipeline (placeholder until they land)."""

from __future__ import annotations

from typing import Any

from mloop.config import Settings


def run_due(*, now_ms: int, settings: Settings | None = None) -> list[Any]:
    """Fire every trigger that is due at ``now_ms``; none exist yet."""
    del now_ms, settings
    return []
