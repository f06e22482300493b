"""Formats are recognized by content: archives, compressed joblib, .npy/.npz, PyTorch."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import pickle
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from scan_crafting import reduce_to, torch_legacy_stream, torch_legacy_tar, torch_zip

from conftest import refused, scan_bytes
from mloop.models import scan_path

EVIL = reduce_to("os", "system", "echo pwned", proto=4)


def zip_bytes(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_pickle_inside_a_zip_whatever_its_name(tmp_path: Path) -> None:
    report = scan_bytes(tmp_path, zip_bytes({"notes.txt": EVIL}), "model.pt")
    assert [(f.file, f.module) for f in report.findings] == [("model.pt!notes.txt", "os")]


def test_zip_in_zip(tmp_path: Path) -> None:
    inner = zip_bytes({"archive/data.pkl": EVIL}, zipfile.ZIP_STORED)
    report = scan_bytes(tmp_path, zip_bytes({"inner.zip": inner}), "outer.zip")
    assert [f.file for f in report.findings] == ["outer.zip!inner.zip!archive/data.pkl"]


@pytest.mark.parametrize("flag", [0x1, 0x20, 0x40])
def test_zip_flag_bits_and_bad_crcs_do_not_hide_a_member(tmp_path: Path, flag: int) -> None:
    data = bytearray(zip_bytes({"data.pkl": EVIL}, zipfile.ZIP_STORED))
    data[6] |= flag  # local header general-purpose flags
    central = data.rfind(b"PK\x01\x02")
    data[central + 8] |= flag
    data[14] ^= 0xFF  # break the CRC
    report = scan_bytes(tmp_path, bytes(data), "flagged.zip")
    assert ("global", "os", "system") in refused(report)


def test_zip_with_a_damaged_central_directory_is_read_from_local_headers(tmp_path: Path) -> None:
    data = bytearray(zip_bytes({"data.pkl": EVIL}, zipfile.ZIP_STORED))
    central = data.rfind(b"PK\x01\x02")
    data[central + 46 : central + 50] = b"\xff\xfe\xfd\xfc"
    assert ("global", "os", "system") in refused(scan_bytes(tmp_path, bytes(data), "cd.zip"))


def test_tar_and_compressed_tar(tmp_path: Path) -> None:
    for mode, name in (("w", "model.tar"), ("w:gz", "model.tgz"), ("w:xz", "model.txz")):
        path = tmp_path / name
        with tarfile.open(path, mode) as archive:
            info = tarfile.TarInfo("weights/model.pkl")
            info.size = len(EVIL)
            archive.addfile(info, io.BytesIO(EVIL))
        assert ("global", "os", "system") in refused(scan_path(path)), name


def test_7z_archive(tmp_path: Path) -> None:
    py7zr = pytest.importorskip("py7zr")
    path = tmp_path / "model.7z"
    with py7zr.SevenZipFile(path, "w") as archive:
        archive.writestr(EVIL, "data.pkl")
        archive.writestr(b'{"a": 1}', "config.json")
    report = scan_path(path)
    assert [f.file for f in report.findings] == ["model.7z!data.pkl"]


def test_an_archive_that_does_not_parse_is_rejected(tmp_path: Path) -> None:
    data = zip_bytes({"data.pkl": EVIL})
    report = scan_bytes(tmp_path, data[:40], "cut.zip")
    assert not report.safe
    gz = gzip.compress(pickle.dumps([1, 2], protocol=4))
    assert ("parse-error", None, None) in refused(scan_bytes(tmp_path, gz[:-12], "cut.gz"))


# -- joblib -------------------------------------------------------------------------------


COMPRESSIONS = [0, 3, ("gzip", 3), ("bz2", 3), ("xz", 3), ("lzma", 3)]


@pytest.mark.parametrize("compress", COMPRESSIONS)
def test_joblib_raw_array_bytes_between_opcodes_are_skipped(tmp_path: Path, compress: Any) -> None:
    data = {
        "weights": np.arange(10_000, dtype=np.float64).reshape(100, 100),
        "ids": np.array(["a", "bb", "ccc"]),
        "mixed": np.array([1, "x", None], dtype=object),
        "when": np.array(["2024-01-01"], dtype="M8[ns]"),
        "fortran": np.asfortranarray(np.ones((3, 4), dtype=np.int32)),
        "record": np.zeros(2, dtype=[("a", "f4"), ("b", "i8")]),
    }
    path = tmp_path / "arrays.joblib"
    joblib.dump(data, path, compress=compress)
    report = scan_path(path)
    assert report.safe, report.findings
    assert report.files[0].format.endswith("joblib")


@pytest.mark.parametrize("compress", COMPRESSIONS)
def test_joblib_payload_after_an_array_is_found(tmp_path: Path, compress: Any) -> None:
    import os

    from test_scan_tricks import Reduces

    path = tmp_path / "evil.joblib"
    payload = {"w": np.ones(1000), "obj": np.array([Reduces(os.system, "id")], dtype=object)}
    joblib.dump({**payload, "after": Reduces(eval, "1")}, path, compress=compress)
    found = refused(scan_path(path))
    assert ("global", "builtins", "eval") in found
    assert ("global", os.system.__module__, "system") in found


def test_array_bytes_that_look_like_opcodes_are_data(tmp_path: Path) -> None:
    fake = np.frombuffer(EVIL, dtype=np.uint8).copy()
    path = tmp_path / "bytes.joblib"
    joblib.dump({"blob": fake}, path)
    assert scan_path(path).safe


def test_joblib_old_zfile_prefix(tmp_path: Path) -> None:
    header = b"ZF" + hex(len(EVIL)).encode().ljust(19)
    report = scan_bytes(tmp_path, header + zlib.compress(EVIL), "old.pkl")
    assert ("global", "os", "system") in refused(report)


def test_each_compressor_is_detected_by_magic(tmp_path: Path) -> None:
    for name, data in {
        "a": gzip.compress(EVIL),
        "b": bz2.compress(EVIL),
        "c": lzma.compress(EVIL),
        "d": lzma.compress(EVIL, format=lzma.FORMAT_ALONE),
        "e": zlib.compress(EVIL),
    }.items():
        assert ("global", "os", "system") in refused(scan_bytes(tmp_path, data, name)), name


# -- numpy --------------------------------------------------------------------------------


def test_npy_with_plain_dtype_is_data_and_object_dtype_is_scanned(tmp_path: Path) -> None:
    import os

    from test_scan_tricks import Reduces

    np.save(tmp_path / "plain.npy", np.arange(100.0))
    np.save(tmp_path / "objects.npy", np.array([1, "a", None], dtype=object))
    np.save(tmp_path / "evil.npy", np.array([Reduces(os.system, "id")], dtype=object))
    assert scan_path(tmp_path / "plain.npy").safe
    assert scan_path(tmp_path / "objects.npy").safe
    assert not scan_path(tmp_path / "evil.npy").safe
    truncated = (tmp_path / "plain.npy").read_bytes()[:-8]
    assert ("parse-error", None, None) in refused(scan_bytes(tmp_path, truncated, "cut.npy"))


def test_npz_with_object_arrays(tmp_path: Path) -> None:
    from test_scan_tricks import Reduces

    np.savez(tmp_path / "ok.npz", a=np.arange(3), b=np.array(["x", None], dtype=object))
    np.savez_compressed(tmp_path / "evil.npz", a=np.array([Reduces(exec, "1")], dtype=object))
    assert scan_path(tmp_path / "ok.npz").safe
    assert ("global", "builtins", "exec") in refused(scan_path(tmp_path / "evil.npz"))


# -- PyTorch layouts (hand-written: torch is not installed) --------------------------------


def test_pytorch_zip_state_dict_is_safe_and_a_payload_is_not(tmp_path: Path) -> None:
    report = scan_path(torch_zip(tmp_path / "ok.pt"))
    assert report.safe, report.findings
    assert report.files[0].format == "pytorch-zip"
    assert "torch._utils._rebuild_tensor_v2" in report.files[1].globals
    evil = scan_path(torch_zip(tmp_path / "evil.pt", evil=True))
    assert ("global", "os", "system") in refused(evil)


def test_pytorch_legacy_stream(tmp_path: Path) -> None:
    report = scan_bytes(tmp_path, torch_legacy_stream(), "legacy.bin")
    assert report.safe, report.findings
    assert report.files[0].format == "pytorch-legacy"
    evil = scan_bytes(tmp_path, torch_legacy_stream(evil=True), "evil.bin")
    assert ("global", "os", "system") in refused(evil)
    short = scan_bytes(tmp_path, torch_legacy_stream()[:-3], "short.bin")
    assert ("parse-error", None, None) in refused(short)
    longer = scan_bytes(tmp_path, torch_legacy_stream() + EVIL, "longer.bin")
    assert not longer.safe


def test_pytorch_legacy_tar(tmp_path: Path) -> None:
    report = scan_path(torch_legacy_tar(tmp_path / "old.tar"))
    assert report.safe, report.findings
    assert report.files[0].format == "pytorch-legacy-tar"
    evil = scan_path(torch_legacy_tar(tmp_path / "evil.tar", evil=True))
    assert [(f.file, f.module) for f in evil.findings] == [("evil.tar!pickle", "os")]


def test_torch_storage_load_from_bytes_is_refused(tmp_path: Path) -> None:
    data = reduce_to("torch.storage", "_load_from_bytes", "x", proto=2)
    assert refused(scan_bytes(tmp_path, data)) == {("global", "torch.storage", "_load_from_bytes")}


def test_a_zip_and_a_pickle_at_once_is_read_both_ways(tmp_path: Path) -> None:
    polyglot = EVIL + zip_bytes({"a.txt": b"hello"})
    assert ("global", "os", "system") in refused(scan_bytes(tmp_path, polyglot, "p.pkl"))
    path = tmp_path / "t.tar"
    with tarfile.open(path, "w") as archive:
        info = tarfile.TarInfo("x")
        info.size = 1
        archive.addfile(info, io.BytesIO(b"x"))
    data = bytearray(path.read_bytes())
    data[: len(EVIL)] = EVIL  # a pickle in the tar header's name field
    assert ("global", "os", "system") in refused(scan_bytes(tmp_path, bytes(data), "p.tar"))
