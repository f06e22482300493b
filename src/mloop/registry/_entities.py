"""What the registry hands out: frozen snapshots of stored rows, each with ``to_dict``.

They are values, not handles: reading one never touches the store again, so they are safe
to pass across threads, into the CLI's renderers and into JSON.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

ACTIVE = "active"
ARCHIVED = "archived"


@dataclass(frozen=True)
class ModelVersion:
    """One registered model package, numbered 1, 2, … per registered model.

    ``source`` is the package URI (``runs:/RUN_ID/name`` or a path) and ``package_digest``
    the SHA-256 of its manifest, so the version names exact bytes; ``uploader`` is who
    registered it and ``dataset_versions`` the training data (``name@N``) it was linked to.
    """

    name: str
    version: int
    source: str
    package_digest: str
    run_id: str | None
    uploader: str
    status: str
    description: str | None
    tags: dict[str, str]
    aliases: tuple[str, ...]
    dataset_versions: tuple[str, ...]
    creation_time: int
    last_update_time: int

    @property
    def uri(self) -> str:
        """``models:/NAME/VERSION``, the URI ``load_model`` takes."""
        return f"models:/{self.name}/{self.version}"

    @property
    def archived(self) -> bool:
        return self.status == ARCHIVED

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "uri": self.uri}


@dataclass(frozen=True)
class RegisteredModel:
    """A named model: its description, tags, newest version and where its aliases point."""

    name: str
    description: str | None
    tags: dict[str, str]
    latest_version: int | None
    num_versions: int
    aliases: dict[str, int]
    creation_time: int
    last_update_time: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Approval:
    """``approver`` agreed that ``alias`` of ``name`` may point at ``version``."""

    name: str
    version: int
    alias: str
    approver: str
    comment: str | None
    creation_time: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrustPolicy:
    """What loading and promoting a registered model's versions requires.

    ``trusted_keys`` are PEM public keys. ``required_approvals`` counts distinct users who
    hold ``approver`` (or ``admin``) on the model; with ``approver_not_uploader`` the
    uploader's own approval does not count and at least one approval is needed.
    With ``require_evaluation`` every alias promotion needs a blessing from the evaluation
    gate (``mloop.evaluation``; ``require_blessing`` narrows it to some aliases or a gate).
    """

    require_signature: bool = False
    trusted_keys: tuple[str, ...] = ()
    require_clean_scan: bool = False
    required_approvals: int = 0
    approver_not_uploader: bool = False
    require_evaluation: bool = False

    @property
    def approvals_needed(self) -> int:
        """Approvals a promotion needs: ``approver_not_uploader`` implies at least one."""
        return max(self.required_approvals, 1 if self.approver_not_uploader else 0)

    @property
    def checks_package(self) -> bool:
        """True when promoting must fetch and examine the package itself."""
        return self.require_signature or self.require_clean_scan

    def key_fingerprints(self) -> tuple[str, ...]:
        """Short SHA-256 fingerprints of the trusted keys, for listings and the audit log."""
        return tuple(key_fingerprint(pem) for pem in self.trusted_keys)

    def to_dict(self, *, keys_as_fingerprints: bool = False) -> dict[str, Any]:
        data = asdict(self)
        data["trusted_keys"] = list(
            self.key_fingerprints() if keys_as_fingerprints else self.trusted_keys
        )
        return data


def key_fingerprint(pem: str) -> str:
    """``sha256:`` and the first 16 hex digits of the SHA-256 of the key's DER encoding
    (its PEM text when it does not parse), the same however the PEM is wrapped."""
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
        load_pem_public_key,
    )

    try:
        der = load_pem_public_key(pem.encode()).public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo
        )
    except ValueError:
        der = pem.strip().encode()
    return "sha256:" + hashlib.sha256(der).hexdigest()[:16]


@dataclass(frozen=True)
class RoleGrant:
    """A role held within a scope: ``global``, ``experiment:<id or name>``, ``model:<name>``
    or ``deployment:<name>`` (where ``predict`` and ``deploy`` are checked)."""

    role: str
    scope: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class User:
    """A person (kind ``user``) or a program (kind ``service``) and the roles it holds."""

    name: str
    kind: str
    disabled: bool
    roles: tuple[RoleGrant, ...]
    creation_time: int

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "roles": [r.to_dict() for r in self.roles]}


@dataclass(frozen=True)
class Principal:
    """Who is acting, as :func:`~mloop.registry.authenticate` found them: the user, the
    key they used (None for a local user), and the roles they held at that moment."""

    name: str
    kind: str
    roles: tuple[RoleGrant, ...]
    key_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "roles": [r.to_dict() for r in self.roles]}


@dataclass(frozen=True)
class ApiKeyInfo:
    """An API key as stored: never the key itself, only who owns it and its history."""

    key_id: str
    user: str
    description: str | None
    creation_time: int
    last_used_time: int | None
    revoked_time: int | None

    @property
    def revoked(self) -> bool:
        return self.revoked_time is not None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "revoked": self.revoked}


@dataclass(frozen=True)
class NewApiKey:
    """A key just created: ``key`` is shown this once and stored nowhere (only its hash)."""

    info: ApiKeyInfo
    key: str = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {**self.info.to_dict(), "key": self.key}


@dataclass(frozen=True)
class AuditEntry:
    """One recorded change: who (``actor``) did what (``action``) to what (``target``),
    when (``at``, ms), the state ``before`` and ``after``, and the hash chain links."""

    seq: int
    at: int
    actor: str
    action: str
    target: str
    before: Any
    after: Any
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AuditVerification:
    """The result of walking the audit log's hash chain.

    ``ok`` is False at the first broken link: ``broken_seq`` names the entry that was
    changed, removed or replaced and ``problem`` says how it was found. ``head_seq`` and
    ``head_hash`` identify the newest entry; write them down elsewhere (an "anchor") to
    detect a later rewrite of the whole tail.
    """

    ok: bool
    checked: int
    head_seq: int | None
    head_hash: str | None
    broken_seq: int | None = None
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
