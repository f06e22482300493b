"""Tracking written straight into the metadata store and the artifact store (embedded).

Writes go through Core statements in one transaction each, so a batch of metrics, params
and tags lands whole or not at all. Params are immutable: a second value for a key is a
:class:`~mloop.errors.Conflict` naming both values, and nothing of that batch is written.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, BinaryIO, cast

import orjson
from sqlalchemy import Connection, Table, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from mloop._ids import new_id, now_ms
from mloop.artifacts import ArtifactStore, BlobInfo, safe_relpath
from mloop.errors import Conflict, InvalidInput, NotFound
from mloop.store import MetadataStore
from mloop.store import schema as s
from mloop.tracking._backend import ACTIVE_ONLY, ALL, DELETED_ONLY, VIEW_TYPES
from mloop.tracking._entities import (
    ArtifactInfo,
    Experiment,
    Metric,
    Param,
    Run,
    RunData,
    RunInfo,
    RunInput,
    RunStatus,
    RunTag,
)
from mloop.tracking._search import build_search_query
from mloop.tracking._sql_hot import HotStatements
from mloop.tracking._validation import MAX_PARAM_VALUE, MAX_TAG_VALUE, check_key, check_value

EXPERIMENTS = cast(Table, s.Experiment.__table__)
EXPERIMENT_TAGS = cast(Table, s.ExperimentTag.__table__)
RUNS = cast(Table, s.Run.__table__)
PARAMS = cast(Table, s.Param.__table__)
METRICS = cast(Table, s.Metric.__table__)
LATEST = cast(Table, s.LatestMetric.__table__)
TAGS = cast(Table, s.RunTag.__table__)
ARTIFACTS = cast(Table, s.RunArtifact.__table__)
INPUTS = cast(Table, s.RunInput.__table__)
LINEAGE = cast(Table, s.LineageEdge.__table__)
MAX_EXPERIMENT_NAME = 256
MAX_RESULTS = 50_000
_MAX_REMEMBERED_FILES = 16


class SqlBackend:
    """:class:`~mloop.tracking._backend.TrackingBackend` over a metadata and artifact store."""

    def __init__(self, store: MetadataStore, artifacts: ArtifactStore) -> None:
        self.store = store
        self.artifacts = artifacts
        dialect = postgresql if store.dialect == "postgresql" else sqlite
        self._insert = dialect.insert
        self._sql = HotStatements(store.engine.dialect)
        self._stored_files: dict[int, tuple[bytes, BlobInfo]] = {}

    # -- experiments --------------------------------------------------------------------

    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput("experiment name must be a non-empty string")
        if len(name) > MAX_EXPERIMENT_NAME:
            raise InvalidInput(
                f"experiment name is {len(name)} characters; at most {MAX_EXPERIMENT_NAME}"
            )
        tags = {
            check_key("tag", k): check_value("tag", k, v, MAX_TAG_VALUE)
            for k, v in (tags or {}).items()
        }
        experiment_id = new_id()
        now = now_ms()

        def work(conn: Connection) -> None:
            existing = conn.execute(
                select(EXPERIMENTS.c.experiment_id).where(EXPERIMENTS.c.name == name)
            ).first()
            if existing is not None:
                raise Conflict(
                    f"experiment {name!r} already exists (id {existing[0]}); "
                    "use mloop.set_experiment to use it"
                )
            conn.execute(
                insert(EXPERIMENTS).values(
                    experiment_id=experiment_id,
                    name=name,
                    artifact_location=artifact_location,
                    lifecycle_stage="active",
                    creation_time=now,
                    last_update_time=now,
                )
            )
            if tags:
                conn.execute(
                    insert(EXPERIMENT_TAGS),
                    [
                        {"experiment_id": experiment_id, "key": k, "value": str(v)}
                        for k, v in tags.items()
                    ],
                )

        try:
            self.store.write(work)
        except SAIntegrityError:
            # Another process created the same name between our check and our insert.
            raise Conflict(f"experiment {name!r} already exists") from None
        return experiment_id

    def get_experiment(self, experiment_id: str) -> Experiment:
        with self.store.read() as conn:
            found = self._experiments(conn, EXPERIMENTS.c.experiment_id == experiment_id)
        if not found:
            raise NotFound(
                f"experiment {experiment_id!r} does not exist; `mloop experiments list` shows them"
            )
        return found[0]

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        with self.store.read() as conn:
            found = self._experiments(conn, EXPERIMENTS.c.name == name)
        return found[0] if found else None

    def search_experiments(self, view_type: str = ACTIVE_ONLY) -> list[Experiment]:
        _check_view_type(view_type)
        with self.store.read() as conn:
            return self._experiments(conn, _stage(EXPERIMENTS.c.lifecycle_stage, view_type))

    def delete_experiment(self, experiment_id: str) -> None:
        self.get_experiment(experiment_id)
        self.store.write(
            lambda conn: conn.execute(
                update(EXPERIMENTS)
                .where(EXPERIMENTS.c.experiment_id == experiment_id)
                .values(lifecycle_stage="deleted", last_update_time=now_ms())
            )
        )

    def _experiments(self, conn: Connection, where: Any) -> list[Experiment]:
        rows = conn.execute(
            select(EXPERIMENTS).where(where).order_by(EXPERIMENTS.c.creation_time)
        ).all()
        if not rows:
            return []
        tags: dict[str, dict[str, str]] = {}
        for exp_id, key, value in conn.execute(
            select(EXPERIMENT_TAGS).where(
                EXPERIMENT_TAGS.c.experiment_id.in_([r.experiment_id for r in rows])
            )
        ):
            tags.setdefault(exp_id, {})[key] = value
        return [
            Experiment(
                experiment_id=r.experiment_id,
                name=r.name,
                artifact_location=r.artifact_location,
                lifecycle_stage=r.lifecycle_stage,
                creation_time=r.creation_time,
                last_update_time=r.last_update_time,
                tags=tags.get(r.experiment_id, {}),
            )
            for r in rows
        ]

    # -- runs -----------------------------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        *,
        run_name: str | None,
        user_id: str | None,
        start_time: int,
        tags: dict[str, str],
        parent_run_id: str | None,
        artifacts: Mapping[str, bytes] | None = None,
    ) -> Run:
        run_id = new_id()
        now = now_ms()
        artifact_rows = []
        for path, content in (artifacts or {}).items():
            blob = self._put_capture_file(content)
            artifact_rows.append(
                {
                    "run_id": run_id,
                    "path": safe_relpath(path),
                    "digest": blob.digest,
                    "size": blob.size,
                    "created_time": now,
                }
            )
        tag_rows = [
            {
                "run_id": run_id,
                "key": check_key("tag", k),
                "value": check_value("tag", k, v, MAX_TAG_VALUE),
            }
            for k, v in tags.items()
        ]
        values = {
            "run_id": run_id,
            "experiment_id": experiment_id,
            "name": run_name,
            "user": user_id,
            "status": RunStatus.RUNNING.value,
            "start_time": start_time,
            "end_time": None,
            "parent_run_id": parent_run_id,
            "lifecycle_stage": "active",
            "b_active": "active",
        }

        sql = self._sql

        def work(conn: Any) -> None:
            if sql.insert_run.execute(conn, values) == 0:
                self._refuse_run(conn, experiment_id, parent_run_id)
            if tag_rows:
                sql.insert_tags.executemany(conn, tag_rows)
            if artifact_rows:
                sql.insert_artifacts.executemany(conn, artifact_rows)

        self.store.write_driver(work)
        info = RunInfo(
            run_id=run_id,
            experiment_id=experiment_id,
            run_name=run_name,
            user_id=user_id,
            status=RunStatus.RUNNING,
            start_time=start_time,
            end_time=None,
            parent_run_id=parent_run_id,
            lifecycle_stage="active",
        )
        return Run(info, RunData(tags={r["key"]: r["value"] for r in tag_rows}))

    def _put_capture_file(self, content: bytes) -> BlobInfo:
        """Store a file given with a new run, once per content object a process passes.

        Automatic capture hands every run of a process the same bytes objects (the
        environment lock, the uncommitted diff); hashing them and asking the artifact store
        whether it has them (a request on S3) again for each run would be wasted. The bytes
        are kept referenced, so their ``id`` cannot be reused by other content; mloop never
        deletes blobs that runs may refer to.
        """
        known = self._stored_files.get(id(content))
        if known is not None and known[0] is content:
            return known[1]
        blob = self.artifacts.put_bytes(content)
        if len(self._stored_files) >= _MAX_REMEMBERED_FILES:
            self._stored_files.clear()
        self._stored_files[id(content)] = (content, blob)
        return blob

    def _refuse_run(self, conn: Any, experiment_id: str, parent_run_id: str | None) -> None:
        """Say why the run insert wrote nothing: the experiment or the parent run is wrong.

        ``conn`` is the driver's connection of the transaction that tried the insert.
        """
        sql = self._sql
        exp = sql.experiment_stage.fetchall(conn, {"b_experiment_id": experiment_id})
        if not exp:
            raise NotFound(f"experiment {experiment_id!r} does not exist")
        if exp[0][0] != "active":
            raise InvalidInput(
                f"experiment {experiment_id!r} is deleted; restore it or choose another"
            )
        if parent_run_id is not None and not sql.run_exists.fetchall(
            conn, {"b_run_id": parent_run_id}
        ):
            raise NotFound(f"parent run {parent_run_id!r} does not exist")
        raise Conflict(  # both were fine a moment ago: another writer changed one of them
            f"run could not be created in experiment {experiment_id!r}; try again"
        )

    def _run_exists(self, conn: Connection, run_id: str) -> bool:
        return conn.execute(self._sql.run_exists_query, {"b_run_id": run_id}).first() is not None

    def get_run(self, run_id: str) -> Run:
        with self.store.read() as conn:
            runs = self._load_runs(conn, [run_id])
        if not runs:
            raise NotFound(f"run {run_id!r} does not exist; `mloop runs list` shows the runs")
        return runs[0]

    def update_run(
        self,
        run_id: str,
        *,
        status: RunStatus | None = None,
        end_time: int | None = None,
        run_name: str | None = None,
    ) -> RunInfo:
        values: dict[str, Any] = {}
        if status is not None:
            values["status"] = RunStatus(status).value
        if end_time is not None:
            values["end_time"] = end_time
        if run_name is not None:
            values["name"] = run_name
        if not values:
            with self.store.read() as conn:
                row = conn.execute(select(RUNS).where(RUNS.c.run_id == run_id)).first()
        else:
            params = {**values, "b_run_id": run_id}
            row = self.store.write(lambda conn: conn.execute(self._sql.update_run, params).first())
        if row is None:
            raise NotFound(f"run {run_id!r} does not exist")
        return _info(row)

    def delete_run(self, run_id: str) -> None:
        self._set_stage(run_id, "deleted")

    def restore_run(self, run_id: str) -> None:
        self._set_stage(run_id, "active")

    def _set_stage(self, run_id: str, stage: str) -> None:
        result = self.store.write(
            lambda conn: conn.execute(
                update(RUNS).where(RUNS.c.run_id == run_id).values(lifecycle_stage=stage)
            )
        )
        if result.rowcount == 0:
            raise NotFound(f"run {run_id!r} does not exist")

    # -- the hot path -------------------------------------------------------------------

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        if metrics or params or tags:
            self._write_batch(run_id, metrics, params, tags, None)

    def finish_run(
        self,
        run_id: str,
        status: RunStatus,
        end_time: int,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        end = {"b_status": RunStatus(status).value, "b_end_time": end_time, "b_run_id": run_id}
        self._write_batch(run_id, metrics, params, tags, end)

    def _write_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric],
        params: Sequence[Param],
        tags: Sequence[RunTag],
        end: dict[str, Any] | None,
    ) -> None:
        param_rows = _unique_params(run_id, params)
        tag_rows = [
            {
                "run_id": run_id,
                "key": check_key("tag", t.key),
                "value": check_value("tag", t.key, t.value, MAX_TAG_VALUE),
            }
            for t in tags
        ]
        metric_rows = [
            {
                "run_id": run_id,
                "key": check_key("metric", m.key),
                "value": None if math.isnan(m.value) else m.value,
                "step": m.step,
                "timestamp": m.timestamp,
            }
            for m in metrics
        ]
        latest = _latest_rows(metric_rows)

        sql = self._sql

        def work(conn: Any) -> None:
            if param_rows:
                self._write_params(conn, run_id, param_rows)
            if tag_rows:
                sql.upsert_tags.executemany(conn, tag_rows)
            if metric_rows:
                sql.insert_metrics.executemany(conn, metric_rows)
                sql.upsert_latest.executemany(conn, latest)
            if end is not None and sql.end_run.execute(conn, end) == 0:
                raise NotFound(f"run {run_id!r} does not exist")

        try:
            self.store.write_driver(work)
        except SAIntegrityError:  # the foreign key on run_id: the run is not there
            raise NotFound(f"run {run_id!r} does not exist; cannot log to it") from None

    def _write_params(self, conn: Any, run_id: str, rows: list[dict[str, str]]) -> None:
        """Insert new params; a key already stored must carry the same value.

        The insert skips stored keys and counts the rows it wrote, so the common case (all
        new) is one statement; only when some were skipped are the run's stored values read
        back and compared (a written row holds the value asked for, so comparing all is
        exact). ``conn`` is the driver's connection of the batch's transaction.
        """
        if self._sql.insert_params.executemany(conn, rows) == len(rows):
            return
        given = {r["key"]: r["value"] for r in rows}
        for key, old in self._sql.run_params.fetchall(conn, {"b_run_id": run_id}):
            if key in given and old != given[key]:
                raise Conflict(
                    f"param {key!r} of run {run_id} is already {old!r} and cannot "
                    f"change to {given[key]!r}; params are immutable — log a new run, "
                    "or use a metric or tag for values that change",
                    details={"key": key, "old": old, "new": given[key]},
                )

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        with self.store.read() as conn:
            if not self._run_exists(conn, run_id):
                raise NotFound(f"run {run_id!r} does not exist")
            rows = conn.execute(
                select(METRICS.c.key, METRICS.c.value, METRICS.c.timestamp, METRICS.c.step)
                .where(METRICS.c.run_id == run_id, METRICS.c.key == key)
                .order_by(METRICS.c.step, METRICS.c.timestamp, METRICS.c.id)
            ).all()
        return [Metric(k, math.nan if v is None else v, t, st) for k, v, t, st in rows]

    # -- search ---------------------------------------------------------------------------

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str = "",
        view_type: str = ACTIVE_ONLY,
        max_results: int = 1000,
        order_by: Sequence[str] = (),
        page_token: str | None = None,
    ) -> tuple[list[Run], str | None]:
        _check_view_type(view_type)
        if not 1 <= max_results <= MAX_RESULTS:
            raise InvalidInput(
                f"max_results must be between 1 and {MAX_RESULTS}, got {max_results}"
            )
        offset = _decode_token(page_token)
        query = build_search_query(
            list(experiment_ids),
            filter_string or "",
            view_type,
            list(order_by),
            offset,
            max_results + 1,
        )
        with self.store.read() as conn:
            ids = list(conn.execute(query).scalars())
            more = len(ids) > max_results
            runs = self._load_runs(conn, ids[:max_results])
        token = _encode_token(offset + max_results) if more else None
        return runs, token

    def _load_runs(self, conn: Connection, run_ids: list[str]) -> list[Run]:
        if not run_ids:
            return []
        infos = {r.run_id: r for r in conn.execute(select(RUNS).where(RUNS.c.run_id.in_(run_ids)))}
        metrics: dict[str, dict[str, float]] = {}
        params: dict[str, dict[str, str]] = {}
        tags: dict[str, dict[str, str]] = {}
        for rid, key, value in conn.execute(
            select(LATEST.c.run_id, LATEST.c.key, LATEST.c.value).where(
                LATEST.c.run_id.in_(run_ids)
            )
        ):
            metrics.setdefault(rid, {})[key] = math.nan if value is None else value
        for table, into in ((PARAMS, params), (TAGS, tags)):
            for rid, key, value in conn.execute(
                select(table.c.run_id, table.c.key, table.c.value).where(
                    table.c.run_id.in_(run_ids)
                )
            ):
                into.setdefault(rid, {})[key] = value
        return [
            Run(
                _info(r),
                RunData(metrics.get(rid, {}), params.get(rid, {}), tags.get(rid, {})),
            )
            for rid in run_ids
            if (r := infos.get(rid)) is not None
        ]

    # -- inputs ---------------------------------------------------------------------------

    def log_inputs(self, run_id: str, inputs: Sequence[RunInput]) -> None:
        if not inputs:
            return
        now = now_ms()
        rows = [
            {
                "run_id": run_id,
                "ref": i.ref,
                "context": i.context,
                "kind": i.kind,
                "digest": i.digest,
                "attributes": i.attributes,
                "created_time": now,
            }
            for i in inputs
        ]
        edges = [
            {
                "src_kind": i.kind,
                "src_id": i.ref,
                "dst_kind": "run",
                "dst_id": run_id,
                "relation": "input",
                "created_time": now,
                "attributes": {"context": i.context} if i.context else None,
            }
            for i in inputs
        ]

        def work(conn: Connection) -> None:
            if not self._run_exists(conn, run_id):
                raise NotFound(f"run {run_id!r} does not exist")
            conn.execute(self._insert(INPUTS).on_conflict_do_nothing(), rows)
            conn.execute(self._insert(LINEAGE).on_conflict_do_nothing(), edges)

        self.store.write(work)

    def get_inputs(self, run_id: str) -> list[RunInput]:
        with self.store.read() as conn:
            if not self._run_exists(conn, run_id):
                raise NotFound(f"run {run_id!r} does not exist")
            rows = conn.execute(
                select(INPUTS).where(INPUTS.c.run_id == run_id).order_by(INPUTS.c.created_time)
            ).all()
        return [RunInput(r.ref, r.context, r.kind, r.digest, r.attributes) for r in rows]

    # -- artifacts ------------------------------------------------------------------------

    def log_artifact_stream(self, run_id: str, path: str, stream: BinaryIO) -> ArtifactInfo:
        path = safe_relpath(path)
        with self.store.read() as conn:
            if not self._run_exists(conn, run_id):
                raise NotFound(f"run {run_id!r} does not exist; cannot store artifacts for it")
        blob = self.artifacts.put_stream(stream)
        row = {
            "run_id": run_id,
            "path": path,
            "digest": blob.digest,
            "size": blob.size,
            "created_time": now_ms(),
        }
        stmt = self._insert(ARTIFACTS)
        self.store.write(
            lambda conn: conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[ARTIFACTS.c.run_id, ARTIFACTS.c.path],
                    set_={"digest": stmt.excluded.digest, "size": stmt.excluded.size},
                ),
                row,
            )
        )
        return ArtifactInfo(path, False, blob.size, blob.digest)

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[ArtifactInfo]:
        prefix = safe_relpath(path) + "/" if path else ""
        with self.store.read() as conn:
            if not self._run_exists(conn, run_id):
                raise NotFound(f"run {run_id!r} does not exist")
            rows = conn.execute(
                select(ARTIFACTS.c.path, ARTIFACTS.c.size, ARTIFACTS.c.digest)
                .where(
                    ARTIFACTS.c.run_id == run_id,
                    ARTIFACTS.c.path.startswith(prefix, autoescape=True),
                )
                .order_by(ARTIFACTS.c.path)
            ).all()
        return list(_one_level(prefix, rows))

    def open_artifact(self, run_id: str, path: str) -> BinaryIO:
        digest = self.artifact_digest(run_id, path)
        return self.artifacts.open(digest)

    def artifact_digest(self, run_id: str, path: str) -> str:
        path = safe_relpath(path)
        with self.store.read() as conn:
            found = conn.execute(
                select(ARTIFACTS.c.digest).where(
                    ARTIFACTS.c.run_id == run_id, ARTIFACTS.c.path == path
                )
            ).first()
        if found is None:
            raise NotFound(
                f"run {run_id!r} has no artifact {path!r}; `mloop runs show {run_id}` lists them"
            )
        return str(found[0])

    def purge_run(self, run_id: str) -> None:
        """Remove a run and everything logged to it (blobs stay: others may share them)."""
        result = self.store.write(
            lambda conn: conn.execute(delete(RUNS).where(RUNS.c.run_id == run_id))
        )
        if result.rowcount == 0:
            raise NotFound(f"run {run_id!r} does not exist")

    def close(self) -> None:
        self.store.close()


def _info(row: Any) -> RunInfo:
    return RunInfo(
        run_id=row.run_id,
        experiment_id=row.experiment_id,
        run_name=row.name,
        user_id=row.user,
        status=RunStatus(row.status),
        start_time=row.start_time,
        end_time=row.end_time,
        parent_run_id=row.parent_run_id,
        lifecycle_stage=row.lifecycle_stage,
    )


def _check_view_type(view_type: str) -> None:
    if view_type not in VIEW_TYPES:
        raise InvalidInput(f"view type {view_type!r} is not one of {', '.join(VIEW_TYPES)}")


def _stage(column: Any, view_type: str) -> Any:
    if view_type == ALL:
        return column.in_(["active", "deleted"])
    return column == ("deleted" if view_type == DELETED_ONLY else "active")


def _unique_params(run_id: str, params: Sequence[Param]) -> list[dict[str, str]]:
    """Rows for params, refusing one key given two different values in the same batch."""
    seen: dict[str, str] = {}
    for p in params:
        key = check_key("param", p.key)
        value = check_value("param", key, p.value, MAX_PARAM_VALUE)
        if seen.get(key, value) != value:
            raise Conflict(
                f"param {key!r} is given twice with different values ({seen[key]!r} and "
                f"{value!r}); params are immutable"
            )
        seen[key] = value
    return [{"run_id": run_id, "key": k, "value": v} for k, v in seen.items()]


def _latest_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest point per key within one batch, to upsert into ``latest_metrics``."""
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        current = latest.get(row["key"])
        if current is None or (row["step"], row["timestamp"]) >= (
            current["step"],
            current["timestamp"],
        ):
            latest[row["key"]] = row
    return list(latest.values())


def _one_level(prefix: str, rows: Iterable[Any]) -> Iterable[ArtifactInfo]:
    """Files directly under ``prefix`` and the folders that lead to deeper files."""
    folders: set[str] = set()
    for path, size, digest in rows:
        rest = path[len(prefix) :]
        head, sep, _ = rest.partition("/")
        if sep:
            folder = prefix + head
            if folder not in folders:
                folders.add(folder)
                yield ArtifactInfo(folder, True)
        else:
            yield ArtifactInfo(path, False, size, digest)


def _encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"offset": offset})).decode()


def _decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = orjson.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (ValueError, KeyError, TypeError):
        raise InvalidInput(
            f"page token {token[:40]!r} is not one this server issued; "
            "pass the next_page_token of the previous page unchanged"
        ) from None
    if not isinstance(offset, int) or offset < 0:
        raise InvalidInput("page token is malformed; pass the previous page's token unchanged")
    return offset
