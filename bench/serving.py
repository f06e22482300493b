"""Inference-server benchmark: mloop beside a bare Starlette app (and MLServer when its
benchmark environment exists) on the same iris LogisticRegression, in one run.

    python bench/serving.py              # ~2 minutes on 2 cores; needs `wrk` (apt install wrk)
    python bench/serving.py --seconds 3 --skip-shadow

Each server runs as its own process, one uvicorn worker, on 127.0.0.1, and is driven by
``wrk`` with a Lua POST script: concurrency 1 and 16, single-row and 1,000-row OIP
requests (``/v2/models/iris/infer``, FP64 ``[N, 4]``), for a bounded duration each.

* **mloop**: ``mloop serve iris`` over a stored deployment with every guard on that costs
  anything on the request path: API-key auth (``MLOOP_SERVER_AUTH=on``), a per-key rate
  limit (high enough never to refuse), signature validation, metrics, micro-batching and
  the durable prediction log (each record in the write-ahead file before its answer is
  sent, fsynced every second: the default ``--log-fsync interval``);
* **bare**: a Starlette app that parses the JSON with orjson, calls ``predict`` and
  answers — the practical Python floor, with no validation, auth or logging;
* **mlserver**: MLServer's scikit-learn runtime with default settings, from the separate
  virtualenv ``/work/bench-venv-mlserver`` (``pip install mlserver mlserver-sklearn
  uvloop==0.21.0``), when it exists;
* **shadow cost**: the deployment with and without a shadow model, both servers up at once
  and driven in turn at 16 connections (three rounds, medians), to see what mirroring
  costs the primary's p99 and throughput;
* **mloop fsync=always** and **mloop no log**: the same guards with every answer waiting
  for its record's fsync (survives a power cut too), and with no prediction log, to show
  what durable logging costs.

Cold start is the time from process start to the first 200 from ``/v2/health/ready``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

MLSERVER_VENV = Path("/work/bench-venv-mlserver")
BARE_APP = """
import pickle, sys
import numpy as np, orjson
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

with open(sys.argv[1], "rb") as f:
    model = pickle.load(f)

async def infer(request):
    doc = orjson.loads(await request.body())
    tensor = doc["inputs"][0]
    rows = np.asarray(tensor["data"], dtype=np.float64).reshape(tensor["shape"])
    labels = model.predict(rows)
    out = {"model_name": "iris", "id": doc.get("id", ""), "outputs": [
        {"name": "predict", "datatype": "INT64", "shape": [len(labels)], "data": labels}]}
    return Response(orjson.dumps(out, option=orjson.OPT_SERIALIZE_NUMPY),
                    media_type="application/json")

async def ready(request):
    return Response(b"{}", media_type="application/json")

app = Starlette(routes=[Route("/v2/models/iris/infer", infer, methods=["POST"]),
                        Route("/v2/health/ready", ready)])

if __name__ == "__main__":
    import uvicorn
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning",
                access_log=False)
"""
LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
{auth}
local f = io.open("{body}", "rb")
wrk.body = f:read("*all")
f:close()
"""


@dataclass
class Result:
    rps: float
    p99_ms: float
    errors: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=1) as response:
                if response.status == 200:
                    return time.perf_counter() - start
        except OSError:
            time.sleep(0.01)
    raise RuntimeError("server did not become ready")


def run_wrk(url: str, script: Path, connections: int, seconds: float) -> Result:
    """``url`` is the infer endpoint."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "-s", str(script),
         url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    p99_ms = float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan")
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return Result(rps, p99_ms, int(errors.group(1)) if errors else 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--skip-shadow", action="store_true")
    parser.add_argument(
        "--skip-log-variants",
        action="store_true",
        help="skip mloop with --log-fsync always and with --no-prediction-log",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install -y wrk")

    work = Path(tempfile.mkdtemp(prefix="mloop-bench-serving-"))
    home = work / "home"
    env = {**os.environ, "MLOOP_HOME": str(home)}
    env = {k: v for k, v in env.items() if not k.startswith("MLOOP_") or k == "MLOOP_HOME"}
    # Every server starts from compiled bytecode, as an installed package does (pip compiles
    # at install): an editable checkout under PYTHONDONTWRITEBYTECODE would otherwise compile
    # mloop's sources at every start, 0.2 s of cold start no user pays.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    import mloop

    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(Path(mloop.__file__).parent)], check=True
    )
    key = setup(work, env)

    bodies = {}
    for rows in (1, 1000):
        body = work / f"body-{rows}.json"
        data = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]] * (rows // 2 or 1)
        tensor = {"name": "input-0", "shape": [len(data[:rows]), 4], "datatype": "FP64"}
        body.write_text(json.dumps({"inputs": [{**tensor, "data": data[:rows]}]}))
        bodies[rows] = body

    python = sys.executable
    mloop_cmd = [str(Path(python).parent / "mloop"), "serve"]
    servers: dict[str, tuple[list[str], dict[str, str], str | None]] = {
        "mloop": ([*mloop_cmd, "iris"], {**env, "MLOOP_SERVER_AUTH": "on"}, key),
        "bare": ([python, str(work / "bare.py"), str(work / "model.pkl")], env, None),
    }
    if not args.skip_log_variants:
        auth_env = {**env, "MLOOP_SERVER_AUTH": "on"}
        servers["mloop fsync=always"] = (
            [*mloop_cmd, "iris", "--log-fsync", "always"],
            auth_env,
            key,
        )
        servers["mloop no log"] = ([*mloop_cmd, "iris", "--no-prediction-log"], auth_env, key)
    mlserver = MLSERVER_VENV / "bin" / "mlserver"
    if mlserver.exists():
        servers["mlserver"] = ([str(mlserver), "start", str(work / "mlserver")], env, None)

    results: dict[tuple[str, int, int], Result] = {}
    cold: dict[str, float] = {}
    for name, (command, server_env, api_key) in servers.items():
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        if name == "mlserver":
            settings = work / "mlserver" / "settings.json"
            settings.write_text(json.dumps({"http_port": port, "grpc_port": free_port(),
                                            "metrics_port": free_port()}))  # fmt: skip
            full = command
        elif name == "bare":
            full = [*command, str(port)]
        else:
            full = [*command, "--port", str(port)]
        process = subprocess.Popen(
            full, env=server_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            cold[name] = wait_ready(url, process)
            auth = f'wrk.headers["Authorization"] = "Bearer {api_key}"' if api_key else ""
            for rows in (1, 1000):
                script = work / f"{name}-{rows}.lua"
                script.write_text(LUA.format(auth=auth, body=bodies[rows]))
                infer = f"{url}/v2/models/iris/infer"
                run_wrk(infer, script, 4, 1)  # warm-up
                for connections in (1, 16):
                    result = run_wrk(infer, script, connections, args.seconds)
                    results[(name, rows, connections)] = result
                    print(
                        f"{name:16s} rows={rows:<5d} c={connections:<3d} {result.rps:9.0f} req/s"
                        f"  p99 {result.p99_ms:7.2f} ms  non-2xx {result.errors}",
                        flush=True,
                    )
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
    if not args.skip_shadow:
        auth_env = {**env, "MLOOP_SERVER_AUTH": "on"}
        shadow_rounds = shadow_cost(mloop_cmd, auth_env, key, work, bodies[1], args.seconds, cold)
    else:
        shadow_rounds = []
    report(results, cold)
    report_shadow(shadow_rounds)
    shutil.rmtree(work, ignore_errors=True)


def shadow_cost(
    mloop_cmd: list[str],
    env: dict[str, str],
    key: str,
    work: Path,
    body: Path,
    seconds: float,
    cold: dict[str, float],
    rounds: int = 3,
) -> list[tuple[Result, Result]]:
    """What a shadow costs the primary: the deployment with and without one, both servers
    up at once and driven in turn (plain, shadowed, plain, …) at 16 connections, so that
    load from elsewhere on the machine falls on both alike."""
    script = work / "shadow-1.lua"
    script.write_text(LUA.format(auth=f'wrk.headers["Authorization"] = "Bearer {key}"', body=body))
    processes, urls = [], {}
    try:
        for name in ("iris", "iris-shadow"):
            port = free_port()
            process = subprocess.Popen(
                [*mloop_cmd, name, "--port", str(port)], env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            processes.append(process)
            urls[name] = f"http://127.0.0.1:{port}/v2/models/{name}/infer"
            cold[f"mloop ({name})"] = wait_ready(f"http://127.0.0.1:{port}", process)
        for url in urls.values():
            run_wrk(url, script, 4, 1)  # warm-up (and the shadow process's model load)
        pairs = []
        for _ in range(rounds):
            plain = run_wrk(urls["iris"], script, 16, seconds)
            shadowed = run_wrk(urls["iris-shadow"], script, 16, seconds)
            print(
                f"shadow round: plain {plain.rps:7.0f} req/s p99 {plain.p99_ms:6.2f} ms | "
                f"with shadow {shadowed.rps:7.0f} req/s p99 {shadowed.p99_ms:6.2f} ms",
                flush=True,
            )
            pairs.append((plain, shadowed))
        return pairs
    finally:
        for process in processes:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def report_shadow(pairs: list[tuple[Result, Result]]) -> None:
    if not pairs:
        return
    p99 = sorted(b.p99_ms / a.p99_ms for a, b in pairs)[len(pairs) // 2]
    rps = sorted(b.rps / a.rps for a, b in pairs)[len(pairs) // 2]
    print(
        f"  shadow attached, rows=1 c=16, median of {len(pairs)} alternated rounds: "
        f"primary p99 {(p99 - 1) * 100:+.0f}%, throughput x{rps:.2f}"
    )


def setup(work: Path, env: dict[str, str]) -> str:
    """Train, log and register the model, store the deployments, make an API key; write
    the bare app and the MLServer model folder."""
    script = f"""
import pickle, mloop
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from mloop.registry import create_api_key, create_user
from mloop.serving import create_deployment
X, y = load_iris(return_X_y=True)
model = LogisticRegression(max_iter=500).fit(X, y)
shadow = LogisticRegression(max_iter=500, C=0.1).fit(X, y)
for m in (model, shadow):
    with mloop.start_run():
        mloop.log_model(m, "model", input_example=X[:3], registered_model_name="iris")
limit = {{"rate": 1e9, "burst": 10**9}}
guards = {{"rate_limit_per_key": limit, "max_batch_size": 32}}
create_deployment("iris", {{"members": [{{"model": "iris", "version": 1}}], "guards": guards}})
create_deployment("iris-shadow", {{"members": [{{"model": "iris", "version": 1}},
    {{"model": "iris", "version": 2, "role": "shadow"}}], "guards": guards}})
create_user("bench", roles=[("viewer", "global")])
print(create_api_key("bench").key)
with open({str(work / "model.pkl")!r}, "wb") as f:
    pickle.dump(model, f)
import joblib
joblib.dump(model, {str(work / "model.joblib")!r})
"""
    key = (
        subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    (work / "bare.py").write_text(BARE_APP)
    folder = work / "mlserver"
    folder.mkdir()
    (folder / "model-settings.json").write_text(
        json.dumps({"name": "iris", "implementation": "mlserver_sklearn.SKLearnModel",
                    "parameters": {"uri": str(work / "model.joblib")}})
    )  # fmt: skip
    return key


def report(results: dict[tuple[str, int, int], Result], cold: dict[str, float]) -> None:
    print("\ncold start to ready: " + ", ".join(f"{k} {v:.2f} s" for k, v in cold.items()))
    print("\nratios (same run):")
    for rows in (1, 1000):
        for connections in (1, 16):
            mloop = results.get(("mloop", rows, connections))
            bare = results.get(("bare", rows, connections))
            if mloop is None or bare is None:
                continue
            line = f"  rows={rows:<5d} c={connections:<3d} mloop/bare {mloop.rps / bare.rps:5.2f}"
            other = results.get(("mlserver", rows, connections))
            if other is not None:
                line += f"  mloop/mlserver {mloop.rps / other.rps:5.2f}"
            print(line)
    for variant in ("mloop fsync=always", "mloop no log"):
        for rows in (1, 1000):
            for connections in (1, 16):
                found = results.get((variant, rows, connections))
                bare = results.get(("bare", rows, connections))
                if found is not None and bare is not None:
                    print(
                        f"  {variant:16s} rows={rows:<5d} c={connections:<3d} "
                        f"/bare {found.rps / bare.rps:5.2f}"
                    )


if __name__ == "__main__":
    main()
