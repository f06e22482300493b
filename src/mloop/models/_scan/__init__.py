"""The pickle scanner (ATLAS M0011/M0016): what a model file would import or call, found by
walking its pickle opcodes without running them, in every format pickles hide in."""

from __future__ import annotations

from mloop.models._scan._report import Finding, ScannedFile, ScanReport
from mloop.models._scan._scanner import scan_path

__all__ = ["Finding", "ScanReport", "ScannedFile", "scan_path"]
