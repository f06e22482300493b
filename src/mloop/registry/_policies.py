"""Trust policies: what loading and promoting a registered model's versions requires.

``load_model`` reads the policy through :func:`get_trust_policy` (via
``mloop.models._trust.enforce``); alias moves through :mod:`mloop.registry._promotion`.
Changing a policy needs ``admin`` on the model and is audited, with trusted keys recorded
as fingerprints so the log stays short.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, update

from mloop._ids import now_ms
from mloop.errors import InvalidInput
from mloop.registry import _audit, _names
from mloop.registry._db import MODELS, POLICIES, Actor, actor_name, check, connect, write
from mloop.registry._entities import TrustPolicy
from mloop.registry._models import require_model
from mloop.registry._roles import Resource
from mloop.store import MetadataStore

MAX_APPROVALS = 100


def get_trust_policy(name: str, *, store: MetadataStore | None = None) -> TrustPolicy | None:
    """The policy of registered model ``name``; None when it has none (or does not exist),
    which means nothing beyond the package's own digests is required."""
    _names.model_name(name)
    with connect(store) as db, db.read() as conn:
        return policy_in(conn, name)


def policy_in(conn: Connection, name: str) -> TrustPolicy | None:
    row = conn.execute(
        select(POLICIES).select_from(POLICIES.join(MODELS)).where(MODELS.c.name == name)
    ).first()
    return None if row is None else _from_row(row)


def set_trust_policy(
    name: str, policy: TrustPolicy, *, actor: Actor = None, store: MetadataStore | None = None
) -> TrustPolicy:
    """Replace the policy of registered model ``name`` (which must exist)."""
    _names.model_name(name)
    clean = _checked(policy)
    check(actor, "admin", Resource.model(name))
    who = actor_name(actor)

    def work(conn: Connection) -> TrustPolicy:
        model = require_model(conn, name)
        old = policy_in(conn, name)
        if old == clean:
            return clean
        values = {
            "require_signature": clean.require_signature,
            "trusted_keys": list(clean.trusted_keys),
            "require_clean_scan": clean.require_clean_scan,
            "required_approvals": clean.required_approvals,
            "approver_not_uploader": clean.approver_not_uploader,
            "require_evaluation": clean.require_evaluation,
            "updated_by": who,
            "last_update_time": now_ms(),
        }
        if old is None:
            conn.execute(POLICIES.insert(), {"model_id": model.model_id, **values})
        else:
            conn.execute(
                update(POLICIES).where(POLICIES.c.model_id == model.model_id).values(values)
            )
        _audit.append(
            conn,
            actor=who,
            action="policy.set",
            target=f"model:{name}",
            before=None if old is None else old.to_dict(keys_as_fingerprints=True),
            after=clean.to_dict(keys_as_fingerprints=True),
        )
        return clean

    with connect(store) as db:
        return write(db, work)


def _checked(policy: TrustPolicy) -> TrustPolicy:
    if not isinstance(policy, TrustPolicy):
        raise InvalidInput(f"expected a TrustPolicy, not {type(policy).__name__}")
    approvals = policy.required_approvals
    if isinstance(approvals, bool) or not isinstance(approvals, int):
        raise InvalidInput(f"required_approvals must be a whole number, not {approvals!r}")
    if not 0 <= approvals <= MAX_APPROVALS:
        raise InvalidInput(f"required_approvals must be between 0 and {MAX_APPROVALS}")
    keys = tuple(dict.fromkeys(_public_key_pem(k) for k in policy.trusted_keys))
    if policy.require_signature and not keys:
        raise InvalidInput(
            "a policy that requires a signature needs at least one trusted public key "
            "(--trusted-key PEMFILE); without one nothing could ever load"
        )
    return TrustPolicy(
        require_signature=bool(policy.require_signature),
        trusted_keys=keys,
        require_clean_scan=bool(policy.require_clean_scan),
        required_approvals=approvals,
        approver_not_uploader=bool(policy.approver_not_uploader),
        require_evaluation=bool(policy.require_evaluation),
    )


def _public_key_pem(pem: Any) -> str:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    text = pem.decode() if isinstance(pem, bytes) else pem
    if not isinstance(text, str):
        raise InvalidInput(f"a trusted key must be PEM text, not {type(pem).__name__}")
    text = text.strip()
    if "PRIVATE KEY" in text:
        raise InvalidInput(
            "a trusted key must be a PUBLIC key; this is a private key, which must never be "
            "shared: pass the .pub file `mloop keys generate` wrote next to it"
        )
    try:
        load_pem_public_key(text.encode())
    except (ValueError, TypeError) as exc:
        raise InvalidInput(
            "a trusted key is not a PEM public key (-----BEGIN PUBLIC KEY-----…); pass the "
            "publisher's .pub file"
        ) from exc
    return text + "\n"


def _from_row(row: Any) -> TrustPolicy:
    return TrustPolicy(
        require_signature=bool(row.require_signature),
        trusted_keys=tuple(row.trusted_keys or ()),
        require_clean_scan=bool(row.require_clean_scan),
        required_approvals=int(row.required_approvals),
        approver_not_uploader=bool(row.approver_not_uploader),
        require_evaluation=bool(row.require_evaluation),
    )
