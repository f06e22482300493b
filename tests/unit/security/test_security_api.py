"""The public surface of mloop.security is pinned: a name added or dropped by accident fails."""

from __future__ import annotations

import mloop.security


def test_security_api() -> None:
    assert set(mloop.security.__all__) == {
        "MITIGATIONS", "AuditReport", "AuditRow", "ControlState", "InMemoryRateLimiter",
        "Mitigation", "RateLimiter", "RedisRateLimiter", "audit", "rate_limiter_for",
    }  # fmt: skip
    for name in mloop.security.__all__:
        assert getattr(mloop.security, name) is not None
