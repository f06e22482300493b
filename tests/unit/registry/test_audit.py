"""The audit log: appended with each change, refused to edits by the database itself, and
any entry changed or removed behind the registry's back named by verification."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from tests.fixtures.registry import DIGESTS, drop_audit_triggers

from mloop.registry import (
    create_user,
    grant_role,
    list_audit_log,
    register_model_version,
    set_alias,
    verify_audit_log,
)
from mloop.registry._audit import GENESIS, canonical_json, entry_hash
from mloop.store import MetadataStore


@pytest.fixture
def history(db: str) -> None:
    """Eight entries: model, two versions, two alias moves, a user and two grants."""
    register_model_version("churn", "/p1", package_digest=DIGESTS[0])
    register_model_version("churn", "/p2", package_digest=DIGESTS[1])
    set_alias("churn", "champion", 1)
    set_alias("churn", "champion", 2)
    create_user("bob", roles=[("approver", "model:churn")])
    grant_role("bob", "viewer")


def sql(store: MetadataStore, statement: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(text(statement))


def test_an_untouched_log_verifies_and_chains_from_the_genesis_hash(history: None) -> None:
    entries = list(reversed(list_audit_log()))
    assert [e.seq for e in entries] == list(range(1, 9))
    assert entries[0].prev_hash == GENESIS
    for earlier, later in itertools.pairwise(entries):
        assert later.prev_hash == earlier.hash
        assert later.at >= earlier.at
    for entry in entries:
        assert entry_hash(entry.to_dict()) == entry.hash
    assert {e.actor for e in entries} == {"ada"}
    result = verify_audit_log()
    assert result.ok
    assert (result.checked, result.head_seq, result.head_hash) == (8, 8, entries[-1].hash)
    assert result.broken_seq is None


def test_an_empty_log_verifies(db: str) -> None:
    result = verify_audit_log()
    assert (result.ok, result.checked, result.head_seq) == (True, 0, None)


def test_the_database_refuses_to_change_or_delete_entries(
    history: None, store: MetadataStore
) -> None:
    for statement in (
        "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3",
        "DELETE FROM audit_log WHERE seq = 3",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            sql(store, statement)
    assert verify_audit_log().ok


def test_an_entry_updated_in_the_database_is_named(history: None, store: MetadataStore) -> None:
    drop_audit_triggers(store)
    sql(store, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 4")
    result = verify_audit_log()
    assert not result.ok
    assert result.broken_seq == 4
    assert result.problem is not None
    assert "entry 4 was changed" in result.problem
    assert (result.checked, result.head_seq) == (3, 3)


def test_an_entry_deleted_from_the_database_is_named(history: None, store: MetadataStore) -> None:
    drop_audit_triggers(store)
    sql(store, "DELETE FROM audit_log WHERE seq = 5")
    result = verify_audit_log()
    assert (result.ok, result.broken_seq) == (False, 5)
    assert "entry 5 is missing (the log goes from entry 4 to entry 6)" in str(result.problem)
    sql(store, "DELETE FROM audit_log WHERE seq IN (1, 2)")
    result = verify_audit_log()
    assert result.broken_seq == 1
    assert "entry 1 to 2 is missing (the log goes from the start to entry 3)" in str(result.problem)


def test_an_entry_rewritten_with_a_fresh_hash_is_named_by_the_next_link(
    history: None, store: MetadataStore
) -> None:
    drop_audit_triggers(store)
    entry = next(e for e in list_audit_log() if e.seq == 3)
    forged: dict[str, Any] = {**entry.to_dict(), "actor": "mallory"}
    forged_hash = entry_hash(forged)
    sql(store, f"UPDATE audit_log SET actor = 'mallory', hash = '{forged_hash}' WHERE seq = 3")
    result = verify_audit_log()
    assert (result.ok, result.broken_seq) == (False, 3)
    assert "entry 3 was changed or replaced: entry 4 was chained to a different hash" in str(
        result.problem
    )


def test_an_anchor_catches_a_cut_off_or_rewritten_tail(history: None, store: MetadataStore) -> None:
    head = verify_audit_log()
    assert head.head_seq is not None
    assert head.head_hash is not None
    anchor = (head.head_seq, head.head_hash)
    assert verify_audit_log(anchor=anchor).ok
    drop_audit_triggers(store)
    sql(store, "DELETE FROM audit_log WHERE seq = 8")
    assert verify_audit_log().ok  # a chain alone cannot see its end cut off…
    result = verify_audit_log(anchor=anchor)  # …an anchor kept elsewhere can
    assert (result.ok, result.broken_seq) == (False, 8)
    assert "the log ends at entry 7, but the anchor names entry 8" in str(result.problem)
    result = verify_audit_log(anchor=(7, "f" * 64))
    assert (result.ok, result.broken_seq) == (False, 7)
    assert "no longer has the anchored hash" in str(result.problem)


def test_listing_filters_by_target_actor_and_action_and_pages_back(
    history: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOOP_USER", "cy")
    register_model_version("churn-v2", "/p", package_digest=DIGESTS[2])
    targets = [e.target for e in list_audit_log(target="model:churn")]
    assert targets == [
        "model:churn@champion",
        "model:churn@champion",
        "model:churn/2",
        "model:churn/1",
        "model:churn",
    ]  # not model:churn-v2
    assert [e.seq for e in list_audit_log(target="model:churn@champion")] == [5, 4]
    assert {e.target for e in list_audit_log(actor="cy")} == {"model:churn-v2", "model:churn-v2/1"}
    assert [e.seq for e in list_audit_log(action="role.grant")] == [8, 7]
    assert [e.seq for e in list_audit_log(limit=2, before_seq=5)] == [4, 3]
    assert [e.seq for e in list_audit_log(target="model:%")] == []  # LIKE wildcards escaped


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_entries = st.fixed_dictionaries(
    {
        "seq": st.integers(1, 2**40),
        "at": st.integers(0, 2**50),
        "actor": st.text(max_size=30),
        "action": st.text(max_size=20),
        "target": st.text(max_size=40),
        "before": _json,
        "after": _json,
        "prev_hash": st.text("0123456789abcdef", min_size=64, max_size=64),
    }
)


@given(
    _entries,
    st.sampled_from(["seq", "at", "actor", "action", "target", "before", "after", "prev_hash"]),
)
def test_the_hash_covers_every_field_and_ignores_key_order(
    entry: dict[str, Any], field: str
) -> None:
    shuffled = dict(reversed(list(entry.items())))
    assert canonical_json(shuffled) == canonical_json(entry)
    assert entry_hash({**entry, "hash": "anything"}) == entry_hash(entry)
    changed = dict(entry)
    value = entry[field]
    changed[field] = (
        value + 1
        if isinstance(value, int) and not isinstance(value, bool)
        else [value]
        if field in ("before", "after")
        else value + "x"
    )
    assert entry_hash(changed) != entry_hash(entry)
