"""Registry suites run on SQLite and on a real PostgreSQL through ``db``: the configured
store (``MLOOP_DB_URI``) is pointed at the backend under test, and ``ada`` acts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from mloop.store import MetadataStore, open_store

DIGESTS = [f"{i:x}" * 64 for i in range(1, 16)]  # distinct valid package digests


@pytest.fixture
def db(db_uri: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MLOOP_DB_URI", db_uri)
    monkeypatch.setenv("MLOOP_USER", "ada")
    monkeypatch.setenv("MLOOP_CAPTURE", "false")
    return db_uri


@pytest.fixture
def store(db: str) -> Iterator[MetadataStore]:
    """The same store, opened directly, for raw SQL (tampering, looking for secrets)."""
    opened = open_store(db)
    yield opened
    opened.close()


def drop_audit_triggers(store: MetadataStore) -> None:
    """What someone with owner rights on the database could do before tampering."""
    with store.engine.begin() as conn:
        if store.dialect == "sqlite":
            conn.execute(text("DROP TRIGGER audit_log_no_update"))
            conn.execute(text("DROP TRIGGER audit_log_no_delete"))
        else:
            conn.execute(text("DROP TRIGGER audit_log_append_only ON audit_log"))
