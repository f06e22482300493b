"""Trust policy at load time (placeholder until signing lands)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def enforce(package_dir: Path, manifest: Mapping[str, Any], registered_model: str | None) -> None:
    """Raise :class:`~mloop.errors.UntrustedSignature` when the trust policy of
    ``registered_model`` requires a signature that ``package_dir`` does not carry."""
    del package_dir, manifest, registered_model
