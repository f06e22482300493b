"""Which format a content is, from its first bytes (never from a file name).

The signatures are the ones the loaders themselves test: ``torch.load`` and ``numpy.load``
look for a zip local header, ``joblib.load`` for its compressors' prefixes, ``numpy.load``
for the ``.npy`` magic. Anything else is handed to the opcode walk, which decides whether
it is a pickle (see :mod:`._scanner`).
"""

from __future__ import annotations

HEAD_SIZE = 512

ZIP = "zip"
SEVEN_ZIP = "7z"
TAR = "tar"
NPY = "npy"
JOBLIB_ZFILE = "joblib-zfile"
PICKLE = "pickle"
COMPRESSED = ("gzip", "bz2", "xz", "lzma", "zlib", "lz4", "zstd")

_ZLIB_SECOND_BYTES = {0x01, 0x5E, 0x9C, 0xDA}


def sniff(head: bytes) -> str:
    """The format of a content whose first bytes (up to :data:`HEAD_SIZE`) are ``head``."""
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return ZIP
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return SEVEN_ZIP
    if head.startswith(b"\x93NUMPY"):
        return NPY
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh") and head[4:10] in {b"1AY&SY", b"\x17rE8P\x90"}:
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"]\x00\x00"):
        return "lzma"
    if len(head) >= 2 and head[0] == 0x78 and head[1] in _ZLIB_SECOND_BYTES:
        return "zlib"
    if head.startswith(b"\x04\x22\x4d\x18"):
        return "lz4"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    if head.startswith(b"ZF") and len(head) > 21:
        return JOBLIB_ZFILE
    if head[257:262] == b"ustar":
        return TAR
    return PICKLE


def starts_like_a_pickle(head: bytes) -> bool:
    """A ``PROTO`` opcode first: protocol 2+ pickles always begin so, nothing else does by
    accident often enough to matter; such content must parse or is rejected."""
    return len(head) >= 2 and head[0] == 0x80 and head[1] <= 5
