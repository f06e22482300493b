"""The prediction log records failed requests (status, error) and still reads old parts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

import mloop
from mloop.serving import create_app
from mloop.serving._predlog import PredictionLog, PredictionRecord, read_predictions

T0 = 1_772_360_000_000


def _record(n: int, **changes: object) -> PredictionRecord:
    fields: dict[str, object] = {
        "request_id": f"r{n}", "time_ms": T0 + n, "deployment": "iris", "model": "iris",
        "version": 1, "role": "primary", "inputs": {"x": [[1.0]]}, "outputs": {"label": [0]},
        "latency_ms": 1.0,
    }  # fmt: skip
    fields.update(changes)
    return PredictionRecord(**fields)  # type: ignore[arg-type]


def test_status_and_error_round_trip_through_wal_and_parquet(tmp_path: Path) -> None:
    root = str(tmp_path / "log")
    with PredictionLog(root, compact_interval=None) as log:
        log.append(_record(0))
        log.append(_record(1, status=503, error="UNAVAILABLE", outputs=None))
        before = read_predictions(root, "iris")
    after = read_predictions(root, "iris")
    for table in (before, after):
        assert table.column("status").to_pylist() == [200, 503]
        assert table.column("error").to_pylist() == [None, "UNAVAILABLE"]


def test_parts_written_before_the_status_column_read_as_answers(tmp_path: Path) -> None:
    root = tmp_path / "log"
    old = pa.table(
        {
            "record_id": ["s:0"],
            "request_id": ["old"],
            "time": pa.array([T0], pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
            "model": ["iris"],
            "version": pa.array([1], pa.int64()),
            "role": ["primary"],
            "inputs": ["{}"],
            "outputs": ["{}"],
            "latency_ms": [2.0],
            "guards": ["{}"],
            "trace_id": [None],
            "needs_review": [False],
        }
    )
    folder = root / "deployment=iris" / "date=2026-03-01" / "hour=10"
    folder.mkdir(parents=True)
    pq.write_table(old, folder / "part-s-0.parquet")
    with PredictionLog(str(root), compact_interval=None) as log:
        log.append(_record(1, time_ms=T0 + 1, status=500, error="INTERNAL"))
    table = read_predictions(str(root), "iris")
    assert table.column("request_id").to_pylist() == ["old", "r1"]
    assert table.column("status").to_pylist() == [200, 500]
    assert table.column("error").to_pylist() == [None, "INTERNAL"]


def test_failed_requests_are_logged_with_the_member_they_were_routed_to() -> None:
    features, target = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=300).fit(features, target)
    with mloop.start_run():
        mloop.log_model(model, "model", input_example=features[:2], registered_model_name="iris")
    app = create_app("models:/iris/1", request_log=False)
    state = app.state.serving

    async def send(path: str, body: object) -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.post(path, json=body, headers={"X-Request-ID": "bad-1"})

    good = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64",
                        "data": features[0].tolist()}]}  # fmt: skip
    wrong_shape = {"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP64",
                               "data": [1.0, 2.0, 3.0]}]}  # fmt: skip
    assert asyncio.run(send("/v2/models/iris/infer", good)).status_code == 200
    assert asyncio.run(send("/v2/models/iris/infer", wrong_shape)).status_code == 400
    # an unknown deployment fails before routing: there is no member to charge it to
    assert asyncio.run(send("/v2/models/nope/infer", good)).status_code == 404
    state.prediction_log.compact_now()
    rows = read_predictions(state.prediction_log.root_uri, "iris").to_pylist()
    assert [(r["status"], r["model"], r["version"], r["role"]) for r in rows] == [
        (200, "iris", 1, "primary"),
        (400, "iris", 1, "primary"),
    ]
    failed = rows[1]
    assert failed["request_id"] == "bad-1"
    assert failed["error"] is not None
    assert failed["outputs"] is None
    assert failed["latency_ms"] > 0
