"""The model registry: registered models, versions, aliases and approvals under trust
policies; identities and roles; and the append-only, hash-chained audit log.

Every write names who acted: pass ``actor=`` a :class:`Principal` (from
:func:`authenticate`; its roles are then enforced) or a user name, else the configured
user (``MLOOP_USER``) acts. Every write is recorded in the audit log in the same
transaction; :func:`verify_audit_log` finds the first entry changed or removed behind the
registry's back. Pass ``store=`` a :class:`~mloop.store.MetadataStore` to use that store
instead of the configured one.
"""

from __future__ import annotations

from mloop.registry._audit import list_audit_log, verify_audit_log
from mloop.registry._entities import (
    ApiKeyInfo,
    Approval,
    AuditEntry,
    AuditVerification,
    ModelVersion,
    NewApiKey,
    Principal,
    RegisteredModel,
    RoleGrant,
    TrustPolicy,
    User,
)
from mloop.registry._identity import (
    authenticate,
    create_api_key,
    create_user,
    disable_user,
    enable_user,
    get_user,
    grant_role,
    list_api_keys,
    list_users,
    principal_for,
    revoke_api_key,
    revoke_role,
)
from mloop.registry._models import (
    archive_model_version,
    create_registered_model,
    delete_tag,
    get_model_version,
    get_registered_model,
    list_model_versions,
    list_registered_models,
    register_model_version,
    resolve,
    restore_model_version,
    set_description,
    set_tag,
)
from mloop.registry._policies import get_trust_policy, set_trust_policy
from mloop.registry._promotion import (
    approve,
    delete_alias,
    list_approvals,
    promotion_blockers,
    set_alias,
)
from mloop.registry._roles import ACTIONS, GLOBAL, ROLE_ACTIONS, Resource, allowed, authorize

ROLES = tuple(ROLE_ACTIONS)

__all__ = [
    "ACTIONS",
    "GLOBAL",
    "ROLES",
    "ROLE_ACTIONS",
    "ApiKeyInfo",
    "Approval",
    "AuditEntry",
    "AuditVerification",
    "ModelVersion",
    "NewApiKey",
    "Principal",
    "RegisteredModel",
    "Resource",
    "RoleGrant",
    "TrustPolicy",
    "User",
    "allowed",
    "approve",
    "archive_model_version",
    "authenticate",
    "authorize",
    "create_api_key",
    "create_registered_model",
    "create_user",
    "delete_alias",
    "delete_tag",
    "disable_user",
    "enable_user",
    "get_model_version",
    "get_registered_model",
    "get_trust_policy",
    "get_user",
    "grant_role",
    "list_api_keys",
    "list_approvals",
    "list_audit_log",
    "list_model_versions",
    "list_registered_models",
    "list_users",
    "principal_for",
    "promotion_blockers",
    "register_model_version",
    "resolve",
    "restore_model_version",
    "revoke_api_key",
    "revoke_role",
    "set_alias",
    "set_description",
    "set_tag",
    "set_trust_policy",
    "verify_audit_log",
]
