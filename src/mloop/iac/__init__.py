"""Configuration as code: deployments, rollout plans, gates, alert rules, triggers and
pipeline schedules declared in YAML documents kept in git, applied idempotently.

``apply(paths)`` checks every document first (errors name the file, line and field, and
nothing is applied while one is wrong), then changes only what differs from what is live;
``plan(paths)`` (``apply(..., dry_run=True)``) shows the differences; ``export()`` writes
the live state back as documents that apply as unchanged; ``json_schema()`` is the
published schema (docs/schema/mloop-v1.json). Kinds register through ``register_kind``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mloop._lazy import lazy_attributes

if TYPE_CHECKING:
    from mloop.iac._documents import API_VERSION, Document, DocumentsInvalid, Problem
    from mloop.iac._export import Exported, export, export_documents
    from mloop.iac._kinds import Kind, kinds, register_kind
    from mloop.iac._plan import ApplyPlan, Change, FieldChange, apply, plan
    from mloop.iac._schema import json_schema, schema_text

_LAZY: dict[str, str] = {
    "API_VERSION": "mloop.iac._documents",
    "ApplyPlan": "mloop.iac._plan",
    "Change": "mloop.iac._plan",
    "Document": "mloop.iac._documents",
    "DocumentsInvalid": "mloop.iac._documents",
    "Exported": "mloop.iac._export",
    "FieldChange": "mloop.iac._plan",
    "Kind": "mloop.iac._kinds",
    "Problem": "mloop.iac._documents",
    "apply": "mloop.iac._plan",
    "export": "mloop.iac._export",
    "export_documents": "mloop.iac._export",
    "json_schema": "mloop.iac._schema",
    "kinds": "mloop.iac._kinds",
    "plan": "mloop.iac._plan",
    "register_kind": "mloop.iac._kinds",
    "schema_text": "mloop.iac._schema",
}

__all__: list[str] = [
    "API_VERSION",
    "ApplyPlan",
    "Change",
    "Document",
    "DocumentsInvalid",
    "Exported",
    "FieldChange",
    "Kind",
    "Problem",
    "apply",
    "export",
    "export_documents",
    "json_schema",
    "kinds",
    "plan",
    "register_kind",
    "schema_text",
]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
