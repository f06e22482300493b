"""Model packages: safe formats, signatures, digests, scanning, signing.

A package is a folder: ``mloop-model.json`` (the manifest) and the model files, each file's
SHA-256 recorded in the manifest and checked on every load.
"""

from __future__ import annotations

from mloop.models._scan import Finding, ScanReport, scan_path
from mloop.models._signing import (
    SignatureInfo,
    generate_signing_key,
    sign_package,
    verify_signature,
)
from mloop.models._unpickler import restricted_load

__all__: list[str] = [
    "Finding",
    "ScanReport",
    "SignatureInfo",
    "generate_signing_key",
    "restricted_load",
    "scan_path",
    "sign_package",
    "verify_signature",
]
