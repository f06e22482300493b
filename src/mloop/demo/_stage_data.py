"""Stage 1: register the first data set version and validate it.

The schema is inferred from version 1's statistics and saved next to the project, as a
user would commit it; then the same schema catches a broken batch (a new region, negative
incomes, missing ages) without reading more than its statistics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mloop.demo._population import LABEL, applicants
from mloop.demo._state import DATASET, DemoResult, DemoSize

if TYPE_CHECKING:
    from mloop.data import DatasetVersion
    from mloop.demo._home import DemoHome
    from mloop.demo._narrator import Narrator


def register_and_validate(
    narrator: Narrator, result: DemoResult, size: DemoSize, home: DemoHome
) -> DatasetVersion:
    """Register ``credit-applications@1`` and validate it and a broken batch."""
    from mloop import data

    narrator.stage(
        1,
        "Data: register version 1 and validate it",
        "Applicants with a known outcome, versioned; their statistics give the schema "
        "every later batch is checked against.",
    )
    frame = applicants(size.training_rows, era="before", seed=1)
    with narrator.progress("registering version 1", 1) as advance:
        version = data.register(
            DATASET,
            frame,
            description="credit applications with their outcome (synthetic population)",
            provenance={"generator": "mloop.demo._population", "era": "before", "seed": 1},
        )
        advance(1)
    result.datasets.append(version.ref)
    narrator.say(
        f"registered [bold]{version.ref}[/]: {version.num_rows} rows, "
        f"{len(frame.columns)} columns, digest {version.digest[:12]}, "
        f"default rate {frame[LABEL].mean():.0%}"
    )

    stats = version.statistics()
    schema = data.infer_schema(stats)
    schema[LABEL].environments = ["TRAINING"]
    schema_path = home.root / "schema.yaml"
    schema_path.write_text(schema.to_yaml(), encoding="utf-8")
    anomalies = data.validate_statistics(stats, schema)
    narrator.say(
        f"schema inferred ({len(schema.features)} features) → {schema_path}; "
        f"version 1 against it: {len(anomalies)} anomalies"
    )

    broken = applicants(400, era="before", seed=99)
    broken.loc[broken.index[:30], "region"] = "atlantis"
    broken.loc[broken.index[30:50], "income"] = -1.0
    caught = data.validate_statistics(data.compute_statistics(broken), schema)
    result.anomalies_caught = len(caught)
    narrator.say(f"a broken batch (400 rows) against the same schema: {len(caught)} anomalies")
    for anomaly in caught:
        narrator.say(
            f"  [red]{anomaly.severity}[/] {anomaly.feature}: {anomaly.kind} — "
            f"{anomaly.description}"
        )
    return version
