"""Which metadata store the agent works on: the one ``settings`` name, or the configured one."""

from __future__ import annotations

from contextlib import AbstractContextManager

from mloop.config import Settings
from mloop.registry._db import connect
from mloop.store import MetadataStore


def store_for(settings: Settings | None) -> AbstractContextManager[MetadataStore]:
    """The store ``settings`` point at (kept open per process, as the registry keeps it), or
    the configured store when ``settings`` is None."""
    return connect(settings=settings)
