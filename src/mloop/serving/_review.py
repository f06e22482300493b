"""The human review queue: answers a deployment was not confident about.

The queue is a view, not a second store: a prediction logged with ``needs_review`` is
queued by being logged, and it leaves the queue when a label for its request id arrives in
the feedback table — from ``label_review`` (a person working the queue) or from any bulk
feedback. So queueing costs nothing on the request path, survives ``kill -9`` exactly as
the prediction log does, and every review label is also training feedback.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import orjson

from mloop.config import Settings, get_settings
from mloop.errors import InvalidInput, NotFound
from mloop.serving._feedback import join_feedback, record_feedback
from mloop.serving._predlog import PredictionRecord, wal_root
from mloop.serving._predlog_store import LogRoot

ReviewStatus = Literal["pending", "labeled", "all"]
STATUSES = ("pending", "labeled", "all")


@dataclass(frozen=True)
class ReviewItem:
    request_id: str
    deployment: str
    time: datetime
    model: str
    version: int
    inputs: Any
    outputs: Any
    label: Any
    labeled_by: str | None

    @property
    def status(self) -> str:
        return "pending" if self.label is None else "labeled"


def needs_review(probabilities: Sequence[float], threshold: float | None) -> bool:
    """True when the top class probability is below the deployment's review threshold."""
    if threshold is None or not len(probabilities):
        return False
    return max(probabilities) < threshold


def queue_for_review(record: PredictionRecord) -> PredictionRecord:
    """The record marked for review; logging it (``PredictionLog.append``) queues it."""
    return dataclasses.replace(record, needs_review=True)


def _items(rows: list[dict[str, Any]], deployment: str) -> list[ReviewItem]:
    items = []
    for row in rows:
        items.append(
            ReviewItem(
                request_id=row["request_id"],
                deployment=deployment,
                time=row["time"],
                model=row["model"],
                version=row["version"],
                inputs=orjson.loads(row["inputs"]) if row["inputs"] else None,
                outputs=orjson.loads(row["outputs"]) if row["outputs"] else None,
                label=orjson.loads(row["label"]) if row["label"] else None,
                labeled_by=row["labeled_by"],
            )
        )
    return items


def list_review(
    deployment: str,
    status: ReviewStatus = "pending",
    *,
    root: str | None = None,
    since: datetime | int | None = None,
    wal_dir: str | Path | None = None,
    settings: Settings | None = None,
) -> list[ReviewItem]:
    """Queued answers of ``deployment`` (shadow answers excluded: nobody saw them),
    oldest first; ``status`` picks pending, labeled or all."""
    if status not in STATUSES:
        raise InvalidInput(f"review status {status!r} is not one of {', '.join(STATUSES)}")
    table = join_feedback(root, deployment, since, wal_dir=wal_dir, settings=settings)
    queued = [row for row in table.to_pylist() if row["needs_review"] and row["role"] != "shadow"]
    items = _items(queued, deployment)
    if status == "all":
        return items
    return [item for item in items if item.status == status]


def _deployments(root: str | None, wal_dir: str | Path | None, settings: Settings) -> list[str]:
    log_root = LogRoot(
        root or settings.resolved_prediction_log_uri, s3_endpoint_url=settings.s3_endpoint_url
    )
    names = set(log_root.deployments("predictions"))
    local = wal_root(settings, wal_dir)
    if local.is_dir():
        names.update(p.name for p in local.iterdir() if (p / "predictions").is_dir())
    return sorted(names)


def label_review(
    request_id: str,
    label: Any,
    actor: str | None,
    *,
    deployment: str | None = None,
    root: str | None = None,
    wal_dir: str | Path | None = None,
    settings: Settings | None = None,
) -> ReviewItem:
    """Label a queued answer; the label is stored as feedback (``source="review"``) and
    the item leaves the pending list. Without ``deployment``, every deployment's queue is
    searched for the request id."""
    settings = settings or get_settings()
    names = [deployment] if deployment else _deployments(root, wal_dir, settings)
    found = [
        item
        for name in names
        for item in list_review(name, "all", root=root, wal_dir=wal_dir, settings=settings)
        if item.request_id == request_id
    ]
    if not found:
        where = f"deployment {deployment!r}" if deployment else "any deployment"
        raise NotFound(
            f"request {request_id!r} is not in the review queue of {where}; "
            "see `mloop review list DEPLOYMENT`"
        )
    if len({item.deployment for item in found}) > 1:
        raise InvalidInput(
            f"request {request_id!r} is queued in several deployments "
            f"({', '.join(sorted({i.deployment for i in found}))}); name one with --deployment"
        )
    item = found[0]
    record_feedback(
        root,
        item.deployment,
        [{"request_id": request_id, "label": label}],
        actor=actor,
        source="review",
        wal_dir=wal_dir,
        settings=settings,
    )
    return dataclasses.replace(item, label=label, labeled_by=actor)
