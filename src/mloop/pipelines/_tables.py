"""Tables of pipeline executions, their steps and the step cache (migration 0007).

A step row is written when the pipeline starts (``pending``) and updated as the step
runs; its ``outputs`` are recorded only once the step succeeded and every output is in
the artifact store, so a failed step never leaves a reference to something half-written.
The cache maps a step's cache key (code digest, parameters, input digests) to the outputs
of the successful execution that made them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mloop.store.schema import ID, Base

NAME = String(250)
REF = String(500)
DIGEST = String(64)


class PipelineExecutionRow(Base):
    """One run of a pipeline: ``running``, then ``succeeded``, ``failed`` or ``stopped``
    (a step raised StopPipeline; ``reason`` says why). ``attempts`` counts the run and
    each resume."""

    __tablename__ = "pipeline_executions"
    __table_args__ = (Index(None, "name", "start_time"),)

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    pipeline: Mapped[str] = mapped_column(REF)
    name: Mapped[str] = mapped_column(NAME)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    executor: Mapped[str] = mapped_column(NAME)
    run_id: Mapped[str | None] = mapped_column(ID)
    outputs: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_by: Mapped[str | None] = mapped_column(NAME)
    attempts: Mapped[int] = mapped_column(Integer)
    start_time: Mapped[int] = mapped_column(BigInteger)
    end_time: Mapped[int | None] = mapped_column(BigInteger)


class PipelineStepRow(Base):
    """One node of one execution: ``pending``, ``running``, ``cached`` (outputs reused
    from an earlier execution), ``succeeded``, ``failed``, ``stopped`` or ``skipped``."""

    __tablename__ = "pipeline_steps"

    execution_id: Mapped[str] = mapped_column(
        ID, ForeignKey("pipeline_executions.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(NAME, primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    step: Mapped[str] = mapped_column(REF)
    upstream: Mapped[list[str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    cached: Mapped[bool] = mapped_column(Boolean)
    run_id: Mapped[str | None] = mapped_column(ID)
    code_digest: Mapped[str] = mapped_column(DIGEST)
    cache_key: Mapped[str | None] = mapped_column(DIGEST)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    outputs: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    start_time: Mapped[int | None] = mapped_column(BigInteger)
    end_time: Mapped[int | None] = mapped_column(BigInteger)


class PipelineCacheRow(Base):
    """A successful step execution's outputs, found by its cache key."""

    __tablename__ = "pipeline_cache"

    cache_key: Mapped[str] = mapped_column(DIGEST, primary_key=True)
    step: Mapped[str] = mapped_column(REF)
    execution_id: Mapped[str] = mapped_column(ID)
    step_name: Mapped[str] = mapped_column(NAME)
    run_id: Mapped[str | None] = mapped_column(ID)
    outputs: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_time: Mapped[int] = mapped_column(BigInteger)
