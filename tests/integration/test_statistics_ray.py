"""The Ray executor on a local Ray: partitions become tasks, results equal inline ones."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mloop.data import _readers
from mloop.data._readers import CorruptDataError
from mloop.data._statistics import DatasetStatistics, compute_statistics

try:
    import ray
except ImportError:  # pragma: no cover - depends on the environment
    if os.environ.get("CI"):
        raise
    pytest.skip("Ray is not installed (pip install 'mloop[ray]')", allow_module_level=True)

pytestmark = [
    pytest.mark.slow,
    # Ray's own modules trip these on import and shutdown; nothing of mloop's.
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("ignore:.*pkg_resources.*:UserWarning"),
]


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def summary(stats: DatasetStatistics) -> dict[str, Any]:
    """Exact fields; quantiles only where both sketches are exact (few values)."""
    out: dict[str, Any] = {"rows": stats.num_rows}
    for name, feature in stats.features.items():
        view = feature.to_dict()
        for key in ("mean", "std"):
            if isinstance(view.get(key), float):
                view[key] = round(view[key], 9)
        out[name] = view
    return out


def test_ray_partitions_merge_to_the_inline_result(
    local_ray: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_readers, "PARTITION_ROWS", 20)
    rng = np.random.default_rng(5)
    for i in range(3):
        table = pa.table(
            {
                "x": rng.normal(size=60).round(4),
                "k": rng.integers(0, 5, 60),
                "s": rng.choice(["a", "b", "c"], 60),
            }
        )
        pq.write_table(table, tmp_path / f"part-{i}.parquet", row_group_size=20)
    inline = compute_statistics(tmp_path, executor="inline")
    progress: list[tuple[int, int]] = []
    on_ray = compute_statistics(
        tmp_path, executor="ray", progress=lambda d, t: progress.append((d, t))
    )
    assert summary(on_ray) == summary(inline)
    assert len(progress) == 1 + 9  # the start, then one call per partition
    assert progress[-1][0] == progress[-1][1]


def test_ray_splits_in_memory_tables(local_ray: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_readers, "TABLE_PARTITION_ROWS", 100)
    table = pa.table({"x": np.arange(300, dtype=np.float64), "s": ["p", "q", "r"] * 100})
    on_ray = compute_statistics(table, executor="ray")
    assert summary(on_ray) == summary(compute_statistics(table, executor="inline"))


def test_ray_task_errors_surface_as_mloop_errors(local_ray: Any, tmp_path: Path) -> None:
    good = tmp_path / "good.parquet"
    pq.write_table(pa.table({"x": [1, 2, 3]}), good)
    bad = tmp_path / "bad.parquet"
    data = bytearray(good.read_bytes())
    data[4:40] = b"\xff" * 36
    bad.write_bytes(bytes(data))
    with pytest.raises(CorruptDataError, match=r"bad\.parquet is not a readable Parquet file"):
        compute_statistics(tmp_path, executor="ray")


def test_ray_address_setting_is_used(local_ray: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOOP_EXECUTOR", "ray")
    assert compute_statistics(pa.table({"x": [1.0, 2.0]})).num_rows == 2
