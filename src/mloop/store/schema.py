"""Tables of the metadata store, as typed SQLAlchemy 2 declarative classes.

Times are integer milliseconds since the epoch and ids are UUIDv7 hex strings, so rows
sort by creation on every backend. The hot tracking paths use these classes' ``__table__``
with Core statements; the ORM classes keep the schema readable and typed in one place.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ID = String(32)
KEY = String(250)
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Experiment(Base):
    __tablename__ = "experiments"

    experiment_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    artifact_location: Mapped[str | None] = mapped_column(Text)
    lifecycle_stage: Mapped[str] = mapped_column(String(32), default="active")
    creation_time: Mapped[int] = mapped_column(BigInteger)
    last_update_time: Mapped[int] = mapped_column(BigInteger)


class ExperimentTag(Base):
    __tablename__ = "experiment_tags"

    experiment_id: Mapped[str] = mapped_column(
        ID, ForeignKey("experiments.experiment_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(KEY, primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        Index(None, "experiment_id", "start_time"),
        Index(None, "parent_run_id"),
    )

    run_id: Mapped[str] = mapped_column(ID, primary_key=True)
    experiment_id: Mapped[str] = mapped_column(
        ID, ForeignKey("experiments.experiment_id", ondelete="CASCADE")
    )
    name: Mapped[str | None] = mapped_column(String(250))
    user: Mapped[str | None] = mapped_column(String(250))
    status: Mapped[str] = mapped_column(String(16))
    start_time: Mapped[int] = mapped_column(BigInteger)
    end_time: Mapped[int | None] = mapped_column(BigInteger)
    parent_run_id: Mapped[str | None] = mapped_column(
        ID, ForeignKey("runs.run_id", ondelete="SET NULL")
    )
    lifecycle_stage: Mapped[str] = mapped_column(String(32), default="active")


def _run_fk() -> Any:
    return ForeignKey("runs.run_id", ondelete="CASCADE")


class Param(Base):
    """Immutable once set: the store refuses a second, different value for a key."""

    __tablename__ = "params"
    __table_args__ = (Index(None, "key", "run_id"),)

    run_id: Mapped[str] = mapped_column(ID, _run_fk(), primary_key=True)
    key: Mapped[str] = mapped_column(KEY, primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Metric(Base):
    """Every point ever logged; ``value`` NULL stands for NaN (SQLite cannot store NaN)."""

    __tablename__ = "metrics"
    __table_args__ = (Index(None, "run_id", "key", "step"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    run_id: Mapped[str] = mapped_column(ID, _run_fk())
    key: Mapped[str] = mapped_column(KEY)
    value: Mapped[float | None] = mapped_column(Float)
    step: Mapped[int] = mapped_column(BigInteger, default=0)
    timestamp: Mapped[int] = mapped_column(BigInteger)


class LatestMetric(Base):
    """The newest point (by step, then timestamp) of each run's metric, for fast search."""

    __tablename__ = "latest_metrics"
    __table_args__ = (Index(None, "key", "value"),)

    run_id: Mapped[str] = mapped_column(ID, _run_fk(), primary_key=True)
    key: Mapped[str] = mapped_column(KEY, primary_key=True)
    value: Mapped[float | None] = mapped_column(Float)
    step: Mapped[int] = mapped_column(BigInteger)
    timestamp: Mapped[int] = mapped_column(BigInteger)


class RunTag(Base):
    __tablename__ = "run_tags"
    __table_args__ = (Index(None, "key", "run_id"),)

    run_id: Mapped[str] = mapped_column(ID, _run_fk(), primary_key=True)
    key: Mapped[str] = mapped_column(KEY, primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class RunArtifact(Base):
    """A run's artifact path, a name over a content-addressed blob."""

    __tablename__ = "run_artifacts"

    run_id: Mapped[str] = mapped_column(ID, _run_fk(), primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    created_time: Mapped[int] = mapped_column(BigInteger)


class RunInput(Base):
    """A dataset (or other reference) a run read; the data package fills these."""

    __tablename__ = "run_inputs"

    run_id: Mapped[str] = mapped_column(ID, _run_fk(), primary_key=True)
    ref: Mapped[str] = mapped_column(String(512), primary_key=True)
    context: Mapped[str] = mapped_column(String(64), primary_key=True, default="")
    kind: Mapped[str] = mapped_column(String(32), default="dataset")
    digest: Mapped[str | None] = mapped_column(String(128))
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_time: Mapped[int] = mapped_column(BigInteger)


class LineageEdge(Base):
    """A directed edge between any two recorded things (dataset, run, model, deployment, …).

    Kinds and relations are free strings so later parts of the loop add edges without a
    migration; ``(src, dst, relation)`` is unique so recording an edge twice is harmless.
    """

    __tablename__ = "lineage_edges"
    __table_args__ = (
        UniqueConstraint("src_kind", "src_id", "dst_kind", "dst_id", "relation"),
        Index(None, "dst_kind", "dst_id"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    src_kind: Mapped[str] = mapped_column(String(32))
    src_id: Mapped[str] = mapped_column(String(512))
    dst_kind: Mapped[str] = mapped_column(String(32))
    dst_id: Mapped[str] = mapped_column(String(512))
    relation: Mapped[str] = mapped_column(String(64))
    created_time: Mapped[int] = mapped_column(BigInteger)
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Dataset(Base):
    """A named series of immutable dataset versions."""

    __tablename__ = "datasets"

    dataset_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    creation_time: Mapped[int] = mapped_column(BigInteger)
    last_update_time: Mapped[int] = mapped_column(BigInteger)


class DatasetVersion(Base):
    """One immutable version: numbered 1, 2, … per dataset, unique by manifest digest.

    ``digest`` is the SHA-256 of the version's manifest (a blob in the artifact store);
    registering content whose manifest is already stored returns that version. The
    unique constraint on ``(dataset_id, version)`` makes concurrent writers retry rather
    than share a number.
    """

    __tablename__ = "dataset_versions"
    __table_args__ = (
        UniqueConstraint("dataset_id", "version"),
        UniqueConstraint("dataset_id", "digest"),
        Index(None, "run_id"),
    )

    version_id: Mapped[str] = mapped_column(ID, primary_key=True)
    dataset_id: Mapped[str] = mapped_column(
        ID, ForeignKey("datasets.dataset_id", ondelete="CASCADE")
    )
    version: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64))
    storage: Mapped[str] = mapped_column(String(16))  # "stored" (copied) or "reference"
    source: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    num_rows: Mapped[int | None] = mapped_column(BigInteger)
    num_files: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(BigInteger)
    statistics_digest: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[str | None] = mapped_column(String(250))
    run_id: Mapped[str | None] = mapped_column(ID, ForeignKey("runs.run_id", ondelete="SET NULL"))
    step: Mapped[str | None] = mapped_column(String(250))
    provenance: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    creation_time: Mapped[int] = mapped_column(BigInteger)


class DatasetFile(Base):
    """One file of a version: a blob in the artifact store, or an external object.

    Stored files carry the blob's ``digest``; referenced ones their ``uri`` plus what
    tells a later read that the object changed: ``etag`` (object stores) or ``mtime_ns``
    (files), and ``digest`` when it was asked for.
    """

    __tablename__ = "dataset_files"

    version_id: Mapped[str] = mapped_column(
        ID, ForeignKey("dataset_versions.version_id", ondelete="CASCADE"), primary_key=True
    )
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    format: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(BigInteger)
    digest: Mapped[str | None] = mapped_column(String(64))
    uri: Mapped[str | None] = mapped_column(Text)
    etag: Mapped[str | None] = mapped_column(String(256))
    mtime_ns: Mapped[int | None] = mapped_column(BigInteger)
