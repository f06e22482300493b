"""What the prediction and feedback logs hold for a window, as a table of applicants.

The log keeps each request's inputs as column-oriented JSON; unpacking them gives back
the rows the clients sent, next to who answered, what they answered and — once the
feedback came — the true outcome. That table is both what drift is measured on and the
fresh labelled data the model is retrained on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from mloop.demo._population import FEATURES, LABEL

if TYPE_CHECKING:
    import pandas as pd


def logged_applicants(
    deployment: str, start_ms: int, end_ms: int, *, roles: tuple[str, ...] = ("primary",)
) -> pd.DataFrame:
    """One row per answered applicant in ``[start_ms, end_ms)``: the features, ``model``,
    ``version``, ``role``, ``request_id``, ``prediction`` and the label (NaN if none came)."""
    import pandas as pd

    from mloop.serving._feedback import join_feedback

    table = join_feedback(None, deployment, start_ms, end_ms)
    rows: list[dict[str, Any]] = []
    for record in table.to_pylist():
        if record["role"] not in roles:
            continue
        inputs = orjson.loads(record["inputs"])
        outputs = orjson.loads(record["outputs"]) if record["outputs"] else {}
        predictions = outputs.get("predictions") or [None]
        label = orjson.loads(record["label"]) if record.get("label") else None
        count = len(next(iter(inputs.values()))) if inputs else 0
        for i in range(count):
            row = {name: inputs[name][i] for name in FEATURES if name in inputs}
            row.update(
                request_id=record["request_id"],
                model=record["model"],
                version=record["version"],
                role=record["role"],
                time_ms=_ms(record["time"]),
                prediction=predictions[i] if i < len(predictions) else None,
                **{LABEL: label},
            )
            rows.append(row)
    return pd.DataFrame(rows)


def _ms(value: Any) -> int:
    if isinstance(value, int):
        return value
    return int(value.timestamp() * 1000)
