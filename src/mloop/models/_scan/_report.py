"""What a scan found: findings (each a reason the file is unsafe) and the files it read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

GLOBAL = "global"
"""A global off the allow-list would be imported (and maybe called)."""
CALL = "call"
"""Something that is not an importable name would be called (e.g. a call's result)."""
BUILD = "build"
"""``BUILD`` would set attributes on an imported class, function or module."""
UNRESOLVED = "unresolved"
"""A ``STACK_GLOBAL`` whose module or name the scanner cannot know without running it."""
EXTENSION = "extension"
"""An ``EXT1/2/4`` code, which imports whatever the copyreg extension registry says."""
PARSE_ERROR = "parse-error"
"""Content that looks like a pickle (or a format carrying one) does not parse: rejected."""
UNSUPPORTED = "unsupported"
"""Content the scanner cannot open (encrypted, unknown compression, missing codec)."""

_MAX_GLOBALS_LISTED = 10_000


@dataclass(frozen=True)
class Finding:
    """One reason a file is unsafe. ``file`` names archive members as
    ``archive.zip!member`` (nested: ``outer.zip!inner.zip!data.pkl``)."""

    file: str
    kind: str
    reason: str
    module: str | None = None
    name: str | None = None
    offset: int | None = None
    count: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "kind": self.kind,
            "module": self.module,
            "name": self.name,
            "reason": self.reason,
            "offset": self.offset,
            "count": self.count,
        }


@dataclass
class ScannedFile:
    """A file or member the scan read, the format it was recognized as (by content), and
    the globals it references (allowed or not), as ``module.name``."""

    file: str
    format: str
    globals: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "format": self.format, "globals": self.globals}


@dataclass
class ScanReport:
    """The outcome of :func:`~mloop.models.scan_path`; ``safe`` means no finding at all."""

    path: str
    findings: list[Finding]
    files: list[ScannedFile]

    @property
    def safe(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "safe": self.safe,
            "findings": [finding.to_dict() for finding in self.findings],
            "files": [scanned.to_dict() for scanned in self.files],
        }


class FileFindings:
    """Collects one file's findings, merging repeats (a pickle may call ``os.system`` a
    million times; the report says so once, with the count and the first offset)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.format = "unknown"
        self._findings: dict[tuple[str, str | None, str | None, str], list[int | None]] = {}
        self._globals: dict[str, None] = {}

    def add(
        self,
        kind: str,
        reason: str,
        *,
        module: str | None = None,
        name: str | None = None,
        offset: int | None = None,
    ) -> None:
        key = (kind, module, name, reason)
        seen = self._findings.get(key)
        if seen is None:
            self._findings[key] = [offset, 1]
        else:
            seen[1] = (seen[1] or 0) + 1

    def saw_global(self, module: str, name: str) -> None:
        if len(self._globals) < _MAX_GLOBALS_LISTED:
            self._globals.setdefault(f"{module}.{name}", None)

    @property
    def has_findings(self) -> bool:
        return bool(self._findings)

    def findings(self) -> list[Finding]:
        return [
            Finding(self.label, kind, reason, module, name, offset, count or 1)
            for (kind, module, name, reason), (offset, count) in self._findings.items()
        ]

    def scanned(self) -> ScannedFile:
        return ScannedFile(self.label, self.format, list(self._globals))
