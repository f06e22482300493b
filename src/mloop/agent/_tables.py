"""Tables of the agent (migration 0008): leader leases, named rollout plans, rollouts and
their events.

A rollout row is a small state machine guarded by ``version``: every transition is an
``UPDATE … WHERE version = :seen`` that bumps it, so of several agents acting on the same
rollout exactly one moves it, and the event a transition writes carries that version as
its ``seq`` (unique per rollout) — an event can never be written twice.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mloop.store.schema import ID, Base

NAME = String(128)
WHO = String(250)


class AgentLease(Base):
    """Who leads a named group of agents until ``expires_ms``. ``token`` grows by one at
    every change of hands: it is the fencing token a leader's writes are checked against,
    so a leader that stalled past its lease cannot act after another took over."""

    __tablename__ = "agent_leases"

    name: Mapped[str] = mapped_column(NAME, primary_key=True)
    holder: Mapped[str] = mapped_column(WHO)
    token: Mapped[int] = mapped_column(BigInteger)
    acquired_ms: Mapped[int] = mapped_column(BigInteger)
    expires_ms: Mapped[int] = mapped_column(BigInteger)


class RolloutPlanRow(Base):
    """A rollout plan stored under a name (``plan``: the plan as JSON)."""

    __tablename__ = "rollout_plans"

    name: Mapped[str] = mapped_column(NAME, primary_key=True)
    plan: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(WHO)
    creation_time: Mapped[int] = mapped_column(BigInteger)
    last_update_time: Mapped[int] = mapped_column(BigInteger)


class RolloutRow(Base):
    """One candidate's way through a plan on one deployment.

    ``base_spec`` is the deployment as it was (without the candidate): what a rollback
    returns to. ``step`` is the index of the plan step in force (-1 before the first),
    held since ``step_started_ms``; ``deployment_revision`` the revision the rollout last
    made. ``target`` is the transition being applied, if any (a step, the promotion or a
    rollback): set when a transition is claimed, cleared when it is recorded, so an agent
    that dies half-way leaves the next one enough to finish it.
    """

    __tablename__ = "rollouts"
    __table_args__ = (Index(None, "deployment", "created_ms"), Index(None, "state"))

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    deployment: Mapped[str] = mapped_column(String(250))
    candidate_model: Mapped[str] = mapped_column(String(250))
    candidate_version: Mapped[int] = mapped_column(Integer)
    primary_model: Mapped[str] = mapped_column(String(250))
    primary_version: Mapped[int] = mapped_column(Integer)
    plan: Mapped[dict[str, Any]] = mapped_column(JSON)
    plan_name: Mapped[str | None] = mapped_column(NAME)
    base_spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    step: Mapped[int] = mapped_column(Integer)
    step_started_ms: Mapped[int] = mapped_column(BigInteger)
    deployment_revision: Mapped[int] = mapped_column(Integer)
    target: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)
    last_check: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(WHO)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    finished_ms: Mapped[int | None] = mapped_column(BigInteger)


class RolloutEventRow(Base):
    """A transition of a rollout, once: ``seq`` is the rollout's version it produced."""

    __tablename__ = "rollout_events"
    __table_args__ = (UniqueConstraint("rollout_id", "seq"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    rollout_id: Mapped[str] = mapped_column(ID, ForeignKey("rollouts.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    at_ms: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    step: Mapped[int] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    actor: Mapped[str] = mapped_column(WHO)
    deployment_revision: Mapped[int | None] = mapped_column(Integer)
