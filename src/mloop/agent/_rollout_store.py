"""Rollouts and their events in the metadata store: reading, and the two guarded writes
every transition is made of.

A transition is **claimed** first (``target`` set, ``version`` bumped, only if the row is
still at the version the agent read — and, for an agent, only while its lease term is
current), then the deployment is changed, then it is **completed** (new state recorded,
``target`` cleared, version bumped, one event with that version as ``seq``, one audit
entry; again only from the claimed version). Of several agents racing on one rollout
exactly one claim succeeds; a completion whose claim was overtaken changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, cast

from sqlalchemy import Connection, Table, select, update

from mloop._ids import new_id
from mloop.agent._lease import Lease, check_fence
from mloop.agent._plans import RolloutPlan
from mloop.agent._tables import RolloutEventRow, RolloutRow
from mloop.errors import Conflict, NotFound
from mloop.registry import _audit
from mloop.registry._db import write
from mloop.store import MetadataStore

ROLLOUTS = cast(Table, RolloutRow.__table__)
EVENTS = cast(Table, RolloutEventRow.__table__)
RUNNING = "running"
FINAL_STATES = ("succeeded", "rolled_back", "aborted", "failed")
STATES = (RUNNING, *FINAL_STATES)


class LostRace(Conflict):
    """Another agent (or a user's abort) moved the rollout since it was read."""


@dataclass(frozen=True)
class Rollout:
    """A candidate's way through a plan on a deployment (see :class:`RolloutRow`)."""

    id: str
    deployment: str
    candidate_model: str
    candidate_version: int
    primary_model: str
    primary_version: int
    plan: RolloutPlan
    plan_name: str | None
    base_spec: dict[str, Any]
    state: str
    step: int
    step_started_ms: int
    deployment_revision: int
    target: dict[str, Any] | None
    reason: str | None
    last_check: dict[str, Any] | None
    version: int
    created_by: str
    created_ms: int
    updated_ms: int
    finished_ms: int | None

    @property
    def candidate(self) -> str:
        return f"{self.candidate_model}:{self.candidate_version}"

    @property
    def primary(self) -> str:
        return f"{self.primary_model}:{self.primary_version}"

    @property
    def active(self) -> bool:
        return self.state == RUNNING

    @property
    def steps(self) -> int:
        return len(self.plan.steps)

    def describe_step(self) -> str:
        """``step 2/5: canary 5%`` (or ``starting`` before the first step is in force)."""
        if self.step < 0:
            return "starting"
        step = self.plan.steps[self.step]
        return f"step {self.step + 1}/{self.steps}: {step.describe()}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["plan"] = self.plan.to_json()
        data["candidate"] = self.candidate
        data["primary"] = self.primary
        return data


@dataclass(frozen=True)
class RolloutEvent:
    """One transition: ``started``, ``step`` (a step came into force), ``promoted``,
    ``rolled_back`` (a check failed), ``aborted`` (by a user) or ``failed``."""

    id: str
    rollout_id: str
    deployment: str
    seq: int
    at_ms: int
    kind: str
    step: int
    message: str
    detail: dict[str, Any]
    actor: str
    deployment_revision: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rollout(row: Any) -> Rollout:
    return Rollout(
        id=row.id,
        deployment=row.deployment,
        candidate_model=row.candidate_model,
        candidate_version=int(row.candidate_version),
        primary_model=row.primary_model,
        primary_version=int(row.primary_version),
        plan=RolloutPlan.parse(row.plan, source=f"rollout {row.id}"),
        plan_name=row.plan_name,
        base_spec=dict(row.base_spec),
        state=row.state,
        step=int(row.step),
        step_started_ms=int(row.step_started_ms),
        deployment_revision=int(row.deployment_revision),
        target=None if row.target is None else dict(row.target),
        reason=row.reason,
        last_check=None if row.last_check is None else dict(row.last_check),
        version=int(row.version),
        created_by=row.created_by,
        created_ms=int(row.created_ms),
        updated_ms=int(row.updated_ms),
        finished_ms=None if row.finished_ms is None else int(row.finished_ms),
    )


def _event(row: Any, deployment: str) -> RolloutEvent:
    return RolloutEvent(
        id=row.id,
        rollout_id=row.rollout_id,
        deployment=deployment,
        seq=int(row.seq),
        at_ms=int(row.at_ms),
        kind=row.kind,
        step=int(row.step),
        message=row.message,
        detail=dict(row.detail),
        actor=row.actor,
        deployment_revision=None
        if row.deployment_revision is None
        else int(row.deployment_revision),
    )


# -- reading ----------------------------------------------------------------------------------


def read(db: MetadataStore, rollout_id: str) -> Rollout:
    with db.read() as conn:
        row = conn.execute(select(ROLLOUTS).where(ROLLOUTS.c.id == rollout_id)).first()
    if row is None:
        raise NotFound(
            f"rollout {rollout_id!r} does not exist; `mloop rollout list` shows the rollouts"
        )
    return _rollout(row)


def find(db: MetadataStore, prefix: str) -> list[Rollout]:
    """Rollouts whose id starts with ``prefix`` (at most two: enough to tell it is ambiguous)."""
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    with db.read() as conn:
        rows = conn.execute(
            select(ROLLOUTS).where(ROLLOUTS.c.id.like(f"{escaped}%", escape="\\")).limit(2)
        ).all()
    return [_rollout(r) for r in rows]


def select_rollouts(
    db: MetadataStore,
    *,
    deployment: str | None = None,
    states: tuple[str, ...] | None = None,
    limit: int | None = None,
    oldest_first: bool = False,
) -> list[Rollout]:
    query = select(ROLLOUTS)
    if deployment is not None:
        query = query.where(ROLLOUTS.c.deployment == deployment)
    if states is not None:
        query = query.where(ROLLOUTS.c.state.in_(states))
    order = ROLLOUTS.c.created_ms.asc() if oldest_first else ROLLOUTS.c.created_ms.desc()
    query = query.order_by(order, ROLLOUTS.c.id.asc() if oldest_first else ROLLOUTS.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    with db.read() as conn:
        return [_rollout(r) for r in conn.execute(query)]


def events_of(db: MetadataStore, rollout: Rollout) -> list[RolloutEvent]:
    with db.read() as conn:
        rows = conn.execute(
            select(EVENTS).where(EVENTS.c.rollout_id == rollout.id).order_by(EVENTS.c.seq)
        ).all()
    return [_event(r, rollout.deployment) for r in rows]


def version_of(db: MetadataStore, rollout_id: str) -> int:
    with db.read() as conn:
        return int(
            conn.execute(select(ROLLOUTS.c.version).where(ROLLOUTS.c.id == rollout_id)).scalar_one()
        )


# -- writing ----------------------------------------------------------------------------------


def insert(
    db: MetadataStore,
    values: dict[str, Any],
    *,
    message: str,
    actor: str,
) -> Rollout:
    """Store a new rollout (version 1, its ``started`` event) unless its deployment has a
    running one; under the registry lock, so two starts cannot both pass that check."""

    def work(conn: Connection) -> Rollout:
        running = conn.execute(
            select(ROLLOUTS.c.id, ROLLOUTS.c.candidate_model, ROLLOUTS.c.candidate_version).where(
                ROLLOUTS.c.deployment == values["deployment"], ROLLOUTS.c.state == RUNNING
            )
        ).first()
        if running is not None:
            raise Conflict(
                f"deployment {values['deployment']!r} already has a running rollout "
                f"{running.id} ({running.candidate_model}:{running.candidate_version}); wait "
                f"for it or stop it with `mloop rollout abort {running.id}`"
            )
        conn.execute(ROLLOUTS.insert(), {**values, "version": 1})
        row = conn.execute(select(ROLLOUTS).where(ROLLOUTS.c.id == values["id"])).one()
        rollout = _rollout(row)
        _append_event(conn, rollout, 1, "started", -1, message, {}, actor, None, rollout.created_ms)
        _audit.append(
            conn,
            actor=actor,
            action="rollout.start",
            target=f"deployment:{rollout.deployment}",
            before=None,
            after={
                "rollout": rollout.id,
                "candidate": rollout.candidate,
                "primary": rollout.primary,
                "plan": rollout.plan.to_json(),
                "plan_name": rollout.plan_name,
            },
        )
        return rollout

    return write(db, work)


def claim(
    db: MetadataStore,
    rollout: Rollout,
    target: dict[str, Any],
    *,
    now_ms: int,
    fence: Lease | None,
) -> Rollout:
    """Mark ``target`` as the transition in progress, if ``rollout`` is still running at the
    version read (and ``fence`` still leads); :class:`LostRace` otherwise."""

    def work(conn: Connection) -> Rollout:
        if fence is not None:
            check_fence(conn, fence)
        moved = conn.execute(
            update(ROLLOUTS)
            .where(
                ROLLOUTS.c.id == rollout.id,
                ROLLOUTS.c.version == rollout.version,
                ROLLOUTS.c.state == RUNNING,
            )
            .values(target=target, version=rollout.version + 1, updated_ms=now_ms)
        )
        if moved.rowcount != 1:
            raise LostRace(f"rollout {rollout.id} moved on meanwhile")
        return _rollout(conn.execute(select(ROLLOUTS).where(ROLLOUTS.c.id == rollout.id)).one())

    return db.write(work)


def complete(
    db: MetadataStore,
    claimed: Rollout,
    changes: dict[str, Any],
    *,
    kind: str,
    message: str,
    detail: dict[str, Any],
    actor: str,
    action: str,
    now_ms: int,
    fence: Lease | None,
    also: Callable[[Connection], object] | None = None,
) -> RolloutEvent:
    """Record the claimed transition: apply ``changes``, clear the target, write its event
    and audit entry — only from the claimed version (:class:`LostRace` otherwise). ``also``
    writes more in the same transaction, after the version and fence checks passed (the
    promotion's alias move): it commits with the completion or, raising, not at all."""
    seq = claimed.version + 1

    def work(conn: Connection) -> RolloutEvent:
        if fence is not None:
            check_fence(conn, fence)
        values = {**changes, "target": None, "version": seq, "updated_ms": now_ms}
        moved = conn.execute(
            update(ROLLOUTS)
            .where(ROLLOUTS.c.id == claimed.id, ROLLOUTS.c.version == claimed.version)
            .values(values)
        )
        if moved.rowcount != 1:
            raise LostRace(f"rollout {claimed.id} moved on meanwhile")
        if also is not None:
            also(conn)
        step = int(changes.get("step", claimed.step))
        revision = changes.get("deployment_revision", claimed.deployment_revision)
        event = _append_event(
            conn, claimed, seq, kind, step, message, detail, actor, revision, now_ms
        )
        _audit.append(
            conn,
            actor=actor,
            action=action,
            target=f"deployment:{claimed.deployment}",
            before={"rollout": claimed.id, "state": claimed.state, "step": claimed.step},
            after={
                "rollout": claimed.id,
                "state": changes.get("state", claimed.state),
                "step": step,
                "message": message,
                "deployment_revision": revision,
            },
        )
        return event

    return write(db, work)


def note_check(db: MetadataStore, rollout: Rollout, check: dict[str, Any], now_ms: int) -> bool:
    """Keep the latest judgement of a holding step on the row (no transition, no event)."""

    def work(conn: Connection) -> bool:
        moved = conn.execute(
            update(ROLLOUTS)
            .where(ROLLOUTS.c.id == rollout.id, ROLLOUTS.c.version == rollout.version)
            .values(last_check=check, updated_ms=now_ms)
        )
        return bool(moved.rowcount == 1)

    return db.write(work)


def _append_event(
    conn: Connection,
    rollout: Rollout,
    seq: int,
    kind: str,
    step: int,
    message: str,
    detail: dict[str, Any],
    actor: str,
    revision: int | None,
    at_ms: int,
) -> RolloutEvent:
    event = RolloutEvent(
        id=new_id(),
        rollout_id=rollout.id,
        deployment=rollout.deployment,
        seq=seq,
        at_ms=at_ms,
        kind=kind,
        step=step,
        message=message,
        detail=detail,
        actor=actor,
        deployment_revision=revision,
    )
    values = event.to_dict()
    del values["deployment"]
    conn.execute(EVENTS.insert(), values)
    return event


__all__ = [
    "FINAL_STATES",
    "RUNNING",
    "STATES",
    "LostRace",
    "Rollout",
    "RolloutEvent",
]
