"""Leader election through the metadata store: one lease row per group of agents.

Whoever holds the unexpired lease leads; the others wait. Taking or renewing the lease is
one write transaction that reads the row locked (``SELECT … FOR UPDATE`` on PostgreSQL;
SQLite's ``BEGIN IMMEDIATE`` already serializes writers) and updates it only if it is
still as read (``WHERE token = :seen``), so two agents can never both win a term, on
either database. A new term increments ``token``, the fencing token: every transition a
leader writes checks, in its own transaction, that the lease still carries its token, so
a leader that stalled (a long GC pause, a suspended VM) and lost the lease meanwhile
changes nothing when it wakes.

Time is the caller's ``now_ms``, not the database's: agents are expected to run on
machines with synchronized clocks (NTP), and tests pass the time they want.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, cast

from sqlalchemy import Connection, Table, select, update
from sqlalchemy.exc import IntegrityError

from mloop.agent._tables import AgentLease
from mloop.config import Settings
from mloop.errors import Conflict, InvalidInput
from mloop.registry._db import connect
from mloop.store import MetadataStore

LEASES = cast(Table, AgentLease.__table__)
DEFAULT_LEASE = "agent"


@dataclass(frozen=True)
class Lease:
    """A term of leadership: ``holder`` leads group ``name`` until ``expires_ms``."""

    name: str
    holder: str
    token: int
    acquired_ms: int
    expires_ms: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class NotLeader(Conflict):
    """The lease changed hands (or expired and was taken) since this agent acquired it."""


def _lease(row: Any) -> Lease:
    return Lease(
        name=row.name,
        holder=row.holder,
        token=int(row.token),
        acquired_ms=int(row.acquired_ms),
        expires_ms=int(row.expires_ms),
    )


def _check(name: str, holder: str, ttl_s: float) -> None:
    if not isinstance(name, str) or not 0 < len(name) <= 128:
        raise InvalidInput(f"lease name {name!r} is not valid; give 1-128 characters")
    if not isinstance(holder, str) or not 0 < len(holder) <= 250:
        raise InvalidInput(f"lease holder {holder!r} is not valid; give 1-250 characters")
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int | float) or ttl_s <= 0:
        raise InvalidInput(f"lease time-to-live {ttl_s!r} must be a positive number of seconds")


def _locked_row(conn: Connection, name: str) -> Any:
    return conn.execute(select(LEASES).where(LEASES.c.name == name).with_for_update()).first()


def acquire_lease(
    name: str,
    holder: str,
    ttl_s: float,
    now_ms: int,
    *,
    settings: Settings | None = None,
    store: MetadataStore | None = None,
) -> Lease | None:
    """Take or renew lease ``name`` for ``holder`` until ``now_ms + ttl_s``; the lease, or
    None while another holder's term runs. Renewing keeps the token; taking an expired
    lease (even one's own) starts a new term with the next token."""
    _check(name, holder, ttl_s)
    expires = now_ms + int(ttl_s * 1000)

    def work(conn: Connection) -> Lease | None:
        row = _locked_row(conn, name)
        if row is None:
            values = {
                "name": name,
                "holder": holder,
                "token": 1,
                "acquired_ms": now_ms,
                "expires_ms": expires,
            }
            conn.execute(LEASES.insert(), values)
            return Lease(**values)  # type: ignore[arg-type]
        current = _lease(row)
        if current.holder == holder and current.expires_ms > now_ms:
            values = {"expires_ms": max(expires, current.expires_ms)}
            new = Lease(**{**current.to_dict(), **values})
        elif current.expires_ms <= now_ms:
            values = {
                "holder": holder,
                "token": current.token + 1,
                "acquired_ms": now_ms,
                "expires_ms": expires,
            }
            new = Lease(name=name, **values)  # type: ignore[arg-type]
        else:
            return None
        moved = conn.execute(
            update(LEASES)
            .where(LEASES.c.name == name, LEASES.c.token == current.token)
            .values(values)
        )
        return new if moved.rowcount == 1 else None

    try:
        if store is not None:
            return store.write(work)
        with connect(settings=settings) as db:
            return db.write(work)
    except IntegrityError:  # another agent created the row at the same moment: it leads
        return None


def release_lease(
    lease: Lease, *, settings: Settings | None = None, store: MetadataStore | None = None
) -> bool:
    """End ``lease``'s term now, so another agent takes over at its next tick instead of
    waiting for the expiry (what a leader does when it shuts down). False if the term had
    already passed to someone else."""

    def work(conn: Connection) -> bool:
        moved = conn.execute(
            update(LEASES)
            .where(
                LEASES.c.name == lease.name,
                LEASES.c.token == lease.token,
                LEASES.c.holder == lease.holder,
            )
            .values(expires_ms=0)
        )
        return bool(moved.rowcount == 1)

    if store is not None:
        return store.write(work)
    with connect(settings=settings) as db:
        return db.write(work)


def get_lease(
    name: str = DEFAULT_LEASE,
    *,
    settings: Settings | None = None,
    store: MetadataStore | None = None,
) -> Lease | None:
    """The lease as stored (it may have expired), or None if no agent ever took it."""
    if store is not None:
        with store.read() as conn:
            row = conn.execute(select(LEASES).where(LEASES.c.name == name)).first()
    else:
        with connect(settings=settings) as db, db.read() as conn:
            row = conn.execute(select(LEASES).where(LEASES.c.name == name)).first()
    return None if row is None else _lease(row)


def check_fence(conn: Connection, lease: Lease) -> None:
    """Inside a write transaction: raise :class:`NotLeader` unless ``lease``'s term is
    still the current one. The row stays locked until the transaction ends, so no new
    term can begin between this check and the commit."""
    row = _locked_row(conn, lease.name)
    if row is None or int(row.token) != lease.token or row.holder != lease.holder:
        now = "nobody" if row is None else f"{row.holder} (token {row.token})"
        raise NotLeader(
            f"lease {lease.name!r} of {lease.holder} (token {lease.token}) has passed to "
            f"{now}; this agent no longer leads and changed nothing"
        )


__all__ = [
    "DEFAULT_LEASE",
    "Lease",
    "NotLeader",
    "acquire_lease",
    "check_fence",
    "get_lease",
    "release_lease",
]
