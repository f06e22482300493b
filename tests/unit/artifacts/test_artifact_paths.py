"""Artifact paths from users, and folders walked for ``log_artifacts``."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from mloop.artifacts import iter_local_files, safe_relpath
from mloop.errors import InvalidInput, NotFound, UnsafePath

# -- safe_relpath -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_path", "expected"),
    [
        ("plots/loss.png", "plots/loss.png"),
        ("./plots/loss.png", "plots/loss.png"),
        ("plots//loss.png", "plots/loss.png"),
        ("plots/./loss.png", "plots/loss.png"),
        ("plots/", "plots"),
        ("a/b/../c", "a/c"),
        ("...", "..."),
        ("..hidden/x", "..hidden/x"),
        ("model.pkl", "model.pkl"),
        ("résumé/日本.txt", "résumé/日本.txt"),
    ],
)
def test_safe_relpath_normalizes(given_path: str, expected: str) -> None:
    assert safe_relpath(given_path) == expected


@pytest.mark.parametrize(
    ("given_path", "reason"),
    [
        ("", "empty"),
        (".", "root itself"),
        ("./", "root itself"),
        ("a/..", "root itself"),
        ("/etc/passwd", "absolute"),
        ("//server/share", "absolute"),
        ("C:/Windows", "absolute"),
        ("c:x", "absolute"),
        ("C:\\Windows", "backslash"),
        ("\\\\server\\share", "backslash"),
        ("plots\\loss.png", "backslash"),
        ("..", "climbs out"),
        ("../secret", "climbs out"),
        ("a/../../secret", "climbs out"),
        ("a\x00b", "NUL"),
    ],
)
def test_safe_relpath_refuses(given_path: str, reason: str) -> None:
    with pytest.raises(UnsafePath, match=reason):
        safe_relpath(given_path)


def test_unsafe_path_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        safe_relpath("../x")


_TRICKY = st.text(alphabet=st.sampled_from(["a", "b", ".", "/", "\\", ":", "C", "\x00", "é"]))
_SEGMENT = st.text(
    alphabet=st.characters(blacklist_characters="/\\\x00", blacklist_categories=["Cs"]),
    min_size=1,
).filter(lambda s: s not in (".", ".."))


@given(_TRICKY | st.text())
@example("a/../..")
@example("./.")
def test_safe_relpath_never_returns_an_escaping_path(path: str) -> None:
    try:
        result = safe_relpath(path)
    except UnsafePath:
        return
    segments = result.split("/")
    assert result
    assert "" not in segments
    assert "." not in segments
    assert ".." not in segments
    assert "\\" not in result
    assert "\x00" not in result
    assert not PurePosixPath(result).is_absolute()
    assert not PureWindowsPath(result).drive
    assert not PureWindowsPath(result).is_absolute()
    assert safe_relpath(result) == result


@given(st.lists(_SEGMENT, min_size=1, max_size=6), st.data())
def test_safe_relpath_keeps_clean_segments(segments: list[str], data: st.DataObject) -> None:
    clean = "/".join(segments)
    if not safe_relpath_accepts(clean):
        return
    noise = [data.draw(st.sampled_from(["", "./", "/"])) for _ in segments[1:]]
    noisy = segments[0] + "".join(f"/{n}{s}" for n, s in zip(noise, segments[1:], strict=True))

    assert safe_relpath(noisy) == clean


def safe_relpath_accepts(path: str) -> bool:
    try:
        safe_relpath(path)
    except UnsafePath:
        return False
    return True


# -- iter_local_files ---------------------------------------------------------------------


def _tree(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_iter_local_files_yields_sorted_relative_posix_paths(tmp_path: Path) -> None:
    root = tmp_path / "out"
    _tree(root, {"b.txt": b"", "a-c.txt": b"", "a/x/y.bin": b"", "a/b.txt": b"", ".hidden": b""})

    found = list(iter_local_files(root))

    assert [rel for rel, _ in found] == [".hidden", "a-c.txt", "a/b.txt", "a/x/y.bin", "b.txt"]
    assert all(path.is_absolute() and path == root / rel for rel, path in found)


def test_iter_local_files_empty_folder(tmp_path: Path) -> None:
    assert list(iter_local_files(tmp_path)) == []


def test_iter_local_files_follows_symlinks_inside_root(tmp_path: Path) -> None:
    root = tmp_path / "out"
    _tree(root, {"real/data.csv": b"1,2"})
    os.symlink(root / "real" / "data.csv", root / "link.csv")
    os.symlink(root / "real", root / "linked-dir")

    found = dict(iter_local_files(root))

    assert sorted(found) == ["link.csv", "real/data.csv"]
    assert found["link.csv"].read_bytes() == b"1,2"


def test_iter_local_files_refuses_symlink_escaping_root(tmp_path: Path) -> None:
    _tree(tmp_path, {"secret.txt": b"key", "out/ok.txt": b""})
    link = tmp_path / "out" / "sub" / "innocent.txt"
    link.parent.mkdir()
    os.symlink(tmp_path / "secret.txt", link)

    with pytest.raises(UnsafePath, match=r"innocent\.txt.*outside"):
        list(iter_local_files(tmp_path / "out"))


def test_iter_local_files_refuses_relative_symlink_escaping_root(tmp_path: Path) -> None:
    _tree(tmp_path, {"secret/a": b"", "out/ok.txt": b""})
    os.symlink("../secret", tmp_path / "out" / "escape")

    with pytest.raises(UnsafePath, match="escape"):
        list(iter_local_files(tmp_path / "out"))


def test_iter_local_files_refuses_broken_symlink(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    os.symlink(tmp_path / "out" / "gone", tmp_path / "out" / "dangling")

    with pytest.raises(InvalidInput, match="does not exist"):
        list(iter_local_files(tmp_path / "out"))


def test_iter_local_files_root_may_itself_be_a_symlink(tmp_path: Path) -> None:
    _tree(tmp_path, {"real/a.txt": b"a"})
    os.symlink(tmp_path / "real", tmp_path / "alias")

    assert [rel for rel, _ in iter_local_files(tmp_path / "alias")] == ["a.txt"]


def test_iter_local_files_missing_or_file_root(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        list(iter_local_files(tmp_path / "missing"))
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(InvalidInput, match="not a folder"):
        list(iter_local_files(tmp_path / "f"))
