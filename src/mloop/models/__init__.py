"""Model packages: safe formats, signatures, digests, scanning, signing.

A package is a folder: ``mloop-model.json`` (the manifest) and the model files, each file's
SHA-256 recorded in the manifest and checked on every load.
"""

from __future__ import annotations

__all__: list[str] = []
