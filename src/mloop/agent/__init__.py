"""The agent: the long-running controller that advances rollouts and fires retraining triggers, safe as several replicas (leader election through the metadata store)."""

from __future__ import annotations

__all__: list[str] = []
