"""The published JSON Schema of ``apiVersion: mloop/v1`` documents, generated from the
kinds' pydantic models so it cannot drift from what ``mloop apply`` accepts
(docs/schema/mloop-v1.json is this output, pinned by a test).

Editors use it for completion and checking (``# yaml-language-server: $schema=…``); mloop
itself validates with the models, whose messages say how to fix a value.
"""

from __future__ import annotations

import json
from typing import Any

from mloop.iac._documents import API_VERSION
from mloop.iac._kinds import kinds

SCHEMA_ID = "https://mloop.dev/schema/mloop-v1.json"
SCHEMA_FILE = "docs/schema/mloop-v1.json"


def json_schema() -> dict[str, Any]:
    """The schema of one document of any supported kind (kinds not supported yet are left
    out, since the installation would refuse them)."""
    definitions: dict[str, Any] = {
        "Metadata": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "minLength": 1, "description": "The object's name."}
            },
        }
    }
    choices = []
    for name, kind in kinds().items():
        if kind.unavailable() is not None:
            continue
        spec = kind.spec_schema(f"#/$defs/{name}.")
        for inner, schema in spec.pop("$defs", {}).items():
            definitions[f"{name}.{inner}"] = schema
        definitions[f"{name}.spec"] = spec
        definitions[name] = {
            "type": "object",
            "description": kind.summary,
            "additionalProperties": False,
            "required": ["apiVersion", "kind", "metadata", "spec"],
            "properties": {
                "apiVersion": {"const": API_VERSION},
                "kind": {"const": name},
                "metadata": {"$ref": "#/$defs/Metadata"},
                "spec": {"$ref": f"#/$defs/{name}.spec"},
            },
        }
        choices.append({"$ref": f"#/$defs/{name}"})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": f"mloop configuration document ({API_VERSION})",
        "description": "One document applied with `mloop apply -f`; see "
        "docs/configuration-as-code.md.",
        "oneOf": choices,
        "$defs": definitions,
    }


def schema_text() -> str:
    """The schema as written to docs/schema/mloop-v1.json."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


__all__ = ["SCHEMA_FILE", "SCHEMA_ID", "json_schema", "schema_text"]
