"""build_search_query against a real SQLite store: exact run ids, in order."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Table, insert, inspect

from mloop.errors import FilterSyntaxError, InvalidInput
from mloop.store import MetadataStore, open_store, schema
from mloop.tracking._search import build_search_query

# run: (experiment, name, status, start_time, end_time, lifecycle_stage, user)
RUNS: dict[str, tuple[str, str | None, str, int, int | None, str, str | None]] = {
    "r1": ("e1", "alpha", "FINISHED", 100, 150, "active", "ana"),
    "r2": ("e1", "beta", "FAILED", 200, 260, "active", "bob"),
    "r3": ("e1", "gamma", "RUNNING", 300, None, "active", "ana"),
    "r4": ("e1", "Alpha-2", "FINISHED", 400, 450, "active", None),
    "r5": ("e1", "deleted-one", "FINISHED", 500, 550, "deleted", "bob"),
    "r6": ("e2", "other", "FINISHED", 600, 650, "active", "ana"),
}
METRICS: dict[str, dict[str, float | None]] = {  # None stands for NaN
    "r1": {"acc": 0.95, "loss": 0.1, "val loss": 0.3},
    "r2": {"acc": 0.80, "loss": 0.5},
    "r3": {"acc": None, "loss": 0.2},
    "r4": {"acc": 0.91},
    "r5": {"acc": 0.99},
    "r6": {"acc": 0.97},
}
PARAMS: dict[str, dict[str, str]] = {
    "r1": {"model": "rf", "lr": "0.1", "lr.decay": "yes"},
    "r2": {"model": "RF", "lr": "0.01"},
    "r3": {"model": "svm", "lr": "0.1"},
    "r4": {"model": "rf_100%"},
    "r5": {"model": "rf"},
    "r6": {"model": "rf"},
}
TAGS: dict[str, dict[str, str]] = {
    "r1": {"team": "core"},
    "r2": {"team": "x"},
    "r3": {"team": "core", "note": "it's fine"},
    "r5": {"team": "core"},
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetadataStore]:
    path: Path = tmp_path_factory.mktemp("search") / "m.db"
    experiments: Table = schema.Experiment.__table__  # type: ignore[assignment]
    runs: Table = schema.Run.__table__  # type: ignore[assignment]
    latest: Table = schema.LatestMetric.__table__  # type: ignore[assignment]
    params: Table = schema.Param.__table__  # type: ignore[assignment]
    tags: Table = schema.RunTag.__table__  # type: ignore[assignment]
    store = open_store(f"sqlite:///{path}")

    def fill(conn: Any) -> None:
        conn.execute(
            insert(experiments),
            [
                {"experiment_id": e, "name": e, "lifecycle_stage": "active", "creation_time": 0,
                 "last_update_time": 0}
                for e in ("e1", "e2")
            ],
        )  # fmt: skip
        conn.execute(
            insert(runs),
            [
                {"run_id": rid, "experiment_id": e, "name": name, "status": status,
                 "start_time": start, "end_time": end, "lifecycle_stage": stage, "user": user,
                 "parent_run_id": None}
                for rid, (e, name, status, start, end, stage, user) in RUNS.items()
            ],
        )  # fmt: skip
        conn.execute(
            insert(latest),
            [
                {"run_id": rid, "key": k, "value": v, "step": 0, "timestamp": 0}
                for rid, metrics in METRICS.items()
                for k, v in metrics.items()
            ],
        )
        for table, data in ((params, PARAMS), (tags, TAGS)):
            conn.execute(
                insert(table),
                [
                    {"run_id": rid, "key": k, "value": v}
                    for rid, values in data.items()
                    for k, v in values.items()
                ],
            )

    store.write(fill)
    yield store
    store.close()


def search(
    store: MetadataStore,
    filter_string: str = "",
    order_by: Sequence[str] = (),
    *,
    experiments: Sequence[str] = ("e1",),
    view_type: str = "ACTIVE_ONLY",
    offset: int = 0,
    limit: int = 100,
) -> list[str]:
    query = build_search_query(experiments, filter_string, view_type, order_by, offset, limit)
    with store.read() as conn:
        return list(conn.execute(query).scalars())


# default order: start_time DESC, run_id DESC
@pytest.mark.parametrize(
    ("filter_string", "expected"),
    [
        ("", ["r4", "r3", "r2", "r1"]),
        ("   ", ["r4", "r3", "r2", "r1"]),
        ("metrics.acc > 0.9", ["r4", "r1"]),
        ("metrics.acc >= 0.91", ["r4", "r1"]),
        ("metrics.acc < 0.9", ["r2"]),
        ("metrics.acc <= 0.8", ["r2"]),
        ("metrics.acc = 0.8", ["r2"]),
        # NaN (r3) satisfies no comparison, not even !=; r4 has no loss at all
        ("metrics.acc != 0.8", ["r4", "r1"]),
        ("metrics.acc > -1e9", ["r4", "r2", "r1"]),
        ("metrics.loss < 1", ["r3", "r2", "r1"]),
        ("metrics.`val loss` < 1", ["r1"]),
        ('metric."val loss" < 1', ["r1"]),
        ("params.model = 'rf'", ["r1"]),
        ('params.model = "RF"', ["r2"]),
        ("params.model != 'rf'", ["r4", "r3", "r2"]),
        ("params.model LIKE 'rf%'", ["r4", "r1"]),
        ("params.model LIKE 'r_'", ["r1"]),
        ("params.model ILIKE 'rf'", ["r2", "r1"]),
        ("params.model like '%\\%'", ["r4"]),
        ("params.model LIKE 'rf\\_1%'", ["r4"]),
        ("params.model IN ('rf', 'svm')", ["r3", "r1"]),
        ("params.model NOT IN ('rf', 'svm')", ["r4", "r2"]),
        ("params.\"lr.decay\" = 'yes'", ["r1"]),
        ("params.lr = '0.1' and params.model = 'rf'", ["r1"]),
        ("params.lr IS NULL", ["r4"]),
        ("params.lr IS NOT NULL", ["r3", "r2", "r1"]),
        ("tags.team != 'x'", ["r3", "r1"]),
        ("tags.team IS NULL", ["r4"]),
        ("tags.note = 'it''s fine'", ["r3"]),
        ("tags.note = 'it\\'s fine'", ["r3"]),
        ("attributes.status = 'FINISHED'", ["r4", "r1"]),
        ("attribute.status != 'FINISHED'", ["r3", "r2"]),
        ("attr.status IN ('FAILED', 'RUNNING')", ["r3", "r2"]),
        ("run.run_name = 'alpha'", ["r1"]),
        ("attributes.run_name LIKE 'alpha%'", ["r1"]),
        ("attributes.run_name ILIKE 'alpha%'", ["r4", "r1"]),
        ("attributes.start_time >= 200 and attributes.start_time < 400", ["r3", "r2"]),
        ("attributes.end_time IS NULL", ["r3"]),
        ("attributes.end_time > 200", ["r4", "r2"]),
        ("attributes.user_id = 'ana'", ["r3", "r1"]),
        ("attributes.user_id IS NULL", ["r4"]),
        ("attributes.run_id = 'r2'", ["r2"]),
        ("attributes.experiment_id = 'e1'", ["r4", "r3", "r2", "r1"]),
        ("metrics.acc > 0.9 or params.model = 'svm'", ["r4", "r3", "r1"]),
        (
            "(metrics.acc > 0.9 or params.model = 'svm') and tags.team = 'core'",
            ["r3", "r1"],
        ),
        (
            "metrics.acc > 0.9 or params.model = 'svm' and tags.team = 'x'",
            ["r4", "r1"],
        ),
        ("METRICS.acc > 0.9 AND Params.model = 'rf' OR tags.team = 'x'", ["r2", "r1"]),
        ("metrics.nothing > 0", []),
        ("params.model = '''; DROP TABLE runs; --'", []),
        ("params.model = '; DROP TABLE runs; --'", []),
    ],
)
def test_filter(store: MetadataStore, filter_string: str, expected: list[str]) -> None:
    assert search(store, filter_string) == expected


def test_injection_leaves_tables_alone(store: MetadataStore) -> None:
    assert search(store, "tags.team = 'x\\'; DROP TABLE runs; --'") == []
    assert search(store, 'attributes.run_name = "\'; DROP TABLE runs; --"') == []
    assert inspect(store.engine).has_table("runs")
    assert search(store) == ["r4", "r3", "r2", "r1"]


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        (["metrics.acc DESC"], ["r1", "r4", "r2", "r3"]),  # NaN (r3) sorts like missing: last
        (["metrics.acc ASC"], ["r2", "r4", "r1", "r3"]),
        (["metrics.acc"], ["r2", "r4", "r1", "r3"]),
        (["metrics.loss desc"], ["r2", "r3", "r1", "r4"]),
        (["metrics.loss asc"], ["r1", "r3", "r2", "r4"]),
        (["params.lr DESC"], ["r3", "r1", "r2", "r4"]),  # ties broken by start_time DESC
        (["params.lr ASC"], ["r2", "r3", "r1", "r4"]),
        (["tags.team ASC", "metrics.acc DESC"], ["r1", "r3", "r2", "r4"]),
        (["attributes.start_time ASC"], ["r1", "r2", "r3", "r4"]),
        (["attributes.end_time DESC"], ["r4", "r2", "r1", "r3"]),  # NULL end_time last
        (["attributes.run_name"], ["r4", "r1", "r2", "r3"]),
        (["metrics.`val loss` DESC"], ["r1", "r4", "r3", "r2"]),
    ],
)
def test_order_by(store: MetadataStore, order_by: list[str], expected: list[str]) -> None:
    assert search(store, order_by=order_by) == expected


def test_filter_and_order_together(store: MetadataStore) -> None:
    got = search(store, "metrics.acc > 0.5 and params.model LIKE 'rf%'", ["metrics.acc DESC"])
    assert got == ["r1", "r4"]


@pytest.mark.parametrize(
    ("view_type", "expected"),
    [
        ("ACTIVE_ONLY", ["r4", "r3", "r2", "r1"]),
        ("DELETED_ONLY", ["r5"]),
        ("ALL", ["r5", "r4", "r3", "r2", "r1"]),
    ],
)
def test_view_type(store: MetadataStore, view_type: str, expected: list[str]) -> None:
    assert search(store, view_type=view_type) == expected


def test_experiments(store: MetadataStore) -> None:
    assert search(store, "metrics.acc > 0.9", experiments=["e1", "e2"]) == ["r6", "r4", "r1"]
    assert search(store, experiments=["e2"]) == ["r6"]
    assert search(store, experiments=[]) == []


def test_offset_and_limit(store: MetadataStore) -> None:
    assert search(store, limit=2) == ["r4", "r3"]
    assert search(store, offset=2, limit=2) == ["r2", "r1"]
    assert search(store, offset=3, limit=5) == ["r1"]
    assert search(store, offset=10, limit=5) == []
    pages = [search(store, order_by=["metrics.acc DESC"], offset=i, limit=1) for i in range(4)]
    assert pages == [["r1"], ["r4"], ["r2"], ["r3"]]


def test_bad_arguments() -> None:
    with pytest.raises(InvalidInput, match="view type"):
        build_search_query(["e1"], "", "SOME", [], 0, 10)
    with pytest.raises(InvalidInput, match="negative"):
        build_search_query(["e1"], "", "ALL", [], -1, 10)
    with pytest.raises(FilterSyntaxError):
        build_search_query(["e1"], "metrics.acc >", "ALL", [], 0, 10)
    with pytest.raises(FilterSyntaxError):
        build_search_query(["e1"], "", "ALL", ["metrics.acc sideways"], 0, 10)


def test_values_are_bound_parameters() -> None:
    query = build_search_query(["e1"], "params.model = 'DROP'", "ALL", ["metrics.acc"], 0, 10)
    compiled = query.compile()
    assert "DROP" not in str(compiled)
    assert "DROP" in compiled.params.values()
