"""Feedback: validation, durable storage, latest-wins joins, and the review queue."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mloop.errors import InvalidInput, NotFound
from mloop.serving._feedback import (
    FeedbackLog,
    check_items,
    join_feedback,
    latest_feedback,
    read_feedback,
    record_feedback,
)
from mloop.serving._predlog import PredictionLog, PredictionRecord
from mloop.serving._review import label_review, list_review, needs_review, queue_for_review

T0 = 1_772_360_000_000


def prediction(n: int, *, deployment: str = "iris", **changes: object) -> PredictionRecord:
    fields: dict[str, object] = {
        "request_id": f"req-{n}",
        "time_ms": T0 + n,
        "deployment": deployment,
        "model": "iris",
        "version": 1,
        "role": "primary",
        "inputs": [[float(n), 1.0]],
        "outputs": {"probabilities": [0.55, 0.45]},
        "latency_ms": 0.5,
    }
    fields.update(changes)
    return PredictionRecord(**fields)  # type: ignore[arg-type]


@pytest.fixture
def root(tmp_path: Path) -> str:
    return str(tmp_path / "log")


def test_labels_and_outcomes_join_by_request_id(root: str) -> None:
    with PredictionLog(root, compact_interval=None) as log:
        log.append_many([prediction(0), prediction(1), prediction(2)])
    assert record_feedback(root, "iris", [{"request_id": "req-0", "label": "setosa"}]) == 1
    record_feedback(root, "iris", [{"request_id": "req-1", "outcome": "user redid the search"}])

    rows = {r["request_id"]: r for r in join_feedback(root, "iris").to_pylist()}

    assert orjson.loads(rows["req-0"]["label"]) == "setosa"
    assert rows["req-0"]["outcome"] is None
    assert rows["req-1"]["label"] is None
    assert rows["req-1"]["outcome"] == "user redid the search"
    assert rows["req-2"]["label"] is None
    assert rows["req-2"]["feedback_time"] is None


def test_the_later_label_wins_and_outcomes_are_kept_apart(root: str) -> None:
    record_feedback(
        root,
        "iris",
        [
            {"request_id": "a", "label": 2, "time": T0 + 10},
            {"request_id": "a", "outcome": "clicked", "time": T0 + 20},
            {"request_id": "a", "label": 1, "time": T0 + 5},  # arrives last, but is older
            {"request_id": "b", "label": "x", "time": "2026-03-01T10:00:00Z"},
        ],
    )
    record_feedback(
        root, "iris", [{"request_id": "b", "label": "y", "time": "2026-03-01T11:00:00+00:00"}]
    )

    latest = {r["request_id"]: r for r in latest_feedback(read_feedback(root, "iris")).to_pylist()}

    assert (latest["a"]["label"], latest["a"]["outcome"]) == ("2", "clicked")
    assert latest["b"]["label"] == '"y"'


def test_bulk_feedback_through_an_open_log_is_readable_before_compaction(root: str) -> None:
    log = FeedbackLog(root, compact_interval=None)
    items = [{"request_id": f"r{n}", "label": n % 3} for n in range(500)]
    assert record_feedback(root, "iris", items, log=log) == 500

    assert read_feedback(root, "iris").num_rows == 500
    assert log.compact_now() == 500
    log.close()
    table = read_feedback(root, "iris")
    assert table.num_rows == 500
    assert list(Path(root, "feedback").glob("deployment=iris/*/*/*.parquet"))


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"label": 1}, "item 0: request_id must be a non-empty string"),
        ({"request_id": "a"}, r"item 0 \(a\) has neither a label nor an outcome"),
        ({"request_id": "a", "label": [1]}, "label must be a string or a number"),
        ({"request_id": "a", "label": float("nan")}, "label must be a string or a number"),
        ({"request_id": "a", "outcome": 3}, "outcome must be a string"),
        ({"request_id": "a", "label": 1, "when": 3}, "unknown field.* when; allowed"),
        ({"request_id": "a", "label": 1, "time": "yesterday"}, "'yesterday' is not ISO 8601"),
        ({"request_id": "a", "label": 1, "time": [1]}, "time must be ISO 8601 text or milli"),
        ("a", "item 0 is not an object"),
    ],
)
def test_bad_items_are_refused_whole(root: str, item: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        record_feedback(root, "iris", [{"request_id": "ok", "label": 1}, item][1:])  # type: ignore[list-item]
    with pytest.raises(InvalidInput):
        record_feedback(root, "iris", [{"request_id": "ok", "label": 1}, item])  # type: ignore[list-item]
    assert read_feedback(root, "iris").num_rows == 0  # nothing of a refused batch is stored


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from("abc"), st.integers(0, 5), st.integers(0, 1000)),
        min_size=1,
        max_size=30,
    )
)
def test_latest_label_is_the_one_with_the_greatest_time(events: list[tuple[str, int, int]]) -> None:
    import pyarrow as pa

    from mloop.serving._feedback import SCHEMA

    unique = {}
    for request_id, label, time in events:
        unique[(request_id, time)] = label  # one label per instant, so "latest" is defined
    rows = [(rid, t, lab) for (rid, t), lab in unique.items()]
    table = pa.table(
        {
            "record_id": [str(n) for n in range(len(rows))],
            "request_id": [r[0] for r in rows],
            "time": pa.array([r[1] for r in rows], pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
            "label": [str(r[2]) for r in rows],
            "outcome": pa.array([None] * len(rows), pa.string()),
            "actor": pa.array([None] * len(rows), pa.string()),
            "source": ["api"] * len(rows),
        },
        schema=SCHEMA,
    )
    expected = {rid: str(max((t, lab) for r, t, lab in rows if r == rid)[1]) for rid, _, _ in rows}

    latest = {r["request_id"]: r["label"] for r in latest_feedback(table).to_pylist()}

    assert latest == expected


def test_check_items_fills_time_actor_and_source() -> None:
    (item,) = check_items([{"request_id": "a", "label": "x"}], actor="ann", source="review")
    assert item["time_ms"] > T0
    assert (item["actor"], item["source"]) == ("ann", "review")


# -- review queue ---------------------------------------------------------------------------


def test_needs_review_threshold() -> None:
    assert needs_review([0.55, 0.45], 0.6)
    assert not needs_review([0.7, 0.3], 0.6)
    assert not needs_review([0.1, 0.9], None)
    assert not needs_review([], 0.6)


def test_review_queue_list_and_label(root: str) -> None:
    with PredictionLog(root, compact_interval=None) as log:
        log.append(queue_for_review(prediction(0)))
        log.append(prediction(1))  # confident: not queued
        log.append(queue_for_review(prediction(2)))
        log.append(queue_for_review(prediction(2, role="shadow")))  # nobody saw it
        log.compact_now()
        log.append(queue_for_review(prediction(3, deployment="other")))  # still in the WAL

    pending = list_review("iris", root=root)
    assert [i.request_id for i in pending] == ["req-0", "req-2"]
    assert pending[0].inputs == [[0.0, 1.0]]
    assert pending[0].outputs == {"probabilities": [0.55, 0.45]}

    labeled = label_review("req-2", "versicolor", "ann", root=root)
    assert (labeled.deployment, labeled.status, labeled.labeled_by) == ("iris", "labeled", "ann")
    assert [i.request_id for i in list_review("iris", root=root)] == ["req-0"]
    (done,) = list_review("iris", "labeled", root=root)
    assert (done.request_id, done.label, done.labeled_by) == ("req-2", "versicolor", "ann")
    assert len(list_review("iris", "all", root=root)) == 2
    # the label is ordinary feedback too
    (event,) = read_feedback(root, "iris").to_pylist()
    assert (event["source"], event["actor"], event["label"]) == ("review", "ann", '"versicolor"')

    assert label_review("req-3", 0, None, root=root).deployment == "other"  # found in the WAL


def test_bulk_labels_also_empty_the_queue(root: str) -> None:
    with PredictionLog(root, compact_interval=None) as log:
        log.append(queue_for_review(prediction(0)))
    record_feedback(root, "iris", [{"request_id": "req-0", "label": "setosa"}])
    assert list_review("iris", root=root) == []


def test_review_errors(root: str) -> None:
    with PredictionLog(root, compact_interval=None) as log:
        log.append(prediction(1))
        log.append(queue_for_review(prediction(5, deployment="a")))
        log.append(queue_for_review(prediction(5, deployment="b")))
    with pytest.raises(NotFound, match="'req-1' is not in the review queue of any deployment"):
        label_review("req-1", "x", "ann", root=root)
    with pytest.raises(NotFound, match="of deployment 'iris'"):
        label_review("req-9", "x", "ann", root=root, deployment="iris")
    with pytest.raises(InvalidInput, match=r"several deployments \(a, b\); name one"):
        label_review("req-5", "x", "ann", root=root)
    assert label_review("req-5", "x", "ann", root=root, deployment="b").deployment == "b"
    with pytest.raises(InvalidInput, match="review status 'done' is not one of"):
        list_review("iris", "done", root=root)  # type: ignore[arg-type]


def test_async_feedback_from_an_event_loop(root: str) -> None:
    import asyncio

    log = FeedbackLog(root, compact_interval=None)

    async def main() -> list[int]:
        return await asyncio.gather(
            *(log.append_async("iris", [{"request_id": f"r{n}", "label": n}]) for n in range(20))
        )

    assert asyncio.run(main()) == [1] * 20
    with pytest.raises(InvalidInput, match="neither a label nor an outcome"):
        asyncio.run(log.append_async("iris", [{"request_id": "x"}]))
    log.close()
    assert sorted(read_feedback(root, "iris").column("request_id").to_pylist()) == sorted(
        f"r{n}" for n in range(20)
    )


@pytest.mark.s3
def test_feedback_and_review_on_s3(
    s3_bucket: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MLOOP_S3_ENDPOINT_URL", moto_endpoint)
    root = f"s3://{s3_bucket}/logs"
    with PredictionLog(root, compact_interval=None) as log:
        log.append_many([queue_for_review(prediction(0)), prediction(1, deployment="other")])
    import shutil

    shutil.rmtree(tmp_path / "mloop-home" / "wal")  # only what is on S3 now

    assert label_review("req-0", "setosa", "ann", root=root).deployment == "iris"
    record_feedback(root, "other", [{"request_id": "req-1", "outcome": "clicked"}])
    assert list_review("iris", root=root) == []
    rows = {r["request_id"]: r for r in join_feedback(root, "other").to_pylist()}
    assert rows["req-1"]["outcome"] == "clicked"
