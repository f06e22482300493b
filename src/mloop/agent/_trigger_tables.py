"""Tables of retraining triggers and their firings (migration 0009).

A firing row is the claim on one event: the unique ``(trigger, event_key)`` pair is what
makes an event fire once however many agents look at it at the same moment. Firings are
history and outlive their trigger (no foreign key): deleting a trigger keeps what it did.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from mloop.store.schema import ID, Base

NAME = String(128)


class TriggerRow(Base):
    """A trigger's declaration (``spec``, the YAML as JSON) and its arming state: what it
    had already seen when it was saved (``armed``: the dataset's newest version then), so
    saving a trigger never fires it for the past."""

    __tablename__ = "triggers"

    name: Mapped[str] = mapped_column(NAME, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    armed: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(250))
    creation_time: Mapped[int] = mapped_column(BigInteger)
    last_update_time: Mapped[int] = mapped_column(BigInteger)


class TriggerFiring(Base):
    """One event of one trigger and what running the pipeline for it came to: ``running``,
    then ``succeeded``, ``stopped`` (with the pipeline's reason, e.g. a refused gate),
    ``failed`` (with the error), or ``skipped`` (inside the trigger's cooldown)."""

    __tablename__ = "trigger_firings"
    __table_args__ = (
        UniqueConstraint("trigger", "event_key"),
        Index(None, "trigger", "fired_ms"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    trigger: Mapped[str] = mapped_column(NAME)
    event_key: Mapped[str] = mapped_column(String(250))
    kind: Mapped[str] = mapped_column(String(16))
    event: Mapped[dict[str, Any]] = mapped_column(JSON)
    pipeline: Mapped[str] = mapped_column(String(500))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    fired_ms: Mapped[int] = mapped_column(BigInteger)
    fired_by: Mapped[str] = mapped_column(String(250))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    execution_id: Mapped[str | None] = mapped_column(String(64))
    finished_ms: Mapped[int | None] = mapped_column(BigInteger)
