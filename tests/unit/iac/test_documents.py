"""Reading documents: shapes, YAML errors and duplicate keys by line, folders (sorted,
recursive, hidden files skipped, no links out), and the field → line mapping (hypothesis)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from mloop.errors import InvalidInput
from mloop.iac._documents import (
    collect_files,
    field_path,
    line_of,
    load_documents,
    parse_documents,
)
from tests.unit.iac.conftest import write

DOC = "apiVersion: mloop/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  members: []\n"


def test_several_documents_in_one_file_keep_their_lines() -> None:
    text = DOC.format(name="a") + "---\n# a comment\n" + DOC.format(name="b") + "---\n"
    documents, problems = parse_documents(text, "deploy.yaml")
    assert problems == []
    assert [(d.kind, d.name, d.line) for d in documents] == [
        ("Deployment", "a", 1),
        ("Deployment", "b", 9),
    ]
    assert documents[1].spec == {"members": []}


@pytest.mark.parametrize(
    ("text", "line", "field", "message"),
    [
        ("- just\n- a list\n", 1, "", "must be a mapping"),
        ("kind: Deployment\nmetadata: {name: a}\nspec: {}\n", 1, "apiVersion", "is missing"),
        ("apiVersion: v1\nkind: X\n", 1, "apiVersion", "'v1' is not supported"),
        ("apiVersion: mloop/v1\nmetadata: {name: a}\n", 1, "kind", "is missing"),
        ("apiVersion: mloop/v1\nkind: Gate\nspec: {}\n", 1, "metadata", "is missing"),
        (
            "apiVersion: mloop/v1\nkind: Gate\nmetadata:\n  nmae: a\nspec: {}\n",
            4,
            "metadata.nmae",
            "unknown field",
        ),
        ("apiVersion: mloop/v1\nkind: Gate\nmetadata:\n  name: 3\n", 4, "metadata.name", "string"),
        ("apiVersion: mloop/v1\nkind: Gate\nmetadata: {name: a}\n", 1, "spec", "is missing"),
        (
            "apiVersion: mloop/v1\nkind: Gate\nmetadata: {name: a}\nspec: {}\nstatus: x\n",
            5,
            "status",
            "unknown field",
        ),
        ("a: [1, 2\nb: 3\n", 2, "", "not valid YAML"),
        ("a: 1\nb:\n  c: 1\n  c: 2\n", 4, "", "key 'c' appears twice"),
        ("a: !!python/object:os.system {}\n", 1, "", "not valid YAML"),
    ],
)
def test_bad_documents_are_located(text: str, line: int, field: str, message: str) -> None:
    documents, problems = parse_documents(text, "x.yaml")
    assert documents == []
    (problem,) = problems
    assert (problem.source, problem.line, problem.field) == ("x.yaml", line, field)
    assert message in problem.message
    assert str(problem).startswith(f"x.yaml:{line}: ")


def test_empty_documents_are_skipped() -> None:
    documents, problems = parse_documents("---\n---\n# nothing\n", "x.yaml")
    assert (documents, problems) == ([], [])


def test_a_folder_is_read_recursively_in_sorted_order(tmp_path: Path) -> None:
    for relative in ("z.yaml", "a/b.yml", "a/a.yaml", "m.YAML", ".git/x.yaml", "a/.x.yaml"):
        write(tmp_path / "root" / relative, DOC.format(name="n"))
    write(tmp_path / "root" / "readme.md", "# not a document")
    found = [
        Path(p).relative_to(tmp_path / "root").as_posix()
        for p, _ in collect_files([tmp_path / "root"])
    ]
    assert found == ["a/a.yaml", "a/b.yml", "m.YAML", "z.yaml"]


def test_a_link_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    outside = write(tmp_path / "secret.yaml", "a: 1\n")
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside, root / "link.yaml")
    with pytest.raises(InvalidInput, match="a link to a file outside"):
        collect_files([root])
    os.symlink(tmp_path, root / "folder-link")  # links to folders are not followed
    (root / "link.yaml").unlink()
    assert collect_files([root]) == []


def test_missing_paths_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file or folder"):
        load_documents([tmp_path / "nope.yaml"])
    (tmp_path / "latin.yaml").write_bytes(b"a: \xe9\n")
    _documents, problems = load_documents([tmp_path / "latin.yaml"])
    assert "not UTF-8" in problems[0].message


def test_field_path() -> None:
    assert field_path(("spec", "members", 1, "weight")) == "spec.members[1].weight"
    assert field_path(()) == ""


_keys = st.from_regex(r"[a-z][a-z_]{0,6}", fullmatch=True).filter(
    lambda k: k not in ("y", "n", "yes", "no", "on", "off", "true", "false", "null")
)
_values: st.SearchStrategy[object] = st.recursive(
    st.integers(-5, 5) | st.text("abc", max_size=3),
    lambda children: (
        st.lists(children, min_size=1, max_size=3)
        | st.dictionaries(_keys, children, min_size=1, max_size=3)
    ),
    max_leaves=12,
)


def _paths(value: object, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*prefix, index))
    return found


@given(st.dictionaries(_keys, _values, min_size=1, max_size=4), st.booleans())
def test_every_field_maps_to_the_line_that_holds_it(data: dict[str, object], flow: bool) -> None:
    """Block or flow style: the line found for a path holds that path's key (or item)."""
    text = yaml.safe_dump(data, default_flow_style=None if flow else False, width=40)
    node = yaml.compose(text)
    assert node is not None
    lines = text.splitlines()
    for path in _paths(data)[1:]:
        line = line_of(node, path)
        assert 1 <= line <= len(lines)
        last = path[-1]
        if isinstance(last, str):  # that line holds the key (block or flow style)
            assert re.search(rf"(^|[\s{{,]){last}:", lines[line - 1]), (path, line, text)
    assert line_of(node, ("no-such-key",)) == 1
