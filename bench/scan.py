"""Pickle-scanning benchmark: mloop beside picklescan and modelscan, one run.

    python bench/scan.py                       # files in a temp dir, ~3-5 minutes
    python bench/scan.py --data-dir /tmp/scan  # keep (and reuse) the generated files
    python bench/scan.py --skip-speed          # only the detection table

Command line: ``mloop models scan small.pkl`` beside ``picklescan -p`` and ``modelscan -p``
on a tiny pickle, each command's whole process (median of several), so start-up and imports
are what is measured.

Speed: two generated files, each scanned by each tool's Python API in a fresh child process:
the scan call alone, the whole process (interpreter start-up and imports included) and the
process's peak RSS (``os.wait4`` of that very child):

- ``dict.pkl``: a 114 MB pickled dict of ~5.2 million string keys (~15.6 million opcodes),
  the shape of a vocabulary or a feature index — many tiny opcodes;
- ``knn.pkl``: a ~100 MB fitted scikit-learn KNeighborsClassifier, which keeps its
  training data — one large array payload the scanners should step over.

Detection: every file of the public corpus (../shared/corpus/pickles, by MANIFEST.tsv)
plus tricks generated here (opcode by opcode: nothing is unpickled), scanned in-process by
each tool's Python API; "caught" means the tool reports something dangerous (picklescan:
an infected file; modelscan: an issue; mloop: an unsafe report).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import pickle
import statistics
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CORPUS = ROOT / ".." / "shared" / "corpus" / "pickles"
DICT_ITEMS = 5_200_000


# -- the two big files ----------------------------------------------------------------------


def make_dict_pickle(path: Path) -> None:
    if not path.exists():
        index = {f"token_{i:08d}": i for i in range(DICT_ITEMS)}
        path.write_bytes(pickle.dumps(index, protocol=4))


def make_sklearn_pickle(path: Path) -> None:
    if path.exists():
        return
    import numpy as np
    from sklearn.neighbors import KNeighborsClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(1_300_000, 10))
    y = rng.integers(0, 3, size=len(x))
    model = KNeighborsClassifier(algorithm="brute").fit(x, y)
    path.write_bytes(pickle.dumps(model, protocol=4))


def dict_opcodes(size: int) -> int:
    """Opcodes of dict.pkl: per item a key, its MEMOIZE and a value; MARK and SETITEMS per
    batch of 1,000; a FRAME per 64 KiB (counting them with pickletools takes a minute)."""
    return 3 * DICT_ITEMS + 2 * -(-DICT_ITEMS // 1000) + size // 65536 + 5


def child_scan(tool: str, path: Path) -> None:
    """In a fresh child: import the tool, scan once, print the two timings as JSON."""
    start = time.perf_counter()
    if tool == "mloop":
        sys.path.insert(0, str(ROOT / "src"))
        from mloop.models import scan_path

        imported = time.perf_counter()
        flagged = not scan_path(path).safe
    elif tool == "picklescan":
        from picklescan.scanner import scan_file_path

        imported = time.perf_counter()
        flagged = scan_file_path(str(path)).infected_files > 0
    else:
        from modelscan.modelscan import ModelScan

        imported = time.perf_counter()
        flagged = bool(ModelScan().scan(str(path))["issues"])
    done = time.perf_counter()
    print(json.dumps({"import": imported - start, "scan": done - imported, "flagged": flagged}))


def child_env(data_dir: Path) -> dict[str, str]:
    """The children's environment: bytecode cached (in the data dir, so the source tree is
    left alone), as an installed package has it. With PYTHONDONTWRITEBYTECODE set, mloop —
    run from its source tree — would be compiled on every start while the other tools load
    the bytecode pip wrote at install."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(data_dir / "pycache")
    return env


def measure(tool: str, path: Path, env: dict[str, str]) -> dict[str, float | None]:
    """One fresh child per measurement: its wall time (start-up included), the scan call
    alone, and its peak RSS (``os.wait4`` of that very child)."""
    command = [sys.executable, __file__, "--child", tool, str(path)]
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert child.stdout is not None
    output = child.stdout.read()
    child.stdout.close()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    result: dict[str, float | None] = {"wall": wall, "rss_mb": usage.ru_maxrss / 1024}
    try:
        timings = json.loads(output)
        result.update(scan=timings["scan"], start_up=timings["import"])
    except ValueError:
        result.update(scan=None, start_up=None)
    return result


CLI_RUNS = 7


def small_pickle(data_dir: Path) -> Path:
    path = data_dir / "small.pkl"
    path.write_bytes(pickle.dumps({"weights": [0.5, 1.5], "classes": ("a", "b")}, protocol=4))
    return path


def command_line(data_dir: Path) -> dict[str, float]:
    """Median wall time of each tool's own command on a tiny pickle: what a user waits for
    when scanning one small file, i.e. mostly interpreter start-up and imports."""
    path = small_pickle(data_dir)
    commands = {
        "mloop": [str(BIN / "mloop"), "models", "scan", str(path)],
        "picklescan": [str(BIN / "picklescan"), "-p", str(path)],
        "modelscan": [str(BIN / "modelscan"), "-p", str(path)],
    }
    print(
        f"\nsmall.pkl: {path.stat().st_size} bytes, each command's process (median of {CLI_RUNS})"
    )
    env = child_env(data_dir)
    results: dict[str, float] = {}
    for tool, command in commands.items():
        walls = []
        for run in range(CLI_RUNS + 1):  # the first run fills the bytecode cache
            start = time.perf_counter()
            subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            if run:
                walls.append(time.perf_counter() - start)
        results[tool] = statistics.median(walls)
        print(f"  {tool:<11} {results[tool]:7.2f} s")
    for tool in ("picklescan", "modelscan"):
        print(f"  mloop / {tool}: {results['mloop'] / results[tool]:.2f}x the process time")
    return results


def speed(data_dir: Path) -> dict[str, dict[str, dict[str, float | None]]]:
    results: dict[str, dict[str, dict[str, float | None]]] = {}
    env = child_env(data_dir)
    for tool in ("mloop", "picklescan", "modelscan"):  # fill each tool's bytecode cache
        measure(tool, small_pickle(data_dir), env)
    for name in ("dict.pkl", "knn.pkl"):
        path = data_dir / name
        if not path.exists():  # built in a child, so this process stays small
            subprocess.run([sys.executable, __file__, "--make", name, str(path)], check=True)
        with open(path, "rb") as warm:  # warm the page cache for everyone, in small reads:
            while warm.read(1 << 20):  # a child's peak RSS counts this process's at spawn
                pass
        size = path.stat().st_size / 1e6
        opcodes = dict_opcodes(path.stat().st_size) / 1e6
        extra = f", ~{opcodes:.1f} M opcodes" if name == "dict.pkl" else ""
        print(f"\n{name}: {size:.0f} MB{extra}")
        print(f"  {'tool':<11} {'scan':>9} {'process':>9} {'peak RSS':>10}")
        results[name] = {}
        for tool in ("mloop", "picklescan", "modelscan"):
            got = results[name][tool] = measure(tool, path, env)
            scan = "failed" if got["scan"] is None else f"{got['scan']:.2f} s"
            print(f"  {tool:<11} {scan:>9} {got['wall']:7.2f} s {got['rss_mb']:7.0f} MB")
        mine = results[name]["mloop"]
        for tool in ("picklescan", "modelscan"):
            other = results[name][tool]
            if other["scan"] and mine["scan"]:
                print(
                    f"  {tool} / mloop: {other['scan'] / mine['scan']:.1f}x the scan time, "
                    f"{other['wall'] / mine['wall']:.1f}x the process time, "
                    f"{other['rss_mb'] / mine['rss_mb']:.1f}x the memory"
                )
    return results


# -- tricks generated here ------------------------------------------------------------------


def _ops_call(module: str, name: str, arg: str = "echo pwned", proto: int = 2) -> bytes:
    head = bytes([0x80, proto]) if proto >= 2 else b""
    return head + f"c{module}\n{name}\n(V{arg}\ntR.".encode()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return buffer.getvalue()


def _tar(members: dict[str, bytes], mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _torch_state_dict(evil: bool) -> bytes:
    pid = b"(Vstorage\nctorch\nFloatStorage\nV0\nVcpu\nK\x04tQ"
    tensor = b"ctorch._utils\n_rebuild_tensor_v2\n(" + pid + b"K\x00K\x04\x85K\x01\x85\x89"
    tensor += b"ccollections\nOrderedDict\n)RtR"
    body = b"\x80\x02ccollections\nOrderedDict\n)R(Vweight\n" + tensor
    if evil:
        body += b"Vhook\n" + _ops_call("os", "system")[2:-1]
    return body + b"u."


def tricks(directory: Path) -> list[tuple[Path, str, str]]:
    """(file, expected, what) for tricks written here by hand."""
    import joblib
    import numpy as np

    evil4 = _ops_call("os", "system", proto=4)
    memo_stack_global = (
        b"\x80\x04\x8c\x05numpy\x94\x8c\x02os\x94\x8c\x06system\x94000h\x01h\x02\x93"
        b"\x8c\x02id\x85R."
    )
    samples: dict[str, tuple[bytes, str, str]] = {
        "reduce_eval_p0.pkl": (_ops_call("__builtin__", "eval", "1", 0), "malicious", "__builtin__.eval, protocol 0"),
        "reduce_getattr_p2.pkl": (_ops_call("builtins", "getattr"), "malicious", "builtins.getattr"),
        "reduce_popen_p4.pkl": (_ops_call("subprocess", "Popen", proto=4), "malicious", "subprocess.Popen"),
        "memo_stack_global.pkl": (memo_stack_global, "malicious", "STACK_GLOBAL from memoized strings"),
        "inst.pkl": (b"(S'id'\nios\nsystem\n.", "malicious", "INST os.system"),
        "obj.pkl": (b"\x80\x01(csubprocess\ncheck_output\nS'id'\no.", "malicious", "OBJ subprocess.check_output"),
        "newobj_ex.pkl": (b"\x80\x04cwebbrowser\nMozilla\n)}\x92.", "malicious", "NEWOBJ_EX webbrowser.Mozilla"),
        "ext_code.pkl": (b"\x80\x02\x82\x01)R.", "malicious", "EXT1 extension code"),
        "call_result.pkl": (b"\x80\x02ccollections\nOrderedDict\n)R(V1\ntR.", "malicious", "calls a call's result"),
        "zip_in_zip.zip": (_zip({"inner.zip": _zip({"archive/data.pkl": evil4})}), "malicious", "zip in zip"),
        "tar_gz.tgz": (_tar({"model.pkl": evil4}, "w:gz"), "malicious", "pickle in tar.gz"),
        "torch_zip_evil.pt": (_zip({"archive/data.pkl": _torch_state_dict(True), "archive/data/0": b"\0" * 16}), "malicious", "PyTorch zip layout with os.system"),
        "torch_zip_ok.pt": (_zip({"archive/data.pkl": _torch_state_dict(False), "archive/data/0": b"\0" * 16, "archive/version": b"3\n"}), "benign", "PyTorch zip state dict"),
        "torch_legacy_ok.bin": (
            pickle.dumps(0x1950A86A20F9469CFC6C, 2) + pickle.dumps(1001, 2)
            + pickle.dumps({"protocol_version": 1001}, 2) + _torch_state_dict(False)
            + pickle.dumps(["0"], 2) + struct.pack("<q", 4) + b"\0" * 16,
            "benign", "legacy torch.save stream",
        ),
        "truncated.pkl": (pickle.dumps({"a": 1}, protocol=4)[:-3], "malicious", "truncated stream (fail closed)"),
    }  # fmt: skip
    out = []
    for name, (data, expected, what) in samples.items():
        (directory / name).write_bytes(data)
        out.append((directory / name, expected, what))
    joblib.dump(
        {"w": np.ones(1000), "x": np.arange(50)}, directory / "arrays_ok.joblib", compress=3
    )
    out.append((directory / "arrays_ok.joblib", "benign", "joblib arrays, zlib"))
    np.save(directory / "objects_ok.npy", np.array([1, "a", None], dtype=object))
    out.append((directory / "objects_ok.npy", "benign", "object .npy"))
    evil_joblib = directory / "evil.joblib"
    joblib.dump({"w": np.ones(1000)}, evil_joblib)
    data = evil_joblib.read_bytes()
    evil_joblib.write_bytes(data[:-1] + b"0" + evil4[2:])  # a second pickle after the arrays
    out.append((evil_joblib, "malicious", "joblib stream then a payload pickle"))
    return out


# -- detection --------------------------------------------------------------------------------


def detect_mloop(path: Path) -> tuple[bool, bool]:
    sys.path.insert(0, str(ROOT / "src"))
    from mloop.models import scan_path

    return not scan_path(path).safe, False


def detect_picklescan(path: Path) -> tuple[bool, bool]:
    from picklescan.scanner import scan_file_path

    try:
        result = scan_file_path(str(path))
    except Exception:
        return False, True
    return result.infected_files > 0, bool(result.scan_err)


def detect_modelscan(path: Path) -> tuple[bool, bool]:
    from modelscan.modelscan import ModelScan

    try:
        result = ModelScan().scan(str(path))
    except Exception:
        return False, True
    return bool(result["issues"]), bool(result["errors"])


def detection(samples: list[tuple[Path, str, str]]) -> dict[str, dict[str, int]]:
    tools = {"mloop": detect_mloop, "picklescan": detect_picklescan, "modelscan": detect_modelscan}
    table: dict[str, dict[str, int]] = {}
    misses: dict[str, list[str]] = {}
    for tool, detect in tools.items():
        counts = {"caught": 0, "missed": 0, "false_positives": 0, "benign_ok": 0, "errors": 0}
        for path, expected, _ in samples:
            flagged, error = detect(path)
            counts["errors"] += error
            if expected == "malicious":
                counts["caught" if flagged else "missed"] += 1
                if not flagged:
                    misses.setdefault(tool, []).append(path.name)
            else:
                counts["false_positives" if flagged else "benign_ok"] += 1
        table[tool] = counts
    malicious = sum(1 for _, expected, _ in samples if expected == "malicious")
    benign = len(samples) - malicious
    print(f"\ndetection over {len(samples)} files ({malicious} malicious, {benign} benign)")
    print(f"  {'tool':<11} {'caught':>8} {'missed':>7} {'false +':>8} {'errors':>7}")
    for tool, counts in table.items():
        print(
            f"  {tool:<11} {counts['caught']:>4} {100 * counts['caught'] / malicious:3.0f}%"
            f" {counts['missed']:>7} {counts['false_positives']:>8} {counts['errors']:>7}"
        )
    for tool, names in misses.items():
        print(f"  {tool} missed: {', '.join(sorted(names)[:12])}{' …' if len(names) > 12 else ''}")
    return table


def corpus_samples() -> list[tuple[Path, str, str]]:
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.is_file():
        print(f"(no corpus at {CORPUS.resolve()}: detection uses the generated tricks only)")
        return []
    with open(manifest, newline="") as file:
        return [
            (CORPUS / row["file"], row["expected"], row["what"])
            for row in csv.DictReader(file, delimiter="\t")
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, help="Keep the generated files here.")
    parser.add_argument("--skip-speed", action="store_true", help="Only the detection table.")
    parser.add_argument("--json", type=Path, help="Also write the figures to this file.")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--make", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_scan(args.child[0], Path(args.child[1]))
        return
    if args.make:
        maker = make_dict_pickle if args.make[0] == "dict.pkl" else make_sklearn_pickle
        maker(Path(args.make[1]))
        return
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = args.data_dir or Path(scratch)
        data_dir.mkdir(parents=True, exist_ok=True)
        tricks_dir = data_dir / "tricks"
        tricks_dir.mkdir(exist_ok=True)
        figures: dict[str, object] = {}
        figures["command_line"] = command_line(data_dir)
        if not args.skip_speed:
            figures["speed"] = speed(data_dir)
        figures["detection"] = detection(corpus_samples() + tricks(tricks_dir))
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
