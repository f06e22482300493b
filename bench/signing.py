"""Signing benchmark: mloop beside the OpenSSF model_signing library and sha256sum, one run.

    python bench/signing.py                  # ~1 GB folder in a temp dir, 3 rounds
    python bench/signing.py --size-mb 256    # quicker
    python bench/signing.py --rounds 5 --dir /fast/disk

The folder looks like a model package: a few large weight shards and many small files
(tokenizer pieces, configs), filled with random bytes from a fixed seed. Everything is
read once before timing so every tool sees a warm page cache; rounds alternate the order
of the tools, and the best round of each is reported (the least disturbed by the other
processes sharing the machine). Key mode throughout (offline, mloop's default).

mloop's goal: sign and verify within 1.2x of the library's own time, i.e. one pass of
hashing — the library's parallel SHA-256 — and nothing else of consequence.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

SEED = 20240917
SIG = "mloop-model.sig"


def build_folder(root: Path, size_mb: int) -> tuple[int, int]:
    """Three large shards hold ~90% of the bytes; ~400 small files share the rest."""
    rng = np.random.default_rng(SEED)
    total = size_mb * 1024 * 1024
    large_total = int(total * 0.9)
    sizes = [large_total // 3] * 3
    small_count = 400
    small_size = (total - large_total) // small_count
    chunk = 64 * 1024 * 1024
    digests: dict[str, str] = {}
    for i, size in enumerate(sizes):
        name = f"model-{i + 1:05d}-of-00003.safetensors"
        digest = hashlib.sha256()
        with (root / name).open("wb") as out:
            left = size
            while left:
                data = rng.bytes(min(chunk, left))
                out.write(data)
                digest.update(data)
                left -= len(data)
        digests[name] = digest.hexdigest()
    for i in range(small_count):
        name = f"tokenizer/part{i % 8}/piece-{i:04d}.json"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        data = rng.bytes(small_size)
        (root / name).write_bytes(data)
        digests[name] = hashlib.sha256(data).hexdigest()
    # a package manifest as mloop writes it, so mloop's sign checks the files against it
    manifest = {"format_version": 1, "files": digests}
    (root / "mloop-model.json").write_text(json.dumps(manifest, indent=2))
    files = [p for p in root.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def warm(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with path.open("rb") as f:
                while f.read(8 * 1024 * 1024):
                    pass


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where to build the folder")
    args = parser.parse_args()

    import model_signing

    from mloop.models import generate_signing_key, sign_package, verify_signature

    scratch = Path(tempfile.mkdtemp(prefix="mloop-bench-signing-", dir=args.dir))
    try:
        model = scratch / "model"
        model.mkdir()
        print(f"building {args.size_mb} MB in {model} …", flush=True)
        count, size = build_folder(model, args.size_mb)
        print(f"{count} files, {size / 1e9:.2f} GB; cores: {os.cpu_count()}")
        private_key, public_key = generate_signing_key(scratch / "keys")
        warm(model)
        signature = model / SIG

        def hashing() -> object:
            return model_signing.hashing.Config().set_ignored_paths(
                paths=[SIG], ignore_git_paths=False
            )

        def library_sign() -> None:
            model_signing.signing.Config().use_elliptic_key_signer(
                private_key=private_key
            ).set_hashing_config(hashing()).sign(model, signature)

        def library_verify() -> None:
            model_signing.verifying.Config().use_elliptic_key_verifier(
                public_key=public_key
            ).set_hashing_config(hashing()).verify(model, signature)

        def mloop_sign() -> None:
            sign_package(model, private_key)

        def mloop_verify() -> None:
            verify_signature(model, [public_key])

        files = sorted(str(p) for p in model.rglob("*") if p.is_file() and p.name != SIG)

        def sha256sum() -> None:
            subprocess.run(["sha256sum", *files], check=True, stdout=subprocess.DEVNULL)

        tools: list[tuple[str, Callable[[], None]]] = [
            ("library sign", library_sign),
            ("library verify", library_verify),
            ("mloop sign", mloop_sign),
            ("mloop verify", mloop_verify),
        ]
        if shutil.which("sha256sum"):
            tools.append(("sha256sum", sha256sum))
        best: dict[str, float] = {}
        for round_number in range(args.rounds):
            # sign before verify within each tool; swap which tool goes first each round
            order = tools if round_number % 2 == 0 else [*tools[2:4], *tools[0:2], *tools[4:]]
            for name, action in order:
                seconds = timed(action)
                best[name] = min(best.get(name, seconds), seconds)
                print(f"  round {round_number + 1}: {name:<15} {seconds:6.3f} s", flush=True)

        print()
        print(f"{'':<16}{'best s':>8}{'GB/s':>8}")
        for name, _ in tools:
            print(f"{name:<16}{best[name]:8.3f}{size / 1e9 / best[name]:8.2f}")
        print()
        print(f"mloop sign / library sign:      {best['mloop sign'] / best['library sign']:.2f}x")
        print(
            f"mloop verify / library verify:  {best['mloop verify'] / best['library verify']:.2f}x"
        )
        if "sha256sum" in best:
            print(
                f"sha256sum / mloop verify:       {best['sha256sum'] / best['mloop verify']:.2f}x"
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
