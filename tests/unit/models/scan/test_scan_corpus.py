"""The public corpus of malicious and benign samples (../shared/corpus/pickles, outside the
repository): every malicious file is caught, no benign file is flagged. Files are only
scanned — never loaded, never copied."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from mloop.models import scan_path

CORPUS = Path(__file__).resolve().parents[4] / ".." / "shared" / "corpus" / "pickles"
MANIFEST = CORPUS / "MANIFEST.tsv"

pytestmark = pytest.mark.skipif(
    not MANIFEST.is_file(),
    reason=f"the public pickle corpus is not on this machine ({CORPUS.resolve()})",
)


def _rows() -> list[dict[str, str]]:
    with open(MANIFEST, newline="") as manifest:
        return list(csv.DictReader(manifest, delimiter="\t"))


def test_every_malicious_sample_is_caught_and_no_benign_one_flagged() -> None:
    rows = _rows()
    missed = []
    false_positives = []
    for row in rows:
        report = scan_path(CORPUS / row["file"])
        if row["expected"] == "malicious" and report.safe:
            missed.append(row["file"])
        if row["expected"] == "benign" and not report.safe:
            false_positives.append((row["file"], [f.reason for f in report.findings]))
    assert {row["expected"] for row in rows} == {"malicious", "benign"}
    assert missed == []
    assert false_positives == []
