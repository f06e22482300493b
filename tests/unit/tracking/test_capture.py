"""Automatic run capture against real git repositories, real packages and real clocks."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import random
import re
import shlex
import stat
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mloop.errors import InvalidInput
from mloop.tracking import _capture, _capture_git, _watch
from mloop.tracking._capture import (
    DIFF_ARTIFACT,
    LOCK_ARTIFACT,
    ResourceMeter,
    capture_start,
    redact_argv,
    reproduce_steps,
    seed_everything,
)
from mloop.tracking._capture_git import redact_url


@pytest.fixture(autouse=True)
def _fresh_caches(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Per-process caches would leak one test's repository into the next; git must not
    read the developer's config or find a repository above the temp folder."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    _capture._clear_caches()
    yield
    _capture._clear_caches()


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True, timeout=10
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "src").mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Test")
    git(root, "config", "user.email", "test@example.com")
    (root / "src" / "train.py").write_text("lr = 0.1\n")
    (root / "weights.bin").write_bytes(bytes(range(256)))
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "first")
    return root


def fake_tool(folder: Path, name: str, script: str) -> None:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


# -- git ---------------------------------------------------------------------------------------


def test_dirty_repo_records_commit_branch_and_an_appliable_diff(repo: Path, tmp_path: Path) -> None:
    (repo / "src" / "train.py").write_text("lr = 0.2\n")
    (repo / "weights.bin").write_bytes(bytes(reversed(range(256))))
    (repo / "notes.txt").write_text("untracked\n")

    captured = capture_start(argv=["src/train.py", "--lr", "0.2"], cwd=repo)

    tags = captured.tags
    assert tags["mloop.git.commit"] == git(repo, "rev-parse", "HEAD")
    assert tags["mloop.git.branch"] == "main"
    assert tags["mloop.git.dirty"] == "true"
    assert tags["mloop.git.untracked_count"] == "1"
    assert "mloop.git.remote" not in tags
    diff = captured.artifacts[DIFF_ARTIFACT]
    assert b"+lr = 0.2" in diff
    assert b"notes.txt" not in diff
    # The patch must recreate the working copy, binary change included.
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True, timeout=10)
    (clone / "git.diff").write_bytes(diff)
    git(clone, "apply", "git.diff")
    assert (clone / "src" / "train.py").read_text() == "lr = 0.2\n"
    assert (clone / "weights.bin").read_bytes() == bytes(reversed(range(256)))


def test_clean_repo_is_not_dirty_and_stores_no_diff(repo: Path) -> None:
    captured = capture_start(argv=["src/train.py"], cwd=repo)
    assert captured.tags["mloop.git.dirty"] == "false"
    assert captured.tags["mloop.git.untracked_count"] == "0"
    assert DIFF_ARTIFACT not in captured.artifacts


def test_outside_a_repository_there_are_no_git_tags(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    captured = capture_start(argv=["train.py"], cwd=plain)
    assert not [k for k in captured.tags if k.startswith("mloop.git.")]
    assert "mloop.source.repo_subdir" not in captured.tags
    assert captured.tags["mloop.source.entry_point"] == "train.py"
    assert DIFF_ARTIFACT not in captured.artifacts


def test_without_a_git_binary_capture_still_works(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "")
    captured = capture_start(argv=["src/train.py"], cwd=repo)
    assert "mloop.git.commit" not in captured.tags
    assert LOCK_ARTIFACT in captured.artifacts


def test_a_hanging_git_is_abandoned_after_the_timeout(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    fake_tool(bin_dir, "git", "exec sleep 5")
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(_capture_git, "GIT_TIMEOUT_SECONDS", 0.2)
    started = time.perf_counter()
    captured = capture_start(argv=["src/train.py"], cwd=repo)
    assert time.perf_counter() - started < 2
    assert "mloop.git.commit" not in captured.tags


def test_detached_head_has_a_commit_but_no_branch(repo: Path) -> None:
    git(repo, "checkout", "-q", "--detach")
    captured = capture_start(argv=["src/train.py"], cwd=repo)
    assert captured.tags["mloop.git.commit"] == git(repo, "rev-parse", "HEAD")
    assert "mloop.git.branch" not in captured.tags


def test_repository_without_commits_has_no_commit(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q", "-b", "main")
    captured = capture_start(argv=["x.py"], cwd=empty)
    assert "mloop.git.commit" not in captured.tags
    assert captured.tags["mloop.git.branch"] == "main"


def test_remote_credentials_are_never_stored(repo: Path) -> None:
    git(repo, "remote", "add", "origin", "https://user:secret@example.com/x.git")
    captured = capture_start(argv=["src/train.py"], cwd=repo)
    assert captured.tags["mloop.git.remote"] == "https://example.com/x.git"
    assert not [v for v in captured.tags.values() if "secret" in v]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://ghp_token@github.com/o/r.git", "https://github.com/o/r.git"),
        ("https://u:p@example.com:8443/r.git?x=token", "https://example.com:8443/r.git"),
        ("ssh://git:pw@host/r.git", "ssh://git@host/r.git"),
        ("ssh://git@host/r.git", "ssh://git@host/r.git"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("/srv/git/r.git", "/srv/git/r.git"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


@given(
    user=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=20),
    password=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-%", max_size=20),
    scheme=st.sampled_from(["http", "https", "ssh", "git+ssh", "ftp"]),
)
def test_redacted_urls_never_contain_the_password(user: str, password: str, scheme: str) -> None:
    secret = f"PW{password}"
    assert secret not in redact_url(f"{scheme}://{user}:{secret}@example.com/x.git")


@pytest.fixture(params=["inotify", "snapshot"])
def watch_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of noticing changes between runs; the snapshot trusts even fresh files here
    (the racy rule has its own test), and changes below alter sizes, not only times."""
    if request.param == "snapshot":
        monkeypatch.setattr(_capture_git, "USE_INOTIFY", False)
        monkeypatch.setattr(_watch, "RACY_SECONDS", 0.0)
    return str(request.param)


def test_git_is_asked_again_only_after_a_change(repo: Path, watch_kind: str) -> None:
    first = _capture_git.git_state(str(repo))
    assert _capture_git.git_state(str(repo)) is first
    if watch_kind == "inotify" and sys.platform.startswith("linux"):  # the fast way is in use
        watch = _capture_git._cache[str(repo)][1]
        assert isinstance(getattr(watch, "_inner", None), _watch._InotifyWatch)
    (repo / "src" / "train.py").write_text("lr = 0.25\n")
    second = _capture_git.git_state(str(repo))
    assert second is not None
    assert second.dirty
    assert second.diff is not None
    assert b"+lr = 0.25" in second.diff
    assert _capture_git.git_state(str(repo)) is second


def test_a_new_commit_is_seen_by_the_next_capture(repo: Path, watch_kind: str) -> None:
    before = capture_start(argv=["src/train.py"], cwd=repo).tags
    (repo / "src" / "train.py").write_text("lr = 0.3333\n")
    git(repo, "commit", "-q", "-am", "second")
    after = capture_start(argv=["src/train.py"], cwd=repo).tags
    assert after["mloop.git.commit"] == git(repo, "rev-parse", "HEAD") != before["mloop.git.commit"]
    assert after["mloop.git.dirty"] == "false"


def test_checkout_staging_and_new_files_are_seen(repo: Path, watch_kind: str) -> None:
    def tags() -> dict[str, str]:
        return capture_start(argv=["src/train.py"], cwd=repo).tags

    assert tags()["mloop.git.untracked_count"] == "0"
    (repo / "src" / "extra.py").write_text("x = 1\n")
    assert tags()["mloop.git.untracked_count"] == "1"
    git(repo, "add", "src/extra.py")
    staged = tags()
    assert (staged["mloop.git.untracked_count"], staged["mloop.git.dirty"]) == ("0", "true")
    git(repo, "checkout", "-q", "-b", "feature/x")
    assert tags()["mloop.git.branch"] == "feature/x"
    git(repo, "commit", "-q", "-m", "extra")
    assert tags()["mloop.git.commit"] == git(repo, "rev-parse", "HEAD")


def test_a_repository_created_later_is_seen(tmp_path: Path, watch_kind: str) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert _capture_git.git_state(str(plain)) is None
    git(plain, "init", "-q", "-b", "main")
    state = _capture_git.git_state(str(plain))
    assert state is not None
    assert state.branch == "main"


def test_writing_an_ignored_file_next_to_tracked_ones_keeps_the_cache(
    repo: Path, watch_kind: str
) -> None:
    (repo / ".gitignore").write_text("*.log\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-q", "-m", "ignore logs")
    log = repo / "src" / "train.log"
    log.write_text("epoch 0\n")
    first = _capture_git.git_state(str(repo))
    with log.open("a") as handle:
        handle.write("epoch 1\n")
    assert _capture_git.git_state(str(repo)) is first


def test_a_snapshot_of_just_changed_files_is_not_trusted(repo: Path) -> None:
    """Times are coarse: a second change within the same tick would look like no change."""
    watch = _watch.open_watch(use_inotify=False)
    watch.add([_watch.WatchedDir(str(repo / "src"), frozenset({"train.py"}), tree=True)])
    (repo / "src" / "train.py").write_text("lr = 0.1\n")  # same size, maybe same tick
    assert watch.changed()


def test_a_thousand_captures_are_fast(repo: Path) -> None:
    capture_start(argv=["src/train.py"], cwd=repo)
    started = time.perf_counter()
    for _ in range(1000):
        capture_start(argv=["src/train.py", "--lr", "0.1"], cwd=repo)
    assert time.perf_counter() - started < 1.0


# -- source and environment --------------------------------------------------------------------


def test_entry_point_is_relative_to_the_repository_root(repo: Path) -> None:
    script = repo / "src" / "train.py"
    captured = capture_start(argv=[str(script), "--lr", "0.1"], cwd=repo / "src")
    tags = captured.tags
    assert tags["mloop.source.kind"] == "script"
    assert tags["mloop.source.entry_point"] == "src/train.py"
    assert tags["mloop.source.repo_subdir"] == "src"
    assert tags["mloop.source.cwd"] == os.path.realpath(repo / "src")
    assert json.loads(tags["mloop.source.argv"]) == [str(script), "--lr", "0.1"]


def test_python_c_and_interactive_entry_points(tmp_path: Path) -> None:
    assert capture_start(argv=["-c", "x"], cwd=tmp_path).tags["mloop.source.entry_point"] == "-c"
    assert capture_start(argv=[""], cwd=tmp_path).tags["mloop.source.kind"] == "interactive"


def test_default_argv_is_the_running_program(tmp_path: Path) -> None:
    tags = capture_start(cwd=tmp_path).tags
    assert json.loads(tags["mloop.source.argv"])[1:] == redact_argv(sys.argv)[1:]


def test_python_and_platform_tags(tmp_path: Path) -> None:
    tags = capture_start(argv=["x.py"], cwd=tmp_path).tags
    assert tags["mloop.python.version"] == ".".join(map(str, sys.version_info[:3]))
    assert tags["mloop.python.executable"] == sys.executable
    assert tags["mloop.platform"]


def test_lock_lists_installed_packages_and_is_digested(tmp_path: Path) -> None:
    captured = capture_start(argv=["x.py"], cwd=tmp_path)
    lock = captured.artifacts[LOCK_ARTIFACT].decode()
    lines = lock.splitlines()
    assert lines[0] == "# mloop requirements lock v1"
    assert lines[1].startswith(f"# python {'.'.join(map(str, sys.version_info[:3]))}")
    assert f"numpy=={importlib.metadata.version('numpy')}" in lines
    packages = [line for line in lines if not line.startswith("#")]
    assert packages == sorted(
        packages, key=lambda line: re.sub(r"[-_.]+", "-", line.split("==")[0]).lower()
    )
    digest = hashlib.sha256(captured.artifacts[LOCK_ARTIFACT]).hexdigest()
    assert captured.tags["mloop.env.lock_digest"] == digest


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["t.py", "--api-key", "k1", "--lr", "1"], ["t.py", "--api-key", "***", "--lr", "1"]),
        (["t.py", "--db-password=hunter2"], ["t.py", "--db-password=***"]),
        (
            ["t.py", "--hf_token", "x", "--tokenizer", "bpe"],
            ["t.py", "--hf_token", "***", "--tokenizer", "bpe"],
        ),
        (["t.py", "--db", "postgresql://u:pw@h/db"], ["t.py", "--db", "postgresql://u:***@h/db"]),
        (["t.py", "--max-tokens", "5"], ["t.py", "--max-tokens", "5"]),
    ],
)
def test_secret_looking_arguments_are_redacted(argv: list[str], expected: list[str]) -> None:
    assert redact_argv(argv) == expected


# -- resources ---------------------------------------------------------------------------------


def test_resource_meter_measures_cpu_and_memory() -> None:
    meter = ResourceMeter()
    deadline = time.process_time() + 0.05
    total = 0
    while time.process_time() < deadline:
        total += sum(range(1000))
    block = b"x" * (50 * 1024 * 1024)  # written, so the pages are really resident
    result = meter.stop()
    del block
    assert total > 0
    assert isinstance(result["mloop.resources.wall_seconds"], float)
    assert result["mloop.resources.wall_seconds"] > 0
    assert float(result["mloop.resources.cpu_user_seconds"]) > 0
    assert float(result["mloop.resources.cpu_system_seconds"]) >= 0
    assert float(result["mloop.resources.peak_rss_mb"]) >= 50


def test_gpu_is_reported_from_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    rows = "0, GPU-aaa, NVIDIA A100-SXM4-40GB, 40960\\n1, GPU-bbb, NVIDIA T4, 15360"
    fake_tool(bin_dir, "nvidia-smi", f'printf "{rows}\\n"')
    monkeypatch.setenv("PATH", str(bin_dir))
    result = ResourceMeter().stop()
    assert result["mloop.resources.gpu_name"] == "NVIDIA A100-SXM4-40GB"
    assert result["mloop.resources.gpu_memory_mb"] == 40960.0
    assert result["mloop.resources.gpu_count"] == 2.0
    _capture._clear_caches()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert ResourceMeter().stop()["mloop.resources.gpu_name"] == "NVIDIA T4"


def test_no_gpu_keys_without_nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert not [k for k in ResourceMeter().stop() if "gpu" in k]


# -- seeds -------------------------------------------------------------------------------------


def test_seed_everything_repeats_random_and_numpy_sequences() -> None:
    tags = seed_everything(1234)
    first = ([random.random() for _ in range(3)], np.random.rand(3).tolist())
    seed_everything(1234)
    second = ([random.random() for _ in range(3)], np.random.rand(3).tolist())
    assert first == second
    assert tags == {"mloop.seed": "1234", "mloop.seed.libraries": "random,numpy"}
    assert os.environ["PYTHONHASHSEED"] == "1234"


def test_seed_everything_seeds_torch_only_when_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    fake = types.SimpleNamespace(
        manual_seed=seen.append,
        cuda=types.SimpleNamespace(is_available=lambda: True, manual_seed_all=seen.append),
    )
    monkeypatch.setitem(sys.modules, "torch", fake)
    assert seed_everything(7)["mloop.seed.libraries"] == "random,numpy,torch"
    assert seen == [7, 7]


@pytest.mark.parametrize("seed", [-1, 2**32, True, 1.5, "3"])
def test_invalid_seeds_are_rejected(seed: object) -> None:
    with pytest.raises(InvalidInput, match="seed"):
        seed_everything(seed)  # type: ignore[arg-type]


# -- reproduce ---------------------------------------------------------------------------------


def test_reproduce_steps_from_a_real_capture(repo: Path) -> None:
    git(repo, "remote", "add", "origin", "https://user:secret@example.com/x.git")
    (repo / "src" / "train.py").write_text("lr = 0.3\n")
    captured = capture_start(argv=["train.py", "--name", "my run"], cwd=repo / "src")
    tags = {**captured.tags, **seed_everything(42)}
    lines = reproduce_steps(tags, [*captured.artifacts, "model/model.pkl"], "r1")
    commit = git(repo, "rev-parse", "HEAD")
    assert "git clone https://example.com/x.git x" in lines
    assert f"git checkout {commit}  # was on branch main" in lines
    assert f"mloop runs download-artifact r1 {DIFF_ARTIFACT}" in lines
    assert "git apply git.diff" in lines
    assert "pip install -r requirements.lock" in lines
    assert f"python{sys.version_info[0]}.{sys.version_info[1]} -m venv .venv" in lines
    assert "export PYTHONHASHSEED=42" in lines
    assert lines[-2:] == ["cd src", "python train.py --name 'my run'"]
    assert lines.index(f"git checkout {commit}  # was on branch main") < lines.index(
        "git apply git.diff"
    )


def test_reproduce_steps_use_the_repo_relative_script_for_absolute_argv() -> None:
    tags = {
        "mloop.git.commit": "abc",
        "mloop.source.kind": "script",
        "mloop.source.entry_point": "src/train.py",
        "mloop.source.repo_subdir": ".",
        "mloop.source.argv": json.dumps(["/home/me/project/src/train.py", "--lr", "0.1"]),
    }
    assert reproduce_steps(tags, [], "r1")[-1] == "python src/train.py --lr 0.1"


def test_reproduce_steps_mark_what_is_unknown() -> None:
    lines = reproduce_steps({"mloop.source.argv": json.dumps(["t.py", "--x", "a b"])}, [], "r2")
    assert "# unknown: git commit was not recorded (run was not in a git repository)" in lines
    assert "# unknown: installed packages were not recorded" in lines
    assert not [line for line in lines if line.startswith("git ")]
    assert lines[-1] == shlex.join(["python", "t.py", "--x", "a b"])
    assert reproduce_steps({}, [], "r3")[-1] == "# unknown: the command line was not recorded"


def test_reproduce_steps_for_modules_dirty_without_diff_and_redacted_args() -> None:
    tags = {
        "mloop.git.commit": "abc",
        "mloop.git.dirty": "true",
        "mloop.git.diff_omitted": "diff is too large",
        "mloop.git.untracked_count": "2",
        "mloop.source.kind": "module",
        "mloop.source.entry_point": "pkg.train",
        "mloop.source.argv": json.dumps(["/x/pkg/train.py", "--token", "***"]),
    }
    lines = reproduce_steps(tags, [], "r4")
    assert any("uncommitted changes that were not stored (diff is too large)" in x for x in lines)
    assert any(x.startswith("# warning: 2 untracked") for x in lines)
    assert any("recorded as ***" in x for x in lines)
    assert lines[-1] == "python -m pkg.train --token '***'"
