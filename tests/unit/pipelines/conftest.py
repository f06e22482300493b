"""Pipeline tests run against the configured store: ``db`` is SQLite and a real PostgreSQL,
``sqlite_db`` SQLite only (for behaviour that does not depend on the backend)."""

from __future__ import annotations

from tests.unit.registry.conftest import (  # noqa: F401 (fixtures)
    _migrated_postgres,
    _migrated_sqlite,
    db,
    registry_db_uri,
    sqlite_db,
)
