"""Which metadata store the agent works on: the one ``settings`` name, or the configured one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mloop.config import Settings
from mloop.registry._db import connect
from mloop.store import MetadataStore


@contextmanager
def store_for(settings: Settings | None) -> Iterator[MetadataStore]:
    """The store ``settings`` point at (kept open per process, as the registry keeps it), or
    the configured store when ``settings`` is None."""
    if settings is None:
        with connect(None) as db:
            yield db
        return
    from mloop.registry._db import _open

    uri = settings.tracking_uri
    if not uri or uri.startswith(("http://", "https://")):
        uri = settings.resolved_db_uri
    yield _open(uri)
