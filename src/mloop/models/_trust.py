"""Trust policies: which packages may load, and which versions may be promoted.

A registered model's trust policy (kept by the registry) can require a valid signature from
listed keys, and, for promotions, a clean scan. Loading checks the signature against the
digests the load has just verified, so a policy costs one signature check, not a second
pass over the model's bytes.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from mloop.errors import InvalidInput, UntrustedSignature
from mloop.models._signing import (
    MANIFEST_FILE,
    SIGNATURE_FILE,
    TrustAnchors,
    verify_signed_digests,
    verify_with_anchors,
)

_MAX_LISTED_FINDINGS = 5


class TrustPolicyLike(Protocol):
    """The parts of the registry's ``TrustPolicy`` that loading and promotion read."""

    @property
    def require_signature(self) -> bool: ...

    @property
    def trusted_keys(self) -> tuple[str, ...]: ...

    @property
    def require_clean_scan(self) -> bool: ...


def enforce(package_dir: Path, manifest: Mapping[str, Any], registered_model: str | None) -> None:
    """Raise :class:`~mloop.errors.UntrustedSignature` when the trust policy of
    ``registered_model`` requires a signature that ``package_dir`` does not carry.

    ``manifest`` is the package manifest the load has already checked every file against;
    its ``files`` digests (plus the manifest file's own) are what the signature must cover.
    """
    if registered_model is None:
        return
    from mloop.registry import get_trust_policy
    from mloop.registry._remote import remote_registry

    remote = remote_registry()  # through a tracking server, its registry keeps the policy
    policy = (remote.get_trust_policy if remote else get_trust_policy)(registered_model)
    if policy is None or not policy.require_signature:
        return
    anchors = _anchors(policy, registered_model)
    digests = _verified_digests(package_dir, manifest)
    try:
        if digests is None:
            verify_with_anchors(package_dir, anchors)
        else:
            verify_signed_digests(package_dir, anchors, digests)
    except UntrustedSignature as exc:
        raise UntrustedSignature(
            f"the trust policy of {registered_model!r} requires a signature from a trusted "
            f"key: {exc.message}",
            details={**exc.details, "registered_model": registered_model},
        ) from None


def promotion_problems(
    package_dir: Path, policy: TrustPolicyLike, *, verified_manifest: Any = None
) -> list[str]:
    """Why ``package_dir`` may not be promoted under ``policy``; empty when nothing stops it.

    The signature check reads every file, unless the caller passes ``verified_manifest``:
    the manifest ``verify_package`` has just checked every file against, whose digests the
    signature is then compared with instead.
    """
    problems: list[str] = []
    if policy.require_signature:
        if not policy.trusted_keys:
            problems.append("the trust policy requires a signature but lists no trusted keys")
        else:
            digests = (
                None
                if verified_manifest is None
                else _verified_digests(package_dir, verified_manifest)
            )
            try:
                anchors = TrustAnchors.load(list(policy.trusted_keys))
                if digests is None:
                    verify_with_anchors(package_dir, anchors)
                else:
                    verify_signed_digests(package_dir, anchors, digests)
            except (UntrustedSignature, InvalidInput) as exc:
                problems.append(f"signature: {exc.message}")
    if policy.require_clean_scan:
        problems.extend(_scan_problems(package_dir))
    return problems


def _scan_problems(package_dir: Path) -> list[str]:
    models = importlib.import_module("mloop.models")  # the scanner's public entry point
    report = models.scan_path(package_dir)
    if report.safe:
        return []
    findings = list(report.findings)
    listed = [
        f"scan: {finding.file}: {finding.reason}" for finding in findings[:_MAX_LISTED_FINDINGS]
    ]
    if len(findings) > _MAX_LISTED_FINDINGS:
        listed.append(f"scan: and {len(findings) - _MAX_LISTED_FINDINGS} more findings")
    return listed or ["scan: the package is not safe"]


def _anchors(policy: TrustPolicyLike, registered_model: str) -> TrustAnchors:
    if not policy.trusted_keys:
        raise UntrustedSignature(
            f"the trust policy of {registered_model!r} requires a signature but lists no "
            "trusted keys; add the publishers' public keys to the policy",
            details={"reason": "untrusted-key", "registered_model": registered_model},
        )
    try:
        return TrustAnchors.load(list(policy.trusted_keys))
    except InvalidInput as exc:  # fail closed: a policy nobody can satisfy refuses loads
        raise UntrustedSignature(
            f"the trust policy of {registered_model!r} lists a key mloop cannot verify "
            f"with ({exc.message}); replace it with the publisher's EC public key",
            details={"reason": "untrusted-key", "registered_model": registered_model},
        ) from None


def _verified_digests(package_dir: Path, manifest: Any) -> dict[str, str] | None:
    """Every file's digest as the load verified it: the manifest's ``files`` table and the
    manifest file itself (small, hashed here). None when the manifest has no such table,
    and the signature check then hashes the folder itself."""
    files = manifest.get("files") if isinstance(manifest, Mapping) else None
    if files is None:
        files = getattr(manifest, "files", None)
    if not isinstance(files, Mapping):
        return None
    digests = {str(path): str(digest) for path, digest in files.items()}
    digests.pop(SIGNATURE_FILE, None)
    manifest_bytes = (package_dir / MANIFEST_FILE).read_bytes()
    digests[MANIFEST_FILE] = hashlib.sha256(manifest_bytes).hexdigest()
    return digests
