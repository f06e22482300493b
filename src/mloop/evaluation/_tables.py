"""Tables of evaluations, named gates and blessing requirements (migration 0005).

An evaluation is history: it names the models by URI, registered version and package
digest rather than by foreign key, so deleting or archiving a version never erases what
was decided about it. The package digest is what links a verdict to a model version: the
retraining chain evaluates a run's package *before* registering it, and the version
registered afterwards has the same digest, so its blessing is found.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mloop.store.schema import ID, Base

NAME = String(128)
MODEL_NAME = String(256)
DIGEST = String(64)


class Evaluation(Base):
    """One evaluation: what was compared on which data, the verdict (``blessed`` is NULL
    without a gate) with its reasons, and the report's JSON (without the curves)."""

    __tablename__ = "evaluations"
    __table_args__ = (
        Index(None, "candidate_digest", "creation_time"),
        Index(None, "candidate_model", "candidate_version"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    candidate: Mapped[str] = mapped_column(Text)
    candidate_digest: Mapped[str] = mapped_column(DIGEST)
    candidate_model: Mapped[str | None] = mapped_column(MODEL_NAME)
    candidate_version: Mapped[int | None] = mapped_column(Integer)
    baseline: Mapped[str | None] = mapped_column(Text)
    baseline_digest: Mapped[str | None] = mapped_column(DIGEST)
    data: Mapped[str | None] = mapped_column(String(512))
    metric: Mapped[str] = mapped_column(String(32))
    gate_name: Mapped[str | None] = mapped_column(NAME)
    gate: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    blessed: Mapped[bool | None] = mapped_column(Boolean)
    reasons: Mapped[list[str]] = mapped_column(JSON)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(250))
    creation_time: Mapped[int] = mapped_column(BigInteger)


class GateRow(Base):
    """A named gate (config as code): its rules as the YAML's JSON."""

    __tablename__ = "evaluation_gates"

    name: Mapped[str] = mapped_column(NAME, primary_key=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(250))
    creation_time: Mapped[int] = mapped_column(BigInteger)
    last_update_time: Mapped[int] = mapped_column(BigInteger)


class BlessingRequirement(Base):
    """Aliases of a registered model that only a blessed version may take (``aliases`` a
    JSON list; ``["*"]`` means every alias), optionally blessed by one named gate."""

    __tablename__ = "blessing_requirements"

    model_name: Mapped[str] = mapped_column(MODEL_NAME, primary_key=True)
    aliases: Mapped[list[str]] = mapped_column(JSON)
    gate_name: Mapped[str | None] = mapped_column(NAME)
    updated_by: Mapped[str] = mapped_column(String(250))
    last_update_time: Mapped[int] = mapped_column(BigInteger)
