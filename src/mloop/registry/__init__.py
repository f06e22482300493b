"""Registered models, versions, aliases, approvals and the audit log (placeholder)."""

from __future__ import annotations

__all__: list[str] = []
