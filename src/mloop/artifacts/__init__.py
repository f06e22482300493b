"""Content-addressed artifact storage: a local folder, S3, or memory, chosen by URI.

Every blob is stored once under the SHA-256 of its bytes, written atomically, and
verified on every read. Run artifacts, model packages and dataset files all live here;
the metadata store keeps the mapping from names to digests.
"""

from mloop.artifacts._paths import iter_local_files, safe_relpath
from mloop.artifacts._store import ArtifactStore, BlobInfo, open_artifact_store

__all__ = [
    "ArtifactStore",
    "BlobInfo",
    "iter_local_files",
    "open_artifact_store",
    "safe_relpath",
]
