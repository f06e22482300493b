"""Model packages: safe formats, signatures, digests, scanning, signing.

A package is a folder: ``mloop-model.json`` (the manifest) and the model files, each file's
SHA-256 recorded in the manifest and checked on every load.
"""

from __future__ import annotations

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
