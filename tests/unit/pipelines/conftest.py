"""Pipeline tests run against the configured store: ``db`` is SQLite and a real PostgreSQL,
``sqlite_db`` SQLite only (for behaviour that does not depend on the backend)."""

from __future__ import annotations
