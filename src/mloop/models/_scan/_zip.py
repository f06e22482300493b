"""Zip members as PyTorch's reader sees them, not as :mod:`zipfile` does.

``torch.load`` reads zips with miniz, which ignores CRCs and the "encrypted" and other
flag bits, and finds members through the central directory; :mod:`zipfile` refuses
some of those archives, and scanners built on it skipped the members torch then loaded
(picklescan advisories GHSA-w8jq-xcqf-f792 and relatives). This reader lists members from
both the central directory *and* the chain of local headers from the start of the file,
reads each member's bytes by the sizes recorded for it, ignores CRCs and flags, and lets
every member be scanned by content — whatever its name, and whether the names in the two
places agree or not.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

_LOCAL = b"PK\x03\x04"
_CENTRAL = b"PK\x01\x02"
_END = b"PK\x05\x06"
_END64_LOCATOR = b"PK\x06\x07"
_END64 = b"PK\x06\x06"
_MAX_MEMBERS = 1_000_000


class ZipError(ValueError):
    """The archive's structure cannot be read."""


@dataclass
class Member:
    """One member: where its (possibly compressed) bytes are and how to read them."""

    header_offset: int
    names: tuple[str, ...]
    data_offset: int
    compressed_size: int
    method: int
    flags: int

    @property
    def encrypted(self) -> bool:
        return bool(self.flags & 0x1)


def members(file: BinaryIO, size: int) -> list[Member]:
    """Every member reachable from the central directory or the local-header chain."""
    found: dict[int, Member] = {}
    central = _central_directory(file, size)
    for offset, name, compressed_size in central:
        member = _local_member(file, size, offset, compressed_size)
        if member is not None:
            if name not in member.names:
                member.names = (*member.names, name)
            found[offset] = member
    for member in _local_chain(file, size):
        found.setdefault(member.header_offset, member)
    if not found and size > 22:
        raise ZipError("no member can be located (damaged local headers and directory)")
    return sorted(found.values(), key=lambda m: m.header_offset)


def _local_member(
    file: BinaryIO, size: int, offset: int, compressed_size: int | None
) -> Member | None:
    file.seek(offset)
    header = file.read(30)
    if len(header) < 30 or header[:4] != _LOCAL:
        return None
    flags, method = struct.unpack_from("<HH", header, 6)
    local_size, _, name_len, extra_len = struct.unpack_from("<IIHH", header, 18)
    name = _decode_name(file.read(name_len), flags)
    extra = file.read(extra_len)
    if local_size == 0xFFFFFFFF:
        local_size = _zip64_size(extra, local_size)
    data_offset = offset + 30 + name_len + extra_len
    chosen = compressed_size if compressed_size is not None else local_size
    if flags & 0x8 and compressed_size is None and local_size == 0:
        return None  # sizes only in a data descriptor: the central directory must say
    if data_offset + chosen > size:
        raise ZipError(f"member {name!r} runs past the end of the archive")
    return Member(offset, (name,), data_offset, chosen, method, flags)


def _local_chain(file: BinaryIO, size: int) -> list[Member]:
    chain: list[Member] = []
    offset = 0
    while offset + 30 <= size and len(chain) < _MAX_MEMBERS:
        try:
            member = _local_member(file, size, offset, None)
        except ZipError:
            break
        if member is None:
            break
        chain.append(member)
        offset = member.data_offset + member.compressed_size
        if member.flags & 0x8:  # skip the data descriptor (with or without its signature)
            file.seek(offset)
            offset += 16 if file.read(4) == b"PK\x07\x08" else 12
    return chain


def _central_directory(file: BinaryIO, size: int) -> list[tuple[int, str, int]]:
    tail_size = min(size, 65536 + 22)
    file.seek(size - tail_size)
    tail = file.read(tail_size)
    at = tail.rfind(_END)
    if at < 0:
        return []
    if len(tail) - at < 22:
        return []
    count, cd_size, cd_offset = struct.unpack_from("<HII", tail, at + 10)
    locator = tail.rfind(_END64_LOCATOR, 0, at)
    if locator >= 0 and (count == 0xFFFF or cd_offset == 0xFFFFFFFF):
        (end64_offset,) = struct.unpack_from("<Q", tail, locator + 8)
        file.seek(end64_offset)
        record = file.read(56)
        if record[:4] == _END64:
            count, cd_size, cd_offset = struct.unpack_from("<QQQ", record, 32)
    if cd_offset + cd_size > size or count > _MAX_MEMBERS:
        raise ZipError("the central directory lies outside the archive")
    file.seek(cd_offset)
    directory = file.read(cd_size)
    entries: list[tuple[int, str, int]] = []
    position = 0
    while position + 46 <= len(directory) and directory[position : position + 4] == _CENTRAL:
        flags = struct.unpack_from("<H", directory, position + 8)[0]
        compressed_size, uncompressed_size = struct.unpack_from("<II", directory, position + 20)
        name_len, extra_len, comment_len = struct.unpack_from("<HHH", directory, position + 28)
        offset = struct.unpack_from("<I", directory, position + 42)[0]
        name = _decode_name(directory[position + 46 : position + 46 + name_len], flags)
        extra = directory[position + 46 + name_len : position + 46 + name_len + extra_len]
        if 0xFFFFFFFF in {compressed_size, uncompressed_size, offset}:
            compressed_size, offset = _zip64_central(
                extra, uncompressed_size, compressed_size, offset
            )
        entries.append((offset, name, compressed_size))
        position += 46 + name_len + extra_len + comment_len
    return entries


def _zip64_size(extra: bytes, fallback: int) -> int:
    for tag, data in _extra_fields(extra):
        if tag == 0x0001 and len(data) >= 16:
            return int(struct.unpack_from("<Q", data, 8)[0])
    return fallback


def _zip64_central(
    extra: bytes, uncompressed: int, compressed: int, offset: int
) -> tuple[int, int]:
    """The zip64 extra field lists, in order, only the sizes set to 0xFFFFFFFF."""
    for tag, data in _extra_fields(extra):
        if tag != 0x0001:
            continue
        fields = iter(struct.unpack_from("<Q", data, i)[0] for i in range(0, len(data) - 7, 8))
        if uncompressed == 0xFFFFFFFF:
            next(fields, None)
        if compressed == 0xFFFFFFFF:
            compressed = next(fields, compressed)
        if offset == 0xFFFFFFFF:
            offset = next(fields, offset)
    return compressed, offset


def _extra_fields(extra: bytes) -> list[tuple[int, bytes]]:
    fields = []
    position = 0
    while position + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, position)
        fields.append((tag, extra[position + 4 : position + 4 + length]))
        position += 4 + length
    return fields


def _decode_name(raw: bytes, flags: int) -> str:
    return raw.decode("utf-8" if flags & 0x800 else "cp437", "replace")


def torch_storage_members(found: list[Member]) -> set[int]:
    """Header offsets of the raw tensor-storage members of a PyTorch zip
    (``<root>/data/<key>`` next to ``<root>/data.pkl``): torch reads them as bytes, never
    as pickles. A member counts only when every name it goes by has that shape."""
    roots = {
        name[: -len("/data.pkl")]
        for member in found
        for name in member.names
        if name.endswith("/data.pkl") and name.count("/") == 1
    }
    storages = set()
    for member in found:
        if member.names and all(
            name.count("/") == 2
            and name.split("/")[0] in roots
            and name.split("/")[1] == "data"
            and name.split("/")[2] != ""
            for name in member.names
        ):
            storages.add(member.header_offset)
    return storages
