"""Security controls that are not the registry's: query rate limits and the MITRE ATLAS
coverage audit (``mloop security audit``).

Identities, API keys and roles live in :mod:`mloop.registry`; model scanning, signing and
encryption in :mod:`mloop.models` and :mod:`mloop.artifacts`. This package reports on all
of them.
"""

from __future__ import annotations

from mloop.security._atlas import (
    MITIGATIONS,
    AuditReport,
    AuditRow,
    ControlState,
    Mitigation,
    audit,
)
from mloop.security._ratelimit import (
    InMemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    rate_limiter_for,
)

__all__ = [
    "MITIGATIONS",
    "AuditReport",
    "AuditRow",
    "ControlState",
    "InMemoryRateLimiter",
    "Mitigation",
    "RateLimiter",
    "RedisRateLimiter",
    "audit",
    "rate_limiter_for",
]
