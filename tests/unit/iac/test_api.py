"""The public surface of mloop.iac, pinned so it changes only on purpose, and imported
lazily (``import mloop.iac`` loads no kind, model or database code)."""

from __future__ import annotations

import subprocess
import sys

import mloop.iac

PUBLIC = [
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


def test_public_names_are_pinned_and_resolve() -> None:
    assert mloop.iac.__all__ == PUBLIC
    for name in PUBLIC:
        assert getattr(mloop.iac, name) is not None
    assert sorted(dir(mloop.iac)) == sorted(set(dir(mloop.iac)) | set(PUBLIC))


def test_importing_the_package_loads_nothing_else() -> None:
    code = (
        "import sys, mloop.iac; "
        "print(sorted(m for m in sys.modules if m.startswith(('mloop.iac.', 'sqlalchemy', "
        "'mloop.serving', 'mloop.agent'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
