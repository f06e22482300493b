"""The append-only audit log and its hash chain.

Every registry and identity change calls :func:`append` inside its own transaction, so the
change and its entry commit together or not at all. An entry's ``hash`` is the SHA-256 of
its canonical JSON (sorted keys, no spaces, UTF-8) over every column but ``hash`` itself,
``prev_hash`` included: rewriting or removing an entry directly in the database breaks the
chain there, and :func:`verify_audit_log` names that entry.

A chain alone cannot notice the newest entries being cut off, or the whole tail being
rewritten with fresh hashes by someone who can write to the database; keeping the head
(``seq`` and ``hash``, printed by ``mloop audit verify``) somewhere else and passing it back
as an ``anchor`` catches both.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, or_, select

from mloop._ids import now_ms
from mloop.errors import InvalidInput
from mloop.registry._db import AUDIT, connect
from mloop.registry._entities import AuditEntry, AuditVerification
from mloop.store import MetadataStore

GENESIS = "0" * 64
HASHED_FIELDS = ("seq", "at", "actor", "action", "target", "before", "after", "prev_hash")


def canonical_json(entry: Mapping[str, Any]) -> bytes:
    """The bytes an entry's hash covers: its hashed fields as canonical JSON."""
    return json.dumps(
        {key: entry[key] for key in HASHED_FIELDS},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    ).encode()


def entry_hash(entry: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(entry)).hexdigest()


def append(
    conn: Connection, *, actor: str, action: str, target: str, before: Any, after: Any
) -> int:
    """Add an entry after the newest one; returns its ``seq``.

    Call it inside a registry write (:func:`mloop.registry._db.write`), which holds the
    lock that keeps the chain linear; the primary key on ``seq`` is the backstop.
    """
    last = conn.execute(
        select(AUDIT.c.seq, AUDIT.c.hash).order_by(AUDIT.c.seq.desc()).limit(1)
    ).first()
    row: dict[str, Any] = {
        "seq": 1 if last is None else int(last.seq) + 1,
        "at": now_ms(),
        "actor": actor,
        "action": action,
        "target": target,
        # Stored as JSON and read back as JSON: hash exactly what a reader will see.
        "before": _as_json(before),
        "after": _as_json(after),
        "prev_hash": GENESIS if last is None else str(last.hash),
    }
    row["hash"] = entry_hash(row)
    conn.execute(AUDIT.insert(), row)
    return int(row["seq"])


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, allow_nan=False))


def list_audit_log(
    *,
    target: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    limit: int = 100,
    before_seq: int | None = None,
    store: MetadataStore | None = None,
) -> list[AuditEntry]:
    """Entries, newest first. ``target`` matches itself and what lies under it
    (``model:churn`` also finds ``model:churn/3`` and ``model:churn@champion``);
    ``before_seq`` pages back through older entries."""
    if limit < 1:
        raise InvalidInput(f"limit must be at least 1, not {limit}")
    query = select(AUDIT).order_by(AUDIT.c.seq.desc()).limit(limit)
    if target:
        query = query.where(
            or_(
                AUDIT.c.target == target,
                AUDIT.c.target.startswith(target + "/", autoescape=True),
                AUDIT.c.target.startswith(target + "@", autoescape=True),
            )
        )
    if actor:
        query = query.where(AUDIT.c.actor == actor)
    if action:
        query = query.where(AUDIT.c.action == action)
    if before_seq is not None:
        query = query.where(AUDIT.c.seq < before_seq)
    with connect(store) as db, db.read() as conn:
        return [_entry(row) for row in conn.execute(query)]


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        seq=int(row.seq),
        at=int(row.at),
        actor=row.actor,
        action=row.action,
        target=row.target,
        before=row.before,
        after=row.after,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def verify_audit_log(
    *, anchor: tuple[int, str] | None = None, store: MetadataStore | None = None
) -> AuditVerification:
    """Walk the whole chain, oldest first, and stop at the first broken link.

    ``anchor`` is a ``(seq, hash)`` recorded earlier (from a previous verification's
    ``head_seq`` / ``head_hash``): the entry ``seq`` must still exist with that hash.
    """
    checked = 0
    previous: AuditEntry | None = None
    anchor_seen = anchor is None
    with connect(store) as db, db.read() as conn:
        rows = conn.execution_options(yield_per=1000).execute(select(AUDIT).order_by(AUDIT.c.seq))
        try:
            for row in rows:
                entry = _entry(row)
                problem = _link_problem(previous, entry)
                if problem is None and anchor is not None and entry.seq == anchor[0]:
                    anchor_seen = True
                    if entry.hash != anchor[1]:
                        problem = (
                            entry.seq,
                            (
                                f"entry {entry.seq} no longer has the anchored hash "
                                f"{anchor[1][:16]}…: the log was rewritten from there on"
                            ),
                        )
                if problem is not None:
                    return _broken(checked, previous, *problem)
                checked += 1
                previous = entry
        finally:
            rows.close()  # a server-side cursor on PostgreSQL: release it when stopping early
    if not anchor_seen:
        assert anchor is not None
        head = previous.seq if previous is not None else 0
        return _broken(
            checked,
            previous,
            head + 1,
            f"the log ends at entry {head}, but the anchor names entry {anchor[0]}: "
            "entries were removed from the end",
        )
    return AuditVerification(
        ok=True,
        checked=checked,
        head_seq=None if previous is None else previous.seq,
        head_hash=None if previous is None else previous.hash,
    )


def _link_problem(previous: AuditEntry | None, entry: AuditEntry) -> tuple[int, str] | None:
    """``(seq of the bad entry, what is wrong)`` or None when ``entry`` links up."""
    expected = 1 if previous is None else previous.seq + 1
    if entry.seq != expected:
        span = str(expected) if entry.seq == expected + 1 else f"{expected} to {entry.seq - 1}"
        after = "the start" if previous is None else f"entry {previous.seq}"
        return expected, (
            f"entry {span} is missing (the log goes from {after} to entry {entry.seq}): "
            "it was deleted"
        )
    if entry_hash(entry.to_dict()) != entry.hash:
        return entry.seq, (
            f"entry {entry.seq} was changed after it was written: its content no longer "
            "matches its hash"
        )
    expected_prev = GENESIS if previous is None else previous.hash
    if entry.prev_hash != expected_prev:
        bad = entry.seq if previous is None else previous.seq
        return bad, (
            f"entry {bad} was changed or replaced: entry {entry.seq} was chained to a "
            "different hash"
        )
    return None


def _broken(checked: int, previous: AuditEntry | None, seq: int, problem: str) -> AuditVerification:
    return AuditVerification(
        ok=False,
        checked=checked,
        head_seq=None if previous is None else previous.seq,
        head_hash=None if previous is None else previous.hash,
        broken_seq=seq,
        problem=problem,
    )
