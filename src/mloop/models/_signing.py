"""Signing model packages with the OpenSSF ``model_signing`` library (M0013, M0014).

The signature of package folder ``P`` is the Sigstore bundle ``P/mloop-model.sig``, exactly
what ``model_signing sign key P --signature P/mloop-model.sig`` writes: an in-toto statement
listing every file's digest, in a DSSE envelope, signed with an EC key (or a certificate).
Either tool verifies the other's signatures.

We drive the library's own hasher, signer and verifier rather than its ``Config.sign`` /
``Config.verify`` wrappers for one reason: those wrappers hide the manifest they build, and
mloop needs it — to refuse signing a package that no longer matches ``mloop-model.json``, to
name the file that changed, and to check a signature against digests a load has already
verified (see :func:`verify_signed_digests`) without reading the model a second time.
The files are hashed once, by the library's parallel hasher.

Certificate mode never falls back to the system trust store (the library's default when no
chain is given): the caller pins the organisation's CA and names the identities it accepts.

The work is split by job: keys and trust anchors (:mod:`._signing_keys`), signing
(:mod:`._signing_sign`), verifying (:mod:`._signing_verify`, certificate mode in
:mod:`._signing_certificate`) and what they share (:mod:`._signing_bundle`). This module
is the one the rest of mloop imports.
"""

from __future__ import annotations

from mloop.models._signing_bundle import (
    MANIFEST_FILE,
    SIGNATURE_FILE,
    SignatureInfo,
    SignatureMode,
)
from mloop.models._signing_keys import (
    SUPPORTED_CURVES,
    TrustAnchors,
    generate_signing_key,
    key_id,
    load_trusted_keys,
)
from mloop.models._signing_sign import sign_package
from mloop.models._signing_verify import (
    verify_signature,
    verify_signed_digests,
    verify_with_anchors,
)

__all__ = [
    "MANIFEST_FILE",
    "SIGNATURE_FILE",
    "SUPPORTED_CURVES",
    "SignatureInfo",
    "SignatureMode",
    "TrustAnchors",
    "generate_signing_key",
    "key_id",
    "load_trusted_keys",
    "sign_package",
    "verify_signature",
    "verify_signed_digests",
    "verify_with_anchors",
]
