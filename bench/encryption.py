"""Encryption-at-rest benchmark: the artifact store with and without a KEK, one run.

    python bench/encryption.py                   # ~500 MB blob, local store, 3 rounds
    python bench/encryption.py --size-mb 128     # quicker
    python bench/encryption.py --dir /fast/disk --rounds 5

One file of random bytes (fixed seed) is stored with ``put_file`` into a fresh local store
and read back with ``download``, first into a plain store, then into an encrypted one
(AES-256-GCM, 1 MiB segments). Both paths already hash every byte (SHA-256) and write a
spool file, so the ratio shows what encryption adds on top of what the store always does.
The source file is read once before timing so both see a warm page cache; rounds alternate
the order, and the best round of each is reported. (That memory stays flat however large
the blob is checked by the unit tests, with tracemalloc.)

The goal: encrypted put and get within 1.5x of plain.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from mloop.artifacts import FileKeyProvider, generate_kek_file, open_artifact_store

SEED = 20240917


def build_file(path: Path, size_mb: int) -> None:
    rng = np.random.default_rng(SEED)
    left = size_mb * 1024 * 1024
    with path.open("wb") as out:
        while left:
            data = rng.bytes(min(64 << 20, left))
            out.write(data)
            left -= len(data)


def warm(path: Path) -> None:
    with path.open("rb") as handle:
        while handle.read(16 << 20):
            pass


def one_round(source: Path, work: Path, provider: FileKeyProvider | None) -> tuple[float, float]:
    root = work / ("encrypted" if provider else "plain")
    shutil.rmtree(root, ignore_errors=True)
    store = open_artifact_store(str(root), key_provider=provider)
    start = time.perf_counter()
    info = store.put_file(source)
    put = time.perf_counter() - start
    out = work / "out.bin"
    start = time.perf_counter()
    store.download(info.digest, out)
    get = time.perf_counter() - start
    out.unlink()
    shutil.rmtree(root)
    return put, get


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="Scratch folder (a temp dir).")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        work = Path(scratch)
        source = work / "blob.bin"
        build_file(source, args.size_mb)
        generate_kek_file(work / "bench.kek")
        provider = FileKeyProvider(work / "bench.kek")
        warm(source)
        best: dict[str, list[float]] = {"plain": [1e9, 1e9], "encrypted": [1e9, 1e9]}
        for round_ in range(args.rounds):
            order = ["plain", "encrypted"] if round_ % 2 == 0 else ["encrypted", "plain"]
            for name in order:
                put, get = one_round(source, work, provider if name == "encrypted" else None)
                best[name] = [min(best[name][0], put), min(best[name][1], get)]

    mb = args.size_mb * 1024 * 1024 / 1e6
    result = {
        "size_mb": args.size_mb,
        "rounds": args.rounds,
        "plain_put_MBps": round(mb / best["plain"][0], 1),
        "encrypted_put_MBps": round(mb / best["encrypted"][0], 1),
        "plain_get_MBps": round(mb / best["plain"][1], 1),
        "encrypted_get_MBps": round(mb / best["encrypted"][1], 1),
        "put_ratio": round(best["encrypted"][0] / best["plain"][0], 2),
        "get_ratio": round(best["encrypted"][1] / best["plain"][1], 2),
    }
    print(json.dumps(result, indent=2))
    print(
        f"encrypt+put {result['put_ratio']}x plain put, get+decrypt {result['get_ratio']}x "
        f"plain get ({args.size_mb} MB, best of {args.rounds})"
    )


if __name__ == "__main__":
    main()
