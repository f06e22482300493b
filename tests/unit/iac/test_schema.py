"""The published JSON Schema: the committed docs/schema/mloop-v1.json is what the kinds'
models generate, and it accepts the documents mloop accepts (docs' example, exports) and
refuses malformed ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mloop.iac import API_VERSION, json_schema, kinds, schema_text
from mloop.iac._documents import parse_documents

jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[3]
SCHEMA_FILE = ROOT / "docs" / "schema" / "mloop-v1.json"


def _validator() -> Any:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_committed_schema_is_the_generated_one() -> None:
    """Regenerate with `mloop schema > docs/schema/mloop-v1.json` when a kind's model changes."""
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text()


def test_every_supported_kind_is_in_the_schema() -> None:
    supported = {name for name, kind in kinds().items() if kind.unavailable() is None}
    listed = {ref["$ref"].rsplit("/", 1)[1] for ref in json_schema()["oneOf"]}
    assert listed == supported
    assert {"Deployment", "Trigger", "PipelineSchedule"} <= listed


def example_documents() -> list[dict[str, Any]]:
    """The documents of every ```yaml block in docs/configuration-as-code.md that starts
    with a `# FILE` comment (the example folder)."""
    text = (ROOT / "docs" / "configuration-as-code.md").read_text(encoding="utf-8")
    documents = []
    for block in text.split("```yaml\n")[1:]:
        body = block.split("```", 1)[0]
        if body.startswith("# ") and body.split("\n", 1)[0].endswith((".yaml", ".yml")):
            found, problems = parse_documents(body, "example")  # mloop's reading of YAML
            assert problems == []
            documents += [
                {
                    "apiVersion": API_VERSION,
                    "kind": d.kind,
                    "metadata": {"name": d.name},
                    "spec": d.spec,
                }
                for d in found
            ]
    return documents


def test_the_documented_examples_validate() -> None:
    documents = example_documents()
    assert {d["kind"] for d in documents} >= {"Deployment", "PipelineSchedule", "Trigger"}
    validator = _validator()
    for document in documents:
        errors = [e.message for e in validator.iter_errors(document)]
        assert errors == [], (document["metadata"], errors)


@pytest.mark.parametrize(
    "document",
    [
        {"apiVersion": "mloop/v1", "kind": "Deploymnet", "metadata": {"name": "a"}, "spec": {}},
        {
            "apiVersion": "mloop/v2",
            "kind": "Deployment",
            "metadata": {"name": "a"},
            "spec": {"members": []},
        },
        {"apiVersion": "mloop/v1", "kind": "Deployment", "metadata": {"name": "a"}},
        {"apiVersion": "mloop/v1", "kind": "Deployment", "metadata": {}, "spec": {"members": []}},
        {
            "apiVersion": "mloop/v1",
            "kind": "Deployment",
            "metadata": {"name": "a"},
            "spec": {"members": [{"model": "iris:1"}], "guards": {"rate_limt_per_key": 1}},
        },
        {
            "apiVersion": "mloop/v1",
            "kind": "PipelineSchedule",
            "metadata": {"name": "a"},
            "spec": {"pipeline": "a.b:c"},
        },
    ],
)
def test_malformed_documents_do_not_validate(document: dict[str, Any]) -> None:
    assert list(_validator().iter_errors(document)) != []
