"""`mloop serve`: one-line errors, and a real server process that answers, then drains and
flushes its prediction log on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import mloop
from mloop.config import get_settings
from mloop.serving import read_predictions
from tests.unit.cli.helpers import run_cli


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["serve", "models:/nope/1"], "registered model 'nope' does not exist"),
        (["serve", "models:/x/1", "--port", "0"], "--port 0"),
        (["serve", "models:/x/1", "--workers", "0"], "--workers 0"),
        (["serve", "models:/x/1", "--log-fsync", "sometimes"], "--log-fsync"),
        (["serve", "no-such-deployment"], "no-such-deployment"),
    ],
)
def test_bad_targets_and_options_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], args: list[str], words: str
) -> None:
    code, _, err = run_cli(capsys, *args)
    assert code == 2
    assert err.startswith("error: ")
    assert words in err
    assert len(err.strip().splitlines()) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_mloop_serve_answers_then_drains_and_flushes_on_sigterm(tmp_path: Path) -> None:
    features, target = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=300).fit(features, target)
    with mloop.start_run():
        mloop.log_model(model, "model", input_example=features[:2], registered_model_name="iris")
    port = _free_port()
    mloop_bin = Path(sys.executable).parent / "mloop"
    server = subprocess.Popen(
        [str(mloop_bin), "serve", "models:/iris/1", "--port", str(port)],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.05)
        body = {
            "id": "cli-1",
            "inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [features[0].tolist()]}],
        }  # fmt: skip
        answer = httpx.post(f"{url}/v2/models/iris/infer", json=body, timeout=10)
        assert answer.json()["outputs"][0]["data"] == model.predict(features[:1]).tolist()
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=30)
    assert f"serving models:/iris/1 on http://127.0.0.1:{port}" in err
    assert '"request_id":"cli-1"' in out  # the JSON request log on stdout
    # the log was closed and compacted to Parquet at shutdown: nothing left in the WAL
    table = read_predictions(get_settings().resolved_prediction_log_uri, "iris")
    assert table.column("request_id").to_pylist() == ["cli-1"]
    parquet = list(Path(get_settings().resolved_prediction_log_uri).rglob("*.parquet"))
    assert parquet
