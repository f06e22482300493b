"""Configuration as code: deployments, rollout plans, gates, alert rules, triggers and schedules declared in YAML and applied idempotently (`mloop apply`, `mloop export`)."""

from __future__ import annotations

__all__: list[str] = []
