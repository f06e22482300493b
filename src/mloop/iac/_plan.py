"""`mloop apply`: check every document, compare with what is live, then change only what
differs.

Applying is two phases. First every document is read and checked — YAML, the document
shape, the kind's own validation, checks against live state (model versions exist and are
active) and the caller's role — and any problem stops everything with all problems
listed by file, line and field: nothing is applied from a set with one bad document.
Then each object that differs from its live state is stored through its owner's function,
in kind order (gates and alert rules before the triggers that name them); an unchanged
object is not touched, so applying the same files twice changes nothing the second time
(no new deployment revision, no audit entry).

Objects live in different tables owned by different parts, so the second phase is not one
transaction: if a write fails there (someone else changed the object meanwhile, the store
went away) the message says how many were applied, and applying again is safe.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from mloop.errors import InvalidInput, MloopError
from mloop.iac._documents import Document, DocumentsInvalid, Problem, SpecError, load_documents
from mloop.iac._kinds import Kind, kinds
from mloop.registry._db import Actor

Action = Literal["create", "update", "unchanged"]
ACTIONS: tuple[Action, ...] = ("create", "update", "unchanged")


@dataclass(frozen=True)
class FieldChange:
    """One field that differs: ``before`` is None when it is added, ``after`` when removed."""

    path: str
    before: Any
    after: Any
    change: Literal["added", "removed", "changed"]


@dataclass(frozen=True)
class Change:
    """What applying one document does to its object."""

    kind: str
    name: str
    action: Action
    source: str
    line: int
    before: dict[str, Any] | None
    after: dict[str, Any]
    desired: Any = field(default=None, repr=False, compare=False)
    live: Any = field(default=None, repr=False, compare=False)

    @property
    def changed(self) -> bool:
        return self.action != "unchanged"

    def fields(self) -> list[FieldChange]:
        """The fields that differ between the live and the desired spec, in order."""
        return list(_field_changes("", self.before or {}, self.after))

    def diff(self) -> str:
        """A unified diff of the live spec (``---``) and the desired one (``+++``) as YAML."""
        before = [] if self.before is None else _yaml(self.before).splitlines(keepends=True)
        after = _yaml(self.after).splitlines(keepends=True)
        label = f"{self.kind}/{self.name}"
        return "".join(
            difflib.unified_diff(before, after, f"live {label}", f"{self.source} {label}")
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "action": self.action,
            "file": self.source,
            "line": self.line,
            "fields": [
                {"path": f.path, "change": f.change, "before": f.before, "after": f.after}
                for f in self.fields()
            ],
        }


@dataclass(frozen=True)
class ApplyPlan:
    """Every document's change, in the order they are applied; ``applied`` is False for a
    dry run."""

    changes: tuple[Change, ...]
    applied: bool

    def count(self, action: Action) -> int:
        return sum(1 for c in self.changes if c.action == action)

    @property
    def summary(self) -> str:
        """``2 to create, 1 to update, 3 unchanged`` (``created``/``updated`` once applied)."""
        made = ("created", "updated") if self.applied else ("to create", "to update")
        return (
            f"{self.count('create')} {made[0]}, {self.count('update')} {made[1]}, "
            f"{self.count('unchanged')} unchanged"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "counts": {a: self.count(a) for a in ACTIONS},
            "changes": [c.to_dict() for c in self.changes],
        }


Progress = Callable[[Change], None]


def plan(paths: str | Path | Iterable[str | Path]) -> ApplyPlan:
    """What :func:`apply` would do, changing nothing (``mloop apply --dry-run``); it needs
    no role, since it only reads."""
    return _plan(paths)


def apply(
    paths: str | Path | Iterable[str | Path],
    *,
    dry_run: bool = False,
    actor: Actor = None,
    progress: Progress | None = None,
) -> ApplyPlan:
    """Check every document in ``paths`` (files or folders), then make what is live match
    them; see the module doc. ``actor`` (a ``Principal`` or user name) is checked for the
    roles each change needs (before anything is written; unchanged objects need none) and
    named in the audit log; ``progress`` is called after each object is handled."""
    found = _plan(paths)
    if dry_run:
        return found
    for change in found.changes:  # every refusal before the first write
        if change.changed:
            kinds()[change.kind].authorize(change.name, actor)
    done = 0
    to_do = sum(1 for c in found.changes if c.changed)
    for change in found.changes:
        if change.changed:
            _apply_one(change, actor, done, to_do)
            done += 1
        if progress is not None:
            progress(change)
    return ApplyPlan(found.changes, applied=True)


def _apply_one(change: Change, actor: Actor, done: int, to_do: int) -> None:
    kind = kinds()[change.kind]
    try:
        kind.apply(
            change.name,
            change.desired,
            live=change.live,
            actor=actor,
            reason=f"mloop apply {change.source}",
        )
    except MloopError as exc:
        exc.message = (
            f"{change.source}:{change.line}: {change.kind} {change.name!r} could not be "
            f"applied ({done} of {to_do} changes were): {exc.message}; fix it and apply again "
            "(what is applied already stays unchanged)"
        )
        exc.args = (exc.message,)
        raise


def _plan(paths: str | Path | Iterable[str | Path]) -> ApplyPlan:
    given = [paths] if isinstance(paths, str | Path) else list(paths)
    if not given:
        raise InvalidInput("give at least one file or folder to apply (mloop apply -f PATH)")
    documents, problems = load_documents(given)
    if not documents and not problems:
        shown = ", ".join(str(p) for p in given)
        raise InvalidInput(
            f"no documents in {shown}; write YAML documents with apiVersion: mloop/v1, kind, "
            "metadata.name and spec (docs/configuration-as-code.md)"
        )
    known = kinds()
    parsed: list[tuple[Document, Kind, Any]] = []
    problems.extend(_duplicates(documents, known))
    for document in documents:
        kind = known.get(document.kind)
        if kind is None:
            problems.append(
                document.problem(
                    ("kind",),
                    f"unknown kind {document.kind!r}; use one of: {', '.join(known)}",
                    in_spec=False,
                )
            )
            continue
        reason = kind.unavailable()
        if reason is not None:
            problems.append(document.problem(("kind",), reason, in_spec=False))
            continue
        try:
            parsed.append((document, kind, kind.parse(document.name, document.spec)))
        except SpecError as exc:
            problems.extend(
                document.problem(loc, _yaml_hint(document.spec, loc, message))
                for loc, message in exc.located
            )
        except MloopError as exc:
            problems.append(document.problem((), exc.message))
    if problems:
        raise DocumentsInvalid(problems)
    changes = [_change(document, kind, desired, problems) for document, kind, desired in parsed]
    if problems:
        raise DocumentsInvalid(problems)
    order = {name: i for i, name in enumerate(known)}
    ordered = sorted(enumerate(changes), key=lambda item: (order[item[1].kind], item[0]))
    return ApplyPlan(tuple(change for _, change in ordered), applied=False)


def _change(document: Document, kind: Kind, desired: Any, problems: list[Problem]) -> Change:
    live = kind.get_live(document.name)
    if live is None:
        action: Action = "create"
    else:
        action = "unchanged" if kind.same(desired, live) else "update"
    if action != "unchanged":
        try:
            kind.check(document.name, desired, live)
        except SpecError as exc:
            problems.extend(document.problem(loc, message) for loc, message in exc.located)
    return Change(
        kind=kind.name,
        name=document.name,
        action=action,
        source=document.source,
        line=document.line,
        before=None if live is None else kind.dump(live),
        after=kind.dump(desired),
        desired=desired,
        live=live,
    )


def _duplicates(documents: list[Document], known: Mapping[str, Kind]) -> list[Problem]:
    seen: dict[tuple[str, str], Document] = {}
    problems = []
    for document in documents:
        kind = known.get(document.kind)
        key = (kind.store_namespace if kind else document.kind, document.name)
        first = seen.setdefault(key, document)
        if first is not document:
            problems.append(
                document.problem(
                    ("metadata", "name"),
                    f"{document.kind} {document.name!r} is declared again (first as "
                    f"{first.kind} at {first.source}:{first.line}); keep one",
                    in_spec=False,
                )
            )
    return problems


def _yaml_hint(spec: Any, loc: tuple[str | int, ...], message: str) -> str:
    """Explain a refused boolean that the author wrote as a word: YAML 1.1 reads ``on``,
    ``off``, ``yes`` and ``no`` as true/false, so ``auth: on`` arrives as ``True``."""
    value: Any = spec
    for part in loc:
        in_mapping = isinstance(value, Mapping) and part in value
        in_list = isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value)
        if not (in_mapping or in_list):
            return message
        value = value[part]
    if isinstance(value, bool) and "boolean" not in message:
        return (
            f"{message} (YAML read the value as {str(value).lower()}: on/off/yes/no are "
            'booleans, so quote the word, e.g. "on")'
        )
    return message


def _field_changes(prefix: str, before: Any, after: Any) -> Iterable[FieldChange]:
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        for key in list(before) + [k for k in after if k not in before]:
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in after:
                yield FieldChange(path, before[key], None, "removed")
            elif key not in before:
                yield FieldChange(path, None, after[key], "added")
            else:
                yield from _field_changes(path, before[key], after[key])
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for i, (b, a) in enumerate(zip(before, after, strict=True)):
            yield from _field_changes(f"{prefix}[{i}]", b, a)
    elif before != after:
        yield FieldChange(prefix, before, after, "changed")


def _yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)


__all__ = ["ACTIONS", "Action", "ApplyPlan", "Change", "FieldChange", "apply", "plan"]
