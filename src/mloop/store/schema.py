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
    Boolean,
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


# -- registry (issue 4): models, versions, aliases, approvals, policies, audit, identities ----


class RegisteredModel(Base):
    """A named model whose versions are registered packages."""

    __tablename__ = "registered_models"

    model_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[dict[str, str]] = mapped_column(JSON)
    creation_time: Mapped[int] = mapped_column(BigInteger)
    last_update_time: Mapped[int] = mapped_column(BigInteger)


class ModelVersion(Base):
    """One registered package, numbered 1, 2, … per model; its bytes never change.

    ``package_digest`` is the SHA-256 of the package manifest, so the version names exact
    content; ``uploader`` is who registered it (checked by "approver is not the uploader").
    """

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model_id", "version"),
        Index(None, "model_id", "package_digest"),
        Index(None, "run_id"),
    )

    version_id: Mapped[str] = mapped_column(ID, primary_key=True)
    model_id: Mapped[str] = mapped_column(ID, ForeignKey("registered_models.model_id"))
    version: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(Text)
    run_id: Mapped[str | None] = mapped_column(ID, ForeignKey("runs.run_id", ondelete="SET NULL"))
    package_digest: Mapped[str] = mapped_column(String(64))
    uploader: Mapped[str] = mapped_column(String(250))
    status: Mapped[str] = mapped_column(String(16))  # "active" or "archived"
    description: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[dict[str, str]] = mapped_column(JSON)
    creation_time: Mapped[int] = mapped_column(BigInteger)
    last_update_time: Mapped[int] = mapped_column(BigInteger)


class ModelAlias(Base):
    """A movable name (``champion``, ``challenger``, …) for one version of a model.

    The primary key makes "one version per alias" a database fact: moving an alias is an
    update of its one row, never a delete followed by an insert.
    """

    __tablename__ = "model_aliases"
    __table_args__ = (Index(None, "version_id"),)

    model_id: Mapped[str] = mapped_column(
        ID, ForeignKey("registered_models.model_id"), primary_key=True
    )
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[str] = mapped_column(ID, ForeignKey("model_versions.version_id"))
    updated_by: Mapped[str] = mapped_column(String(250))
    last_update_time: Mapped[int] = mapped_column(BigInteger)


class Approval(Base):
    """A user's approval for moving ``alias`` to one version (one per user, version, alias)."""

    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("version_id", "alias", "user_id"),)

    approval_id: Mapped[str] = mapped_column(ID, primary_key=True)
    version_id: Mapped[str] = mapped_column(ID, ForeignKey("model_versions.version_id"))
    alias: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(ID, ForeignKey("users.user_id"))
    comment: Mapped[str | None] = mapped_column(Text)
    creation_time: Mapped[int] = mapped_column(BigInteger)


class TrustPolicy(Base):
    """What loading and promoting a registered model's versions requires.

    ``trusted_keys`` is a JSON list of PEM public keys; ``require_evaluation`` is stored
    now and enforced once the evaluation gate exists.
    """

    __tablename__ = "trust_policies"

    model_id: Mapped[str] = mapped_column(
        ID, ForeignKey("registered_models.model_id"), primary_key=True
    )
    require_signature: Mapped[bool] = mapped_column(Boolean)
    trusted_keys: Mapped[list[str]] = mapped_column(JSON)
    require_clean_scan: Mapped[bool] = mapped_column(Boolean)
    required_approvals: Mapped[int] = mapped_column(Integer)
    approver_not_uploader: Mapped[bool] = mapped_column(Boolean)
    require_evaluation: Mapped[bool] = mapped_column(Boolean)
    updated_by: Mapped[str] = mapped_column(String(250))
    last_update_time: Mapped[int] = mapped_column(BigInteger)


class AuditEntry(Base):
    """One change to the registry or to identities; entries are only ever appended.

    ``hash`` is the SHA-256 of the entry's canonical JSON (every column but ``hash``), and
    ``prev_hash`` the hash of entry ``seq - 1``: changing or removing an entry directly in
    the database breaks the chain at that entry. Triggers (migration 0003) refuse UPDATE
    and DELETE on this table.
    """

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "target"),)

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    at: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(250))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(600))
    before: Mapped[Any] = mapped_column(JSON, nullable=True)
    after: Mapped[Any] = mapped_column(JSON, nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class User(Base):
    """A person (``user``) or a program (``service``) that holds roles and API keys.

    Users are disabled, never deleted, so approvals and audit entries keep naming them.
    """

    __tablename__ = "users"

    user_id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(250), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(Boolean)
    creation_time: Mapped[int] = mapped_column(BigInteger)


class ApiKey(Base):
    """An API key, as ``mloop_<key_id>_<secret>``; only a salted hash of it is kept.

    ``hash_scheme`` records the KDF and its parameters so they can be raised later
    without invalidating keys hashed before.
    """

    __tablename__ = "api_keys"
    __table_args__ = (Index(None, "user_id"),)

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ID, ForeignKey("users.user_id"))
    description: Mapped[str | None] = mapped_column(Text)
    salt: Mapped[str] = mapped_column(String(64))
    key_hash: Mapped[str] = mapped_column(String(128))
    hash_scheme: Mapped[str] = mapped_column(String(64))
    creation_time: Mapped[int] = mapped_column(BigInteger)
    last_used_time: Mapped[int | None] = mapped_column(BigInteger)
    revoked_time: Mapped[int | None] = mapped_column(BigInteger)


class RoleBinding(Base):
    """A role a user holds within a scope: ``global``, ``experiment:<id or name>`` or
    ``model:<name>``."""

    __tablename__ = "role_bindings"
    __table_args__ = (UniqueConstraint("user_id", "role", "scope"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    user_id: Mapped[str] = mapped_column(ID, ForeignKey("users.user_id"))
    role: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(600))
    creation_time: Mapped[int] = mapped_column(BigInteger)


class Deployment(Base):
    """A named deployment and the revision it is at now.

    ``current_revision`` is what serving processes poll (one primary-key read), so they pick
    up a change without reading the spec on every poll.
    """

    __tablename__ = "deployments"

    name: Mapped[str] = mapped_column(String(256), primary_key=True)
    current_revision: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(250))
    creation_time: Mapped[int] = mapped_column(BigInteger)
    last_update_time: Mapped[int] = mapped_column(BigInteger)


class DeploymentRevision(Base):
    """One immutable revision of a deployment: the full spec (JSON, with its format version),
    who made it and why. Rollback writes a new revision; none is ever changed."""

    __tablename__ = "deployment_revisions"

    name: Mapped[str] = mapped_column(String(256), ForeignKey("deployments.name"), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_time: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(250))
    reason: Mapped[str | None] = mapped_column(Text)
