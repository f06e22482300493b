"""Model packages: safe formats, signatures, digests, scanning, signing.

A package is a folder: ``mloop-model.json`` (the manifest) and the model files, each file's
SHA-256 recorded in the manifest and checked on every load.

Names are imported on first use (PEP 562), so ``mloop models scan`` loads the scanner and
nothing else: not pydantic, the tracking stack or the signing library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mloop._lazy import lazy_attributes

if TYPE_CHECKING:
    from mloop.models._flavors import Flavor, Predictor, register_flavor
    from mloop.models._loaded import LoadedModel
    from mloop.models._loading import load_model
    from mloop.models._logging import ModelInfo, log_model
    from mloop.models._manifest import Manifest
    from mloop.models._package import save_model, verify_package
    from mloop.models._python_model import PythonModel
    from mloop.models._resolve import resolve_package
    from mloop.models._scan import Finding, ScanReport, scan_path
    from mloop.models._signature import ColumnSchema, ColumnSpec, ModelSignature, TensorSchema
    from mloop.models._signature_infer import infer_signature
    from mloop.models._signing import (
        SignatureInfo,
        generate_signing_key,
        sign_package,
        verify_signature,
    )
    from mloop.models._unpickler import restricted_load

# Public name -> the private module that defines it.
_LAZY: dict[str, str] = {
    "ColumnSchema": "mloop.models._signature",
    "ColumnSpec": "mloop.models._signature",
    "Finding": "mloop.models._scan",
    "Flavor": "mloop.models._flavors",
    "LoadedModel": "mloop.models._loaded",
    "Manifest": "mloop.models._manifest",
    "ModelInfo": "mloop.models._logging",
    "ModelSignature": "mloop.models._signature",
    "Predictor": "mloop.models._flavors",
    "PythonModel": "mloop.models._python_model",
    "ScanReport": "mloop.models._scan",
    "SignatureInfo": "mloop.models._signing",
    "TensorSchema": "mloop.models._signature",
    "generate_signing_key": "mloop.models._signing",
    "infer_signature": "mloop.models._signature_infer",
    "load_model": "mloop.models._loading",
    "log_model": "mloop.models._logging",
    "register_flavor": "mloop.models._flavors",
    "resolve_package": "mloop.models._resolve",
    "restricted_load": "mloop.models._unpickler",
    "save_model": "mloop.models._package",
    "scan_path": "mloop.models._scan",
    "sign_package": "mloop.models._signing",
    "verify_package": "mloop.models._package",
    "verify_signature": "mloop.models._signing",
}


__all__: list[str] = [
    "ColumnSchema",
    "ColumnSpec",
    "Finding",
    "Flavor",
    "LoadedModel",
    "Manifest",
    "ModelInfo",
    "ModelSignature",
    "Predictor",
    "PythonModel",
    "ScanReport",
    "SignatureInfo",
    "TensorSchema",
    "generate_signing_key",
    "infer_signature",
    "load_model",
    "log_model",
    "register_flavor",
    "resolve_package",
    "restricted_load",
    "save_model",
    "scan_path",
    "sign_package",
    "verify_package",
    "verify_signature",
]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
