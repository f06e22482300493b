"""Registry suites run on SQLite and on a real PostgreSQL through ``db``: the configured
store (``MLOOP_DB_URI``) is pointed at the backend under test, and ``ada`` acts."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from mloop.store import MetadataStore, open_store
from mloop.store._engine import _migrated

DIGESTS = [f"{i:x}" * 64 for i in range(1, 16)]  # distinct valid package digests


@pytest.fixture(scope="session")
def _migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated to head, copied for each test: migrating a fresh store for
    every test would cost more than most tests here."""
    path = tmp_path_factory.mktemp("registry-template") / "template.db"
    open_store(f"sqlite:///{path}").close()
    _migrated.discard(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def _migrated_postgres(postgres_server: str) -> Iterator[str]:
    """A PostgreSQL database migrated to head, the template of each test's database."""
    name = f"mloop_registry_template_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    uri = f"{postgres_server.rpartition('/')[0]}/{name}"
    open_store(uri).close()
    _migrated.discard(uri)
    try:
        yield name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def registry_db_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Like ``db_uri`` (tests/fixtures/postgres.py), but each store is a copy of an already
    migrated one; migrations themselves are tested by the store suite."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("_migrated_sqlite")
        target = tmp_path / "suite.db"
        with sqlite3.connect(template) as source, sqlite3.connect(target) as copy:
            source.backup(copy)
        yield f"sqlite:///{target}"
        return
    server: str = request.getfixturevalue("postgres_server")
    template_name: str = request.getfixturevalue("_migrated_postgres")
    name = f"mloop_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"'))
    try:
        yield f"{server.rpartition('/')[0]}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def db(registry_db_uri: str, monkeypatch: pytest.MonkeyPatch) -> str:
    return _configure(registry_db_uri, monkeypatch)


@pytest.fixture
def sqlite_db(_migrated_sqlite: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """SQLite only: for input checks that fail before any SQL runs, where a second backend
    would test nothing new."""
    target = tmp_path / "registry.db"
    with sqlite3.connect(_migrated_sqlite) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    return _configure(f"sqlite:///{target}", monkeypatch)


def _configure(uri: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MLOOP_DB_URI", uri)
    monkeypatch.setenv("MLOOP_USER", "ada")
    monkeypatch.setenv("MLOOP_CAPTURE", "false")
    return uri


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
