"""Stage 8: one prediction, traced back to the data and the code that made it.

Every hop is read from what the stores recorded, never from the demo's memory: the
prediction log names the deployment, model and version that answered; the deployment's
history says which revision was live at that moment; the registry links the version to
its run and its training data; the run holds the git commit it was started from; the
data set version holds its digest and provenance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mloop.errors import NotFound

if TYPE_CHECKING:
    from rich.tree import Tree


@dataclass(frozen=True)
class DatasetHop:
    """A training data set version, as the data registry describes it."""

    ref: str
    rows: int
    digest: str
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Lineage:
    """The chain prediction → deployment revision → model version → run → data and code."""

    request_id: str
    time_ms: int
    deployment: str
    revision: int | None
    revision_reason: str | None
    model: str
    version: int
    role: str
    run_id: str | None
    commit: str | None
    dirty: bool | None
    datasets: tuple[DatasetHop, ...]

    def tree(self) -> Tree:
        """The chain as a Rich tree, the prediction at the root."""
        from datetime import UTC, datetime

        from rich.tree import Tree

        when = datetime.fromtimestamp(self.time_ms / 1000, tz=UTC).strftime("%H:%M:%S.%f")[:-3]
        root = Tree(f"[bold]prediction[/] {self.request_id} at {when} UTC ({self.role})")
        revision = root.add(
            f"[bold]deployment[/] {self.deployment} revision {self.revision}"
            + (f" — {self.revision_reason}" if self.revision_reason else "")
        )
        model = revision.add(f"[bold]model version[/] {self.model}:{self.version}")
        run = model.add(f"[bold]run[/] {self.run_id or 'unknown'}")
        if self.commit:
            run.add(
                f"[bold]code[/] git commit {self.commit}"
                + (" (with uncommitted changes)" if self.dirty else "")
            )
        else:
            run.add("[yellow]code: no git commit was recorded for this run[/]")
        for hop in self.datasets:
            source = hop.provenance.get("generator") or hop.provenance.get("source") or ""
            run.add(
                f"[bold]data[/] {hop.ref}: {hop.rows} rows, digest {hop.digest[:16]}"
                + (f", from {source}" if source else "")
            )
        return root


def trace_prediction(deployment: str, request_id: str) -> Lineage:
    """Follow ``request_id``'s answer back through the stores."""
    import mloop
    from mloop import data, registry
    from mloop.serving import deployment_history, read_predictions

    records = [
        r
        for r in read_predictions(None, deployment).to_pylist()
        if r["request_id"] == request_id and r["role"] != "shadow"
    ]
    if not records:
        raise NotFound(f"no answered prediction {request_id!r} in {deployment!r}'s log")
    record = records[-1]
    time_ms = int(record["time"].timestamp() * 1000)
    live = [d for d in deployment_history(deployment) if d.created_time <= time_ms]
    revision = live[-1] if live else None
    version = registry.get_model_version(record["model"], int(record["version"]))
    commit: str | None = None
    dirty: bool | None = None
    if version.run_id is not None:
        tags = mloop.get_run(version.run_id).data.tags
        commit = tags.get("mloop.git.commit")
        dirty = tags.get("mloop.git.dirty") == "true" if commit else None
    hops = []
    for ref in version.dataset_versions:
        dataset = data.get_dataset_version(ref)
        hops.append(
            DatasetHop(ref, dataset.num_rows or 0, dataset.digest, dict(dataset.provenance or {}))
        )
    return Lineage(
        request_id=request_id,
        time_ms=time_ms,
        deployment=deployment,
        revision=revision.revision if revision else None,
        revision_reason=revision.reason if revision else None,
        model=version.name,
        version=version.version,
        role=str(record["role"]),
        run_id=version.run_id,
        commit=commit,
        dirty=dirty,
        datasets=tuple(hops),
    )
