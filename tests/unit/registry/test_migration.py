"""Migration 0003 goes down and up again cleanly, and its append-only triggers come back."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from mloop.store import MetadataStore, current_revision, head_revision
from mloop.store._engine import _alembic_config

REGISTRY_TABLES = {
    "registered_models", "model_versions", "model_aliases", "approvals", "trust_policies",
    "audit_log", "users", "api_keys", "role_bindings",
}  # fmt: skip


def _tables(store: MetadataStore) -> set[str]:
    return set(inspect(store.engine).get_table_names())


def test_downgrade_and_upgrade_again(store: MetadataStore) -> None:
    assert _tables(store) >= REGISTRY_TABLES
    with store.engine.begin() as conn:
        command.downgrade(_alembic_config(conn), "0002")
    assert not REGISTRY_TABLES & _tables(store)
    assert current_revision(store.engine) == "0002"
    with store.engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "head")
    assert current_revision(store.engine) == head_revision()
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO audit_log (seq, at, actor, action, target, prev_hash, hash) "
                "VALUES (1, 1, 'a', 'b', 'c', 'd', 'e')"
            )
        )
    with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log"))
