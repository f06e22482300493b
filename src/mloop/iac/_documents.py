"""Reading configuration documents: YAML files and folders into located documents.

Every document keeps the YAML node it was built from, so a problem found later (a pydantic
error at ``spec.members[1].weight``) can be reported at the line that holds that field,
not only the file. Files are read with PyYAML's safe loader (no tags that build objects);
a folder is searched recursively for ``*.yaml``/``*.yml`` files in sorted order, without
leaving it through symbolic links.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mloop.errors import InvalidInput

API_VERSION = "mloop/v1"
SUFFIXES = (".yaml", ".yml")
MAX_FILE_BYTES = 8 * 1024 * 1024
"""A configuration file larger than this is refused (a generated dump, not a declaration)."""

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the documents, where it is and how to fix it."""

    source: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.source,
            "line": self.line,
            "field": self.field,
            "message": self.message,
        }


class DocumentsInvalid(InvalidInput):
    """Some documents are invalid; ``problems`` lists each with file, line and field.
    Nothing was applied."""

    code = "INVALID_DOCUMENTS"

    def __init__(self, problems: Sequence[Problem]) -> None:
        shown = "; ".join(str(p) for p in problems[:20])
        more = f"; … and {len(problems) - 20} more" if len(problems) > 20 else ""
        count = f"{len(problems)} problems" if len(problems) > 1 else "1 problem"
        super().__init__(
            f"{count} in the configuration, nothing applied: {shown}{more}",
            details={"errors": [p.to_dict() for p in problems]},
        )
        self.problems = tuple(problems)


class SpecError(InvalidInput):
    """Problems a kind found at fields of a document: each ``(loc, message)`` with ``loc``
    relative to ``spec``, or to the document when it starts with ``"metadata"``."""

    def __init__(self, loc: Loc, message: str, *more: tuple[Loc, str]) -> None:
        super().__init__(message)
        self.located: tuple[tuple[Loc, str], ...] = ((loc, message), *more)


@dataclass(frozen=True)
class Document:
    """One ``apiVersion: mloop/v1`` document as written, with where it came from."""

    kind: str
    name: str
    spec: Any
    source: str
    line: int
    node: yaml.Node = field(repr=False, compare=False)

    def problem(self, loc: Loc, message: str, *, in_spec: bool = True) -> Problem:
        """A problem at ``loc`` (a path inside ``spec`` unless ``in_spec`` is false)."""
        full: Loc = ("spec", *loc) if in_spec and loc[:1] != ("metadata",) else loc
        return Problem(self.source, line_of(self.node, full), field_path(full), message)


def field_path(loc: Sequence[str | int]) -> str:
    """``("spec", "members", 1, "weight")`` → ``spec.members[1].weight``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out


def line_of(node: yaml.Node, loc: Sequence[str | int]) -> int:
    """The 1-based line of the deepest node ``loc`` reaches from ``node``: the key's line
    for a mapping entry, the item's for a list entry, so an error about a missing or
    unknown field still points into the right block."""
    line = node.start_mark.line + 1
    current: yaml.Node = node
    for part in loc:
        found: yaml.Node | None = None
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    line, found = key.start_mark.line + 1, value
                    break
        elif (
            isinstance(current, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(current.value)
        ):
            found = current.value[part]
            line = found.start_mark.line + 1
        if found is None:
            break
        current = found
    return line


def collect_files(paths: Iterable[str | Path]) -> list[tuple[Path, str]]:
    """The files to read, each with how to name it in messages: a file as given, a folder's
    YAML files recursively in sorted order (hidden folders and files skipped)."""
    found: list[tuple[Path, str]] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found.extend(_folder_files(path))
        elif path.exists():
            found.append((path, str(given)))
        else:
            raise InvalidInput(
                f"{given}: no such file or folder; give a YAML file or a folder of them "
                "(mloop apply -f deploy/)"
            )
    return found


def _folder_files(root: Path) -> list[tuple[Path, str]]:
    real_root = root.resolve()
    files: list[tuple[Path, str]] = []
    for folder, subfolders, names in os.walk(root, followlinks=False):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in names:
            if name.startswith(".") or not name.lower().endswith(SUFFIXES):
                continue
            path = Path(folder) / name
            if not path.resolve().is_relative_to(real_root):
                raise InvalidInput(
                    f"{path}: a link to a file outside {root}; copy the file into the folder "
                    "instead of linking it"
                )
            files.append((path, str(path)))
    return sorted(files, key=lambda item: item[0].relative_to(root).as_posix())


def load_documents(paths: Iterable[str | Path]) -> tuple[list[Document], list[Problem]]:
    """Every document in ``paths`` and every problem found reading them (bad YAML, missing
    ``apiVersion``/``kind``/``metadata.name``/``spec``, duplicate keys)."""
    documents: list[Document] = []
    problems: list[Problem] = []
    for path, source in collect_files(paths):
        text, problem = _read(path, source)
        if problem is not None:
            problems.append(problem)
            continue
        found, trouble = parse_documents(text, source)
        documents.extend(found)
        problems.extend(trouble)
    return documents, problems


def _read(path: Path, source: str) -> tuple[str, Problem | None]:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return "", Problem(source, 0, "", f"larger than {MAX_FILE_BYTES >> 20} MiB")
        return path.read_text(encoding="utf-8"), None
    except UnicodeDecodeError:
        return "", Problem(source, 0, "", "not UTF-8 text; save the file as UTF-8")
    except OSError as exc:
        return "", Problem(source, 0, "", f"cannot be read: {exc.strerror or exc}")


def parse_documents(text: str, source: str) -> tuple[list[Document], list[Problem]]:
    """The documents of one YAML stream (``---`` separates several)."""
    documents: list[Document] = []
    problems: list[Problem] = []
    loader = yaml.SafeLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            duplicate = _duplicate_key(node)
            if duplicate is not None:
                key, where = duplicate
                problems.append(
                    Problem(source, where, "", f"key {key!r} appears twice in one mapping")
                )
                continue
            _keys_as_written(node)
            data = loader.construct_document(node)
            if data is None:
                continue
            document, problem = _document(data, node, source)
            if problem is not None:
                problems.append(problem)
            elif document is not None:
                documents.append(document)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else 0
        what = getattr(exc, "problem", None) or str(exc)
        problems.append(Problem(source, line, "", f"not valid YAML: {what}"))
    finally:
        loader.dispose()
    return documents, problems


def _duplicate_key(node: yaml.Node) -> tuple[str, int] | None:
    """PyYAML keeps the last of two equal keys silently; a declaration must not."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, yaml.MappingNode):
            seen: set[str] = set()
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in seen and key.value != "<<":
                        return key.value, key.start_mark.line + 1
                    seen.add(key.value)
                stack.append(value)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)
    return None


_BOOL_TAG = "tag:yaml.org,2002:bool"
_STR_TAG = "tag:yaml.org,2002:str"


def _keys_as_written(node: yaml.Node) -> None:
    """Plain keys YAML 1.1 reads as booleans (``on:``, ``off:``, ``yes:``) stay the words
    written: a trigger's ``on`` and a gate's ``robustness.on`` are field names, never
    ``True``. Values keep their YAML meaning (``enabled: yes`` is true)."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, yaml.MappingNode):
            for key, value in current.value:
                if isinstance(key, yaml.ScalarNode) and key.tag == _BOOL_TAG and not key.style:
                    key.tag = _STR_TAG
                stack.append(value)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)


def _document(data: Any, node: yaml.Node, source: str) -> tuple[Document | None, Problem | None]:
    def problem(loc: Loc, message: str) -> tuple[None, Problem]:
        return None, Problem(source, line_of(node, loc), field_path(loc), message)

    if not isinstance(data, Mapping):
        return problem((), "a document must be a mapping with apiVersion, kind, metadata, spec")
    unknown = sorted(str(k) for k in data if k not in ("apiVersion", "kind", "metadata", "spec"))
    if unknown:
        return problem(
            (unknown[0],), "unknown field; a document has only apiVersion, kind, metadata, spec"
        )
    version = data.get("apiVersion")
    if version != API_VERSION:
        what = "is missing" if version is None else f"{version!r} is not supported"
        return problem(("apiVersion",), f"{what}; write apiVersion: {API_VERSION}")
    kind = data.get("kind")
    if not isinstance(kind, str) or not kind:
        return problem(("kind",), "is missing; write the kind, e.g. kind: Deployment")
    metadata = data.get("metadata")
    if not isinstance(metadata, Mapping):
        return problem(("metadata",), "is missing; write metadata: {name: NAME}")
    extra = sorted(str(k) for k in metadata if k != "name")
    if extra:
        return problem(("metadata", extra[0]), "unknown field; metadata holds only name")
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        return problem(("metadata", "name"), "is missing; give the object's name as a string")
    if "spec" not in data or data["spec"] is None:
        return problem(("spec",), f"is missing; write the {kind}'s settings under spec:")
    line = node.start_mark.line + 1
    return Document(kind, name, data["spec"], source, line, node), None


__all__ = [
    "API_VERSION",
    "Document",
    "DocumentsInvalid",
    "Loc",
    "Problem",
    "SpecError",
    "collect_files",
    "field_path",
    "line_of",
    "load_documents",
    "parse_documents",
]
