"""Content-addressed artifact storage: a local folder, S3, or memory, chosen by URI.

Every blob is stored once under the SHA-256 of its bytes, written atomically, and
verified on every read. Run artifacts, model packages and dataset files all live here;
the metadata store keeps the mapping from names to digests. With a key-encryption key
(``MLOOP_KEK_FILE``) new blobs are stored encrypted; key providers for a KMS plug in
through :func:`register_key_provider`.
"""

from mloop.artifacts._kek import (
    FileKeyProvider,
    KeyProvider,
    generate_kek_file,
    open_key_provider,
    register_key_provider,
)
from mloop.artifacts._kek_rotation import RewrapReport, rewrap_store
from mloop.artifacts._paths import iter_local_files, safe_relpath
from mloop.artifacts._store import (
    ArtifactStore,
    BlobInfo,
    artifact_store_for,
    key_provider_from_settings,
    open_artifact_store,
)

__all__ = [
    "ArtifactStore",
    "BlobInfo",
    "FileKeyProvider",
    "KeyProvider",
    "RewrapReport",
    "artifact_store_for",
    "generate_kek_file",
    "iter_local_files",
    "key_provider_from_settings",
    "open_artifact_store",
    "open_key_provider",
    "register_key_provider",
    "rewrap_store",
    "safe_relpath",
]
