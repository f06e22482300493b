"""Whatever lies in ``mloop-model.sig``, verification either refuses it with
UntrustedSignature or — when the edit left the signed content intact (a dropped key hint,
say) — vouches for exactly the files that were signed. Nothing else ever escapes."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mloop.errors import UntrustedSignature
from mloop.models import generate_signing_key, sign_package
from mloop.models._signing import TrustAnchors, verify_with_anchors

SIGNED_DIGEST = hashlib.sha256(b"weights").hexdigest()
REASONS = {"malformed", "invalid", "untrusted-key", "untrusted-certificate", "changed"}
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)
# every place in a bundle an attacker could put something unexpected
PATHS = [
    (),
    ("mediaType",),
    ("verificationMaterial",),
    ("verificationMaterial", "publicKey"),
    ("verificationMaterial", "publicKey", "hint"),
    ("dsseEnvelope",),
    ("dsseEnvelope", "payload"),
    ("dsseEnvelope", "payloadType"),
    ("dsseEnvelope", "signatures"),
]
PAYLOAD_PATHS = [
    ("_type",),
    ("subject",),
    ("predicateType",),
    ("predicate",),
    ("predicate", "serialization"),
    ("predicate", "serialization", "method"),
    ("predicate", "serialization", "ignore_paths"),
    ("predicate", "resources"),
]


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], TrustAnchors]:
    root = tmp_path_factory.mktemp("bundles")
    package = root / "package"
    package.mkdir()
    (package / "model.bin").write_bytes(b"weights")
    private_key, public_key = generate_signing_key(root / "keys")
    sign_package(package, private_key)
    bundle = json.loads((package / "mloop-model.sig").read_text())
    return package, bundle, TrustAnchors.load([public_key])


def _refused(package: Path, anchors: TrustAnchors) -> None:
    reason = None
    try:
        info = verify_with_anchors(package, anchors)
    except UntrustedSignature as refused:
        reason = refused.details["reason"]
    else:
        assert dict(info.digests) == {"model.bin": SIGNED_DIGEST}
    assert reason is None or reason in REASONS


def _replace(document: Any, path: tuple[str, ...], value: Any) -> Any:
    if not path:
        return value
    copy = dict(document)
    copy[path[0]] = _replace(document.get(path[0], {}), path[1:], value)
    return copy


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=200))
def test_arbitrary_bytes_are_refused(
    signed: tuple[Path, dict[str, Any], TrustAnchors], data: bytes
) -> None:
    package, _, anchors = signed
    (package / "mloop-model.sig").write_bytes(data)
    _refused(package, anchors)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=st.sampled_from(PATHS), value=JSON)
def test_bundles_with_a_field_replaced_are_refused(
    signed: tuple[Path, dict[str, Any], TrustAnchors], path: tuple[str, ...], value: Any
) -> None:
    package, bundle, anchors = signed
    (package / "mloop-model.sig").write_text(json.dumps(_replace(bundle, path, value)))
    _refused(package, anchors)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=st.sampled_from(PAYLOAD_PATHS), value=JSON)
def test_statements_with_a_field_replaced_are_refused(
    signed: tuple[Path, dict[str, Any], TrustAnchors], path: tuple[str, ...], value: Any
) -> None:
    """Even a statement the trusted key did sign must be well-formed; here the signature
    breaks first, which is the point: nothing unparsed gets past it."""
    package, bundle, anchors = signed
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    payload = base64.b64encode(json.dumps(_replace(statement, path, value)).encode()).decode()
    edited = _replace(bundle, ("dsseEnvelope", "payload"), payload)
    (package / "mloop-model.sig").write_text(json.dumps(edited))
    _refused(package, anchors)
