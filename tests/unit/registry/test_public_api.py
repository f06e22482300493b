"""The registry's public surface is pinned: a name added or dropped by accident fails here."""

from __future__ import annotations

import mloop.registry


def test_registry_api() -> None:
    assert set(mloop.registry.__all__) == {
        "ACTIONS", "GLOBAL", "ROLES", "ROLE_ACTIONS", "ApiKeyInfo", "Approval", "AuditEntry",
        "AuditVerification", "ModelVersion", "NewApiKey", "Principal", "RegisteredModel",
        "Resource", "RoleGrant", "TrustPolicy", "User", "allowed", "approve",
        "archive_model_version", "authenticate", "authorize", "create_api_key",
        "create_registered_model", "create_user", "delete_alias", "delete_tag", "disable_user",
        "enable_user", "get_model_version", "get_registered_model", "get_trust_policy",
        "get_user", "grant_role", "list_api_keys", "list_approvals", "list_audit_log",
        "list_model_versions", "list_registered_models", "list_users", "principal_for",
        "promotion_blockers", "register_model_version", "resolve", "restore_model_version",
        "revoke_api_key", "revoke_role", "set_alias", "set_description", "set_tag",
        "set_trust_policy", "verify_audit_log",
    }  # fmt: skip
    for name in mloop.registry.__all__:
        assert getattr(mloop.registry, name) is not None


def test_contract_signatures_other_parts_call() -> None:
    import inspect

    register = inspect.signature(mloop.registry.register_model_version)
    assert list(register.parameters)[:2] == ["name", "source"]
    for keyword in ("run_id", "package_digest", "dataset_versions", "description"):
        assert register.parameters[keyword].kind is inspect.Parameter.KEYWORD_ONLY
    assert list(inspect.signature(mloop.registry.resolve).parameters)[:2] == ["name", "ref"]
    assert list(inspect.signature(mloop.registry.authorize).parameters) == [
        "principal",
        "action",
        "resource",
    ]
