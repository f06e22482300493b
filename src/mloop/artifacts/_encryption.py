"""Envelope encryption of blobs: AES-256-GCM in segments, each data key wrapped by a KEK.

A stored encrypted blob is a header followed by segments::

    magic "\\x89MLOOPE\\n" | version (1 byte) | header length H (uint32)
    | H bytes: plaintext SHA-256 (32) | segment size S (uint32) | nonce prefix (7)
               | provider (uint8 length + ASCII) | key id (uint16 length + UTF-8)
               | wrapped data key (uint16 length + bytes)
    | segment 0 | segment 1 | … | final segment      (each: ≤ S bytes sealed + 16-byte tag)

Every segment but the last holds exactly S plaintext bytes. Segment ``i`` is sealed with
the nonce ``prefix ‖ i (uint32) ‖ last-flag (1 byte)`` — the STREAM construction of Hoang,
Reyhanitabar, Rogaway and Vizár, also used by Tink's streaming AEAD — so dropping,
reordering, duplicating or appending segments, or cutting the blob at a segment boundary,
fails authentication. Memory stays at about one segment however big the blob.

The additional authenticated data of every segment is the part of the header that frames
the segments (magic, version, S, nonce prefix). The key fields are left out on purpose:
re-wrapping a data key under a new KEK then rewrites only the header, and a wrapped key
swapped in from elsewhere cannot open the segments anyway.

The plaintext digest sits at a fixed offset in every version. It is what tells an envelope
from a plaintext blob that merely starts with the magic bytes: an object is read as an
envelope only when its header names the very digest it is stored under (a blob cannot
contain its own hash), so stores that mix plaintext and encrypted blobs read both. The
digest is already the object's key, so showing it leaks nothing, and the plaintext is
still hashed and checked after decryption.
"""

from __future__ import annotations

import hashlib
import io
import secrets
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Literal

from mloop.artifacts._kek import KEY_BYTES, KeyProvider
from mloop.errors import ConfigError, EncryptionKeyError, IntegrityError, InvalidInput

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

MAGIC = b"\x89MLOOPE\n"
VERSION = 1
_PREAMBLE = struct.Struct(">8sBI")
DIGEST_BYTES = 32
PREFIX_BYTES = _PREAMBLE.size + DIGEST_BYTES
NONCE_PREFIX_BYTES = 7
TAG_BYTES = 16
DEFAULT_SEGMENT_SIZE = 1 << 20
MIN_SEGMENT_SIZE = 16
MAX_SEGMENT_SIZE = 64 << 20
MAX_SEGMENTS = 1 << 32
_MAX_HEADER_BYTES = 1 << 16
_FRAMING = struct.Struct(">I7s")


class _Malformed(ValueError):
    """A header that claims to be an envelope but cannot be parsed."""


@dataclass(frozen=True)
class EnvelopeHeader:
    """What a reader needs before the first segment: framing, and how to get the data key."""

    digest: bytes
    segment_size: int
    nonce_prefix: bytes
    provider: str
    key_id: str
    wrapped_key: bytes

    def to_bytes(self) -> bytes:
        provider = self.provider.encode("ascii")
        key_id = self.key_id.encode()
        fields = b"".join(
            (
                self.digest,
                _FRAMING.pack(self.segment_size, self.nonce_prefix),
                struct.pack(">B", len(provider)),
                provider,
                struct.pack(">H", len(key_id)),
                key_id,
                struct.pack(">H", len(self.wrapped_key)),
                self.wrapped_key,
            )
        )
        return _PREAMBLE.pack(MAGIC, VERSION, len(fields)) + fields

    @classmethod
    def from_fields(cls, fields: bytes) -> EnvelopeHeader:
        """Parse the H bytes after the preamble (version 1); raise :class:`_Malformed`."""
        reader = _FieldReader(fields)
        digest = reader.take(DIGEST_BYTES)
        segment_size, nonce_prefix = _FRAMING.unpack(reader.take(_FRAMING.size))
        if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
            raise _Malformed(f"segment size {segment_size} is out of range")
        try:
            provider = reader.take(reader.uint(">B")).decode("ascii")
            key_id = reader.take(reader.uint(">H")).decode()
        except UnicodeDecodeError:
            raise _Malformed("the provider or key id is not text") from None
        wrapped_key = reader.take(reader.uint(">H"))
        if not reader.at_end():
            raise _Malformed("unexpected bytes after the wrapped key")
        return cls(digest, segment_size, nonce_prefix, provider, key_id, wrapped_key)

    def associated_data(self) -> bytes:
        return _PREAMBLE.pack(MAGIC, VERSION, 0) + _FRAMING.pack(
            self.segment_size, self.nonce_prefix
        )

    @property
    def kek(self) -> str:
        """The KEK as users see it in messages: ``key-id (provider)``."""
        return f"{self.key_id} (provider {self.provider!r})"


class _FieldReader:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def take(self, size: int) -> bytes:
        if self._at + size > len(self._data):
            raise _Malformed("the header ends early")
        chunk = self._data[self._at : self._at + size]
        self._at += size
        return chunk

    def uint(self, fmt: str) -> int:
        value: int = struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]
        return value

    def at_end(self) -> bool:
        return self._at == len(self._data)


def segment_nonce(prefix: bytes, index: int, final: bool) -> bytes:
    return prefix + index.to_bytes(4, "big") + (b"\x01" if final else b"\x00")


# -- writing ----------------------------------------------------------------------------------


def seal(
    chunks: Iterable[bytes],
    out: BinaryIO,
    provider: KeyProvider,
    *,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
) -> tuple[str, int]:
    """Encrypt everything ``chunks`` yields into ``out`` (seekable); return the plaintext's
    SHA-256 hex and size.

    The digest is only known at the end, so the header is written with zeros in its place
    and patched afterwards — the digest is not part of the authenticated data.
    """
    if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
        raise InvalidInput(
            f"segment size {segment_size} is out of range "
            f"({MIN_SEGMENT_SIZE}..{MAX_SEGMENT_SIZE} bytes)"
        )
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    data_key = AESGCM.generate_key(bit_length=8 * KEY_BYTES)
    header = EnvelopeHeader(
        digest=bytes(DIGEST_BYTES),
        segment_size=segment_size,
        nonce_prefix=secrets.token_bytes(NONCE_PREFIX_BYTES),
        provider=provider.name,
        key_id=provider.key_id,
        wrapped_key=provider.wrap(data_key),
    )
    start = out.tell()
    out.write(header.to_bytes())
    aead = AESGCM(data_key)
    aad = header.associated_data()
    hasher = hashlib.sha256()
    size = 0
    index = 0
    pending = bytearray()
    for chunk in chunks:
        hasher.update(chunk)
        size += len(chunk)
        rest = memoryview(chunk)
        while rest:
            if len(pending) == segment_size:
                # A full segment with more bytes still coming: it is not the last one.
                _check_index(index)
                nonce = segment_nonce(header.nonce_prefix, index, final=False)
                out.write(aead.encrypt(nonce, pending, aad))
                pending.clear()
                index += 1
            take = min(segment_size - len(pending), len(rest))
            pending += rest[:take]
            rest = rest[take:]
    _check_index(index)
    out.write(aead.encrypt(segment_nonce(header.nonce_prefix, index, final=True), pending, aad))
    end = out.tell()
    out.seek(start + _PREAMBLE.size)
    out.write(hasher.digest())
    out.seek(end)
    return hasher.hexdigest(), size


def _check_index(index: int) -> None:
    if index >= MAX_SEGMENTS:
        raise InvalidInput("the blob is too large to encrypt: it needs more than 2**32 segments")


# -- reading ----------------------------------------------------------------------------------


def read_header(raw: BinaryIO, digest: str, root: str) -> tuple[bytes, EnvelopeHeader | None]:
    """Read an envelope header from the start of ``raw``.

    Returns ``(consumed, header)``: ``header`` is ``None`` for a plaintext blob, and then
    ``consumed`` holds the bytes already read from it, to be replayed.
    """
    prefix = read_exact(raw, PREFIX_BYTES)
    if (
        len(prefix) < PREFIX_BYTES
        or prefix[: len(MAGIC)] != MAGIC
        or prefix[_PREAMBLE.size :] != bytes.fromhex(digest)
    ):
        return prefix, None
    _, version, length = _PREAMBLE.unpack(prefix[: _PREAMBLE.size])
    if version != VERSION:
        raise ConfigError(
            f"blob {digest} in {root} is encrypted in envelope format version {version}, "
            f"which this mloop does not read (it reads version {VERSION}); upgrade mloop "
            "(or, if no newer mloop wrote it, the blob is damaged)",
            details={"digest": digest, "root": root, "envelope_version": version},
        )
    if not DIGEST_BYTES <= length <= _MAX_HEADER_BYTES:
        raise _damaged(digest, root, f"its header claims {length} bytes")
    fields = prefix[_PREAMBLE.size :] + read_exact(raw, length - DIGEST_BYTES)
    try:
        return b"", EnvelopeHeader.from_fields(fields)
    except _Malformed as exc:
        raise _damaged(digest, root, f"its header is malformed ({exc})") from None


def open_plaintext(
    raw: BinaryIO, digest: str, provider: KeyProvider | None, root: str
) -> io.RawIOBase:
    """The content of a stored object: decrypted if it is an envelope, else as stored."""
    consumed, header = read_header(raw, digest, root)
    if header is None:
        return _Replay(consumed, raw)
    data_key = unwrap_data_key(header, provider, digest, root)
    return _DecryptingReader(raw, header, data_key, digest, root)


def unwrap_data_key(
    header: EnvelopeHeader, provider: KeyProvider | None, digest: str, root: str
) -> bytes:
    details = {
        "digest": digest,
        "root": root,
        "expected_key_id": header.key_id,
        "expected_provider": header.provider,
    }
    if provider is None:
        raise EncryptionKeyError(
            f"blob {digest} in {root} is encrypted with key-encryption key {header.kek}, but "
            "no key-encryption key is configured; set MLOOP_KEK_FILE to the KEK file with "
            f"id {header.key_id}",
            details=details,
        )
    details["configured_key_id"] = provider.key_id
    if provider.name != header.provider or not provider.can_unwrap(header.key_id):
        raise EncryptionKeyError(
            f"blob {digest} in {root} is encrypted with key-encryption key {header.kek}, but "
            f"the configured one is {provider.describe()}; point MLOOP_KEK_FILE at the KEK "
            f"with id {header.key_id}",
            details=details,
        )
    try:
        data_key = provider.unwrap(header.wrapped_key, header.key_id)
    except EncryptionKeyError as exc:
        raise EncryptionKeyError(
            f"blob {digest} in {root}: {exc.message}", details=details
        ) from exc
    except IntegrityError as exc:
        raise _damaged(digest, root, exc.message) from exc
    if len(data_key) != KEY_BYTES:
        raise _damaged(digest, root, "its data key unwraps to the wrong length")
    return data_key


def plaintext_size(raw: BinaryIO, digest: str, stored_size: int, root: str) -> int:
    """The content size of a stored object of ``stored_size`` bytes, from its header alone."""
    _, header = read_header(raw, digest, root)
    if header is None:
        return stored_size
    body = stored_size - len(header.to_bytes())
    if body < TAG_BYTES:
        raise _damaged(digest, root, "it ends before its first segment")
    segments = -(-body // (header.segment_size + TAG_BYTES))
    return body - TAG_BYTES * segments


def read_exact(stream: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes, fewer only at the end: object-store readers may return less."""
    parts = []
    left = size
    while left > 0:
        chunk = stream.read(left)
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _damaged(digest: str, root: str, reason: str) -> IntegrityError:
    return IntegrityError(
        f"encrypted blob {digest} in {root} is damaged: {reason}. It was changed after it was "
        "written; restore it from a backup, or delete it and log the artifact again",
        details={"digest": digest, "root": root},
    )


class _Replay(io.RawIOBase):
    """Gives back bytes already read from ``inner``, then the rest of ``inner``."""

    def __init__(self, consumed: bytes, inner: BinaryIO) -> None:
        self._consumed = consumed
        self._inner = inner

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        if self._consumed:
            n = min(len(view), len(self._consumed))
            view[:n] = self._consumed[:n]
            self._consumed = self._consumed[n:]
            return n
        chunk = self._inner.read(len(view))
        view[: len(chunk)] = chunk
        return len(chunk)

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
        super().close()


class _DecryptingReader(io.RawIOBase):
    """Decrypts one segment at a time; a segment is the final one exactly when nothing
    follows it, which one byte of look-ahead tells. One buffer of a sealed segment plus
    one byte is reused for every segment, so memory does not depend on the blob's size."""

    def __init__(
        self, inner: BinaryIO, header: EnvelopeHeader, data_key: bytes, digest: str, root: str
    ) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._inner = inner
        self._header = header
        self._aead = AESGCM(data_key)
        self._aad = header.associated_data()
        self._sealed_size = header.segment_size + TAG_BYTES
        self._digest = digest
        self._root = root
        self._index = 0
        self._buffer: bytearray | None = None
        self._filled = 0
        self._segment = b""
        self._offset = 0
        self._finished = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        chunk = self.read(len(view))
        view[: len(chunk)] = chunk
        return len(chunk)

    def read(self, size: int | None = -1) -> bytes:
        """Slices of the decrypted segment, without the scratch buffer ``RawIOBase`` uses."""
        if size is None or size < 0:
            return self.readall()
        while self._offset >= len(self._segment) and not self._finished:
            self._segment = self._next_segment()
            self._offset = 0
        if self._offset == 0 and size >= len(self._segment):
            chunk = self._segment
        else:
            chunk = self._segment[self._offset : self._offset + size]
        self._offset += len(chunk)
        return chunk

    def readall(self) -> bytes:
        parts = []
        while chunk := self.read(DEFAULT_SEGMENT_SIZE):
            parts.append(chunk)
        return b"".join(parts)

    def _next_segment(self) -> bytes:
        if self._buffer is None:
            self._buffer = bytearray(self._sealed_size + 1)
        buffer = self._buffer
        if self._filled:  # the look-ahead byte of the previous round opens this segment
            buffer[0] = buffer[self._sealed_size]
        self._filled = _fill(self._inner, buffer, self._filled)
        final = self._filled <= self._sealed_size
        length = min(self._filled, self._sealed_size)
        self._filled = 0 if final else 1
        if length < TAG_BYTES:
            raise _damaged(self._digest, self._root, f"segment {self._index} is cut short")
        if self._index >= MAX_SEGMENTS:
            raise _damaged(self._digest, self._root, "it has more than 2**32 segments")
        from cryptography.exceptions import InvalidTag

        nonce = segment_nonce(self._header.nonce_prefix, self._index, final)
        try:
            with memoryview(buffer) as view, view[:length] as sealed:
                plain = self._aead.decrypt(nonce, sealed, self._aad)
        except InvalidTag:
            raise _damaged(
                self._digest,
                self._root,
                f"segment {self._index} fails authentication (its bytes were changed, or "
                "segments were cut off, reordered or added)",
            ) from None
        self._index += 1
        self._finished = final
        return plain

    def close(self) -> None:
        if not self.closed:
            self._inner.close()
        super().close()


def _fill(stream: BinaryIO, buffer: bytearray, filled: int) -> int:
    """Read into ``buffer[filled:]`` until it is full or the stream ends; the new fill."""
    readinto = getattr(stream, "readinto", None)
    with memoryview(buffer) as view:
        while filled < len(buffer):
            if readinto is not None:
                n = readinto(view[filled:])
            else:
                chunk = stream.read(len(buffer) - filled)
                n = len(chunk)
                view[filled : filled + n] = chunk
            if not n:
                break
            filled += n
    return filled


def rewrap(
    raw: BinaryIO,
    digest: str,
    unwrapping: KeyProvider,
    new: KeyProvider,
    out: BinaryIO,
    root: str,
) -> Literal["plaintext", "current", "rewrapped"]:
    """Copy the envelope in ``raw`` to ``out`` with its data key wrapped by ``new``'s KEK.

    The segments are copied byte for byte — re-wrapping never decrypts content. Nothing is
    written when ``raw`` holds a plaintext blob or already uses ``new``'s key.
    """
    _, header = read_header(raw, digest, root)
    if header is None:
        return "plaintext"
    if header.provider == new.name and header.key_id == new.key_id:
        return "current"
    data_key = unwrap_data_key(header, unwrapping, digest, root)
    fresh = EnvelopeHeader(
        digest=header.digest,
        segment_size=header.segment_size,
        nonce_prefix=header.nonce_prefix,
        provider=new.name,
        key_id=new.key_id,
        wrapped_key=new.wrap(data_key),
    )
    out.write(fresh.to_bytes())
    while chunk := raw.read(DEFAULT_SEGMENT_SIZE):
        out.write(chunk)
    return "rewrapped"
