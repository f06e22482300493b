"""Dataset versions: immutable, numbered per name, content-addressed, with lineage.

:func:`register` turns a source into a version in three steps, and only the last one
touches the metadata store:

1. **stage** — local and in-memory data is copied into the content-addressed artifact
   store (tables as Parquet with fixed writer options, so equal tables give equal bytes);
   external objects (``file://``, ``s3://``) are only looked at: size, ETag or mtime, and
   the SHA-256 when asked;
2. **describe** — a manifest (every file's path, size, digest / ETag / mtime; a versioned
   format) is stored as a blob, and its digest identifies the version's content; unless
   that content is registered already, statistics are computed once and stored too;
3. **record** — one transaction adds the version row, its files and its lineage edges.

A failure in steps 1-2 leaves blobs behind (content-addressed, harmless) but no version.
Concurrent writers of one name get consecutive numbers: ``(dataset, version)`` is unique,
and a writer that loses the race starts its transaction again.
"""

from __future__ import annotations

import getpass
import socket
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Connection, Table, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from mloop._ids import new_id, now_ms
from mloop._lineage import link_lineage, produced_by
from mloop.artifacts import ArtifactStore, artifact_store_for
from mloop.config import Settings, get_settings
from mloop.data import _sources
from mloop.data._manifest import DatasetFile, FileChange, read_manifest, write_manifest
from mloop.errors import ConfigError, IntegrityError, InvalidInput, NotFound, StoreError
from mloop.store import MetadataStore, open_store
from mloop.store import schema as s

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl
    import pyarrow as pa

    from mloop.data._statistics import DatasetStatistics

STORED = "stored"
REFERENCE = "reference"
DATASETS = cast(Table, s.Dataset.__table__)
VERSIONS = cast(Table, s.DatasetVersion.__table__)
FILES = cast(Table, s.DatasetFile.__table__)
RUNS = cast(Table, s.Run.__table__)
LINEAGE = cast(Table, s.LineageEdge.__table__)
_RACE_RETRIES = 50


# -- entities ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetSummary:
    """A dataset name and its newest version, as :func:`list_datasets` returns them."""

    name: str
    latest_version: int
    num_versions: int
    creation_time: int
    last_update_time: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "latest_version": self.latest_version,
            "num_versions": self.num_versions,
            "creation_time": self.creation_time,
            "last_update_time": self.last_update_time,
        }


@dataclass(frozen=True, eq=False, repr=False)
class DatasetVersion:
    """One immutable version of a dataset.

    Pass it to ``mloop.log_input`` to record that a run read it. The readers verify what
    they read: stored blobs against their digests, external objects against the size and
    ETag / modification time recorded at registration.
    """

    name: str
    version: int
    digest: str
    storage: str
    source: str
    description: str | None
    num_rows: int | None
    size: int
    files: tuple[DatasetFile, ...]
    statistics_digest: str | None
    created_by: str | None
    run_id: str | None
    step: str | None
    provenance: dict[str, Any]
    creation_time: int
    _artifacts: ArtifactStore = field(repr=False)
    _settings: Settings = field(repr=False)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DatasetVersion):
            return NotImplemented
        return (self.name, self.version, self.digest) == (other.name, other.version, other.digest)

    def __hash__(self) -> int:
        return hash((self.name, self.version, self.digest))

    def __repr__(self) -> str:
        return (
            f"<DatasetVersion {self.ref} rows={self.num_rows} files={len(self.files)} "
            f"{self.storage} digest={self.digest[:12]}>"
        )

    @property
    def ref(self) -> str:
        """``name@version``: how runs, lineage edges and the CLI name this version."""
        return f"{self.name}@{self.version}"

    @property
    def is_reference(self) -> bool:
        """True when the files stay where they are (external) rather than in the store."""
        return self.storage == REFERENCE

    def statistics(self) -> DatasetStatistics:
        """The statistics computed at registration, loaded from the artifact store."""
        cached = self._cache.get("statistics")
        if cached is not None:
            return cast("DatasetStatistics", cached)
        if self.statistics_digest is None:
            raise NotFound(f"dataset {self.ref} has no stored statistics")
        from mloop.data._statistics import DatasetStatistics

        stats = DatasetStatistics.from_bytes(self._artifacts.get_bytes(self.statistics_digest))
        self._cache["statistics"] = stats
        return stats

    def verify(self, *, deep: bool = False) -> list[FileChange]:
        """Files that are missing or changed since registration (empty when all is well).

        Stored files are checked for presence, and with ``deep`` re-hashed. External files
        are checked by size and ETag / modification time, and with ``deep`` re-hashed when
        a digest was recorded.
        """
        return [c for f in self.files if (c := self._check(f, deep)) is not None]

    def _check(self, file: DatasetFile, deep: bool) -> FileChange | None:
        if file.uri is None:
            assert file.digest is not None
            if not self._artifacts.exists(file.digest):
                return FileChange(file.path, "missing", "its blob is gone from the artifact store")
            if deep:
                try:
                    with self._artifacts.open(file.digest) as stream:
                        while stream.read(1 << 20):
                            pass
                except IntegrityError as exc:
                    return FileChange(file.path, "changed", exc.message)
            return None
        try:
            size, etag, mtime_ns = _sources.stat_external(file.uri, self._settings)
        except FileNotFoundError:
            return FileChange(file.path, "missing", "the object no longer exists", file.uri)
        found: list[str] = []
        if file.etag is not None and etag != file.etag:
            found.append(f"ETag {file.etag} → {etag}")
        if size != file.size:
            found.append(f"size {file.size} → {size}")
        if file.mtime_ns is not None and mtime_ns is not None and mtime_ns != file.mtime_ns:
            found.append(f"modified at {mtime_ns} ns, registered at {file.mtime_ns} ns")
        if found:
            return _changed(file, ", ".join(found))
        if deep and file.digest is not None:
            digest = _sources.hash_external(file.uri, self._settings)
            if digest != file.digest:
                return _changed(file, f"SHA-256 {file.digest[:12]}… → {digest[:12]}…")
        return None

    def to_arrow(
        self, *, columns: Sequence[str] | None = None, allow_changed: bool = False
    ) -> pa.Table:
        """All rows as one Arrow table.

        External data is checked first: if an object changed since registration this
        raises :class:`~mloop.errors.IntegrityError` unless ``allow_changed`` is True.
        """
        if self.is_reference and not allow_changed:
            changes = self.verify()
            if changes:
                first = changes[0]
                more = f" (and {len(changes) - 1} more)" if len(changes) > 1 else ""
                raise IntegrityError(
                    f"dataset {self.ref} references {first.uri or first.path}, which is "
                    f"{first.change} since it was registered ({first.detail}){more}; register "
                    f"the current data as a new version (`mloop data register {self.name} "
                    f"{self.source}`), or pass allow_changed=True to read it anyway",
                    details={"changes": [c.to_dict() for c in changes]},
                )
        parts: list[tuple[str, str, Callable[[], bytes]]] = []
        for file in self.files:
            parts.append((file.path, file.format, self._reader(file)))
        return _sources.read_table(parts, columns)

    def _reader(self, file: DatasetFile) -> Callable[[], bytes]:
        if file.uri is None:
            digest = file.digest
            assert digest is not None
            return lambda: self._artifacts.get_bytes(digest)
        uri = file.uri

        def read() -> bytes:
            with _sources.open_external(uri, self._settings) as stream:
                return stream.read()

        return read

    def to_pandas(
        self, *, columns: Sequence[str] | None = None, allow_changed: bool = False
    ) -> pd.DataFrame:
        if "pandas" not in sys.modules:
            try:
                import pandas  # noqa: F401
            except ImportError as exc:
                raise ConfigError(
                    "to_pandas needs pandas, which is not installed; run `pip install pandas` "
                    "or use to_arrow()"
                ) from exc
        frame: pd.DataFrame = self.to_arrow(
            columns=columns, allow_changed=allow_changed
        ).to_pandas()
        return frame

    def to_polars(
        self, *, columns: Sequence[str] | None = None, allow_changed: bool = False
    ) -> pl.DataFrame:
        import polars

        frame = polars.from_arrow(self.to_arrow(columns=columns, allow_changed=allow_changed))
        assert isinstance(frame, polars.DataFrame)
        return frame

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "digest": self.digest,
            "storage": self.storage,
            "source": self.source,
            "description": self.description,
            "num_rows": self.num_rows,
            "num_files": len(self.files),
            "size": self.size,
            "statistics_digest": self.statistics_digest,
            "created_by": self.created_by,
            "run_id": self.run_id,
            "step": self.step,
            "provenance": self.provenance,
            "creation_time": self.creation_time,
            "files": [f.to_dict() for f in self.files],
        }


def _changed(file: DatasetFile, detail: str) -> FileChange:
    return FileChange(file.path, "changed", detail, file.uri)


# -- the registry -----------------------------------------------------------------------------


class DatasetRegistry:
    """Dataset versions over one metadata store and one artifact store."""

    def __init__(
        self,
        store: MetadataStore,
        artifacts: ArtifactStore,
        *,
        settings: Settings | None = None,
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self.settings = settings or get_settings()
        self._insert = (postgresql if store.dialect == "postgresql" else sqlite).insert

    def close(self) -> None:
        self.store.close()

    # -- writing ----------------------------------------------------------------------------

    def register(
        self,
        name: str,
        source: Any,
        *,
        description: str | None = None,
        reference: bool | None = None,
        compute_digest: bool = False,
        run_id: str | None = None,
        step: str | None = None,
        parents: Sequence[DatasetVersion | str] = (),
        provenance: Mapping[str, Any] | None = None,
        progress: Any = None,
    ) -> DatasetVersion:
        """Register ``source`` as the next version of ``name`` (see :func:`register`)."""
        _sources.check_name(name)
        parent_refs = [p.ref if isinstance(p, DatasetVersion) else str(p) for p in parents]
        explicit_run = run_id is not None
        run_id = run_id if explicit_run else _active_run_id()
        resolved = _sources.resolve(
            source, reference=reference, compute_digest=compute_digest, settings=self.settings
        )
        storage = STORED if resolved.kind in ("files", "table") else REFERENCE
        if reference is False and resolved.kind == "external":
            storage = STORED
        files = self._stage(resolved, storage)
        manifest = write_manifest(storage, files)
        digest = self.artifacts.put_bytes(manifest).digest
        existing = self._existing(name, digest)
        if existing is not None:
            if run_id is not None:
                self.store.write(lambda conn: self._edges(conn, existing.ref, run_id, parent_refs))
            return existing
        stats = self._statistics(resolved, storage, files, progress)
        if stats.num_rows == 0:
            raise InvalidInput(
                f"{resolved.label} holds no rows; a dataset version needs at least one row"
            )
        _check_unchanged(resolved, self.settings)
        stats_digest = self.artifacts.put_bytes(stats.to_bytes()).digest
        user = self.settings.user or _user()
        record = {
            "digest": digest,
            "storage": storage,
            "source": resolved.label,
            "description": description,
            "num_rows": int(stats.num_rows),
            "num_files": len(files),
            "size": sum(f.size for f in files),
            "statistics_digest": stats_digest,
            "created_by": user,
            "step": step,
            "provenance": {
                "source": resolved.label,
                "source_kind": resolved.kind,
                "user": user,
                "host": socket.gethostname(),
                "run_id": run_id,
                "step": step,
                "parents": parent_refs,
                **dict(provenance or {}),
            },
        }
        return self._record(name, record, files, run_id, explicit_run, parent_refs)

    def _stage(self, source: _sources.Source, storage: str) -> list[DatasetFile]:
        if source.table is not None:
            blob = self.artifacts.put_bytes(_sources.parquet_bytes(source.table))
            return [DatasetFile("data.parquet", "parquet", blob.size, blob.digest)]
        files = []
        for file in source.files:
            if storage == REFERENCE:
                files.append(
                    DatasetFile(
                        file.path,
                        file.format,
                        file.size,
                        file.digest,
                        file.uri,
                        file.etag,
                        file.mtime_ns,
                    )
                )
                continue
            if file.local is not None:
                blob = self.artifacts.put_file(file.local)
            else:
                assert file.uri is not None
                with _sources.open_external(file.uri, self.settings) as stream:
                    blob = self.artifacts.put_stream(stream)
            files.append(DatasetFile(file.path, file.format, blob.size, blob.digest))
        return files

    def _statistics(
        self,
        source: _sources.Source,
        storage: str,
        files: list[DatasetFile],
        progress: Any,
    ) -> DatasetStatistics:
        if source.kind == "external" and storage == STORED:
            # Copied from object storage: summarize the copies, which are what was stored.
            from mloop.data._statistics import compute_statistics

            merged: DatasetStatistics | None = None
            for file in files:
                assert file.digest is not None
                table = _sources.read_one(
                    file.path, file.format, self.artifacts.get_bytes(file.digest)
                )
                part = compute_statistics(table)
                merged = part if merged is None else merged.merge(part)
            assert merged is not None
            return merged
        return _sources.statistics_of(source, settings=self.settings, progress=progress)

    def _existing(self, name: str, digest: str) -> DatasetVersion | None:
        with self.store.read() as conn:
            row = conn.execute(
                _version_query().where(DATASETS.c.name == name, VERSIONS.c.digest == digest)
            ).first()
            return None if row is None else self._load(conn, row)

    def _record(
        self,
        name: str,
        record: dict[str, Any],
        files: list[DatasetFile],
        run_id: str | None,
        explicit_run: bool,
        parents: list[str],
    ) -> DatasetVersion:
        def work(conn: Connection) -> DatasetVersion:
            now = now_ms()
            run_known = run_id is not None and self._run_exists(conn, run_id)
            if explicit_run and not run_known:
                raise NotFound(
                    f"run {run_id!r} does not exist; pass the id of a run in this store "
                    "(`mloop runs list`) or leave run_id out"
                )
            conn.execute(
                self._insert(DATASETS).on_conflict_do_nothing(index_elements=["name"]),
                {
                    "dataset_id": new_id(),
                    "name": name,
                    "creation_time": now,
                    "last_update_time": now,
                },
            )
            dataset_id = conn.execute(
                select(DATASETS.c.dataset_id).where(DATASETS.c.name == name)
            ).scalar_one()
            found = conn.execute(
                _version_query().where(
                    VERSIONS.c.dataset_id == dataset_id, VERSIONS.c.digest == record["digest"]
                )
            ).first()
            if found is not None:  # registered meanwhile by another writer
                version = self._load(conn, found)
                if run_id is not None:
                    self._edges(conn, version.ref, run_id, parents)
                return version
            number = (
                conn.execute(
                    select(func.max(VERSIONS.c.version)).where(VERSIONS.c.dataset_id == dataset_id)
                ).scalar()
                or 0
            ) + 1
            version_id = new_id()
            conn.execute(
                VERSIONS.insert(),
                {
                    **record,
                    "version_id": version_id,
                    "dataset_id": dataset_id,
                    "version": number,
                    "run_id": run_id if run_known else None,
                    "creation_time": now,
                },
            )
            conn.execute(
                FILES.insert(),
                [
                    {
                        "version_id": version_id,
                        "path": f.path,
                        "format": f.format,
                        "size": f.size,
                        "digest": f.digest,
                        "uri": f.uri,
                        "etag": f.etag,
                        "mtime_ns": f.mtime_ns,
                    }
                    for f in files
                ],
            )
            conn.execute(
                update(DATASETS)
                .where(DATASETS.c.dataset_id == dataset_id)
                .values(last_update_time=now)
            )
            self._edges(conn, f"{name}@{number}", run_id, parents)
            row = conn.execute(_version_query().where(VERSIONS.c.version_id == version_id)).one()
            return self._load(conn, row)

        for attempt in range(_RACE_RETRIES):
            try:
                return self.store.write(work)
            except SAIntegrityError as exc:
                # Another writer took this number (or this content) first: start again.
                if attempt == _RACE_RETRIES - 1:
                    raise StoreError(
                        f"could not register a version of {name!r}: {exc.orig}; too many "
                        "concurrent writers, try again"
                    ) from exc
                time.sleep(0.005 * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def _edges(self, conn: Connection, ref: str, run_id: str | None, parents: list[str]) -> None:
        derived = [("dataset", parent, "derived") for parent in parents]
        link_lineage(conn, "dataset", ref, [*derived, *produced_by(run_id)], now_ms())

    def _run_exists(self, conn: Connection, run_id: str) -> bool:
        return (
            conn.execute(select(RUNS.c.run_id).where(RUNS.c.run_id == run_id)).first() is not None
        )

    # -- reading ----------------------------------------------------------------------------

    def get(self, ref: str | tuple[str, int | str]) -> DatasetVersion:
        """The version ``"name@3"``, ``"name@latest"`` or ``("name", 3)`` names."""
        name, number = _sources.parse_ref(ref)
        with self.store.read() as conn:
            query = _version_query().where(DATASETS.c.name == name)
            if number is None:
                query = query.order_by(VERSIONS.c.version.desc()).limit(1)
            else:
                query = query.where(VERSIONS.c.version == number)
            row = conn.execute(query).first()
            if row is None:
                raise self._missing(conn, name, number)
            return self._load(conn, row)

    def _missing(self, conn: Connection, name: str, number: int | None) -> NotFound:
        latest = conn.execute(
            select(func.max(VERSIONS.c.version))
            .select_from(VERSIONS.join(DATASETS))
            .where(DATASETS.c.name == name)
        ).scalar()
        if latest is None:
            return NotFound(
                f"dataset {name!r} does not exist; `mloop data list` shows the registered ones"
            )
        return NotFound(f"dataset {name!r} has no version {number}; its versions are 1 to {latest}")

    def list_datasets(self) -> list[DatasetSummary]:
        with self.store.read() as conn:
            rows = conn.execute(
                select(
                    DATASETS.c.name,
                    DATASETS.c.creation_time,
                    DATASETS.c.last_update_time,
                    func.max(VERSIONS.c.version).label("latest"),
                    func.count(VERSIONS.c.version_id).label("num_versions"),
                )
                .select_from(DATASETS.join(VERSIONS))
                .group_by(
                    DATASETS.c.dataset_id,
                    DATASETS.c.name,
                    DATASETS.c.creation_time,
                    DATASETS.c.last_update_time,
                )
                .order_by(DATASETS.c.name)
            ).all()
        return [
            DatasetSummary(
                r.name, int(r.latest), int(r.num_versions), r.creation_time, r.last_update_time
            )
            for r in rows
        ]

    def list_versions(self, name: str) -> list[DatasetVersion]:
        _sources.check_name(name)
        with self.store.read() as conn:
            rows = conn.execute(
                _version_query().where(DATASETS.c.name == name).order_by(VERSIONS.c.version)
            ).all()
            if not rows:
                raise self._missing(conn, name, None)
            return self._load_many(conn, rows)

    def _load(self, conn: Connection, row: Any) -> DatasetVersion:
        return self._load_many(conn, [row])[0]

    def _load_many(self, conn: Connection, rows: Sequence[Any]) -> list[DatasetVersion]:
        ids = [r.version_id for r in rows]
        files: dict[str, list[DatasetFile]] = {i: [] for i in ids}
        for f in conn.execute(
            select(FILES).where(FILES.c.version_id.in_(ids)).order_by(FILES.c.path)
        ):
            files[f.version_id].append(
                DatasetFile(f.path, f.format, f.size, f.digest, f.uri, f.etag, f.mtime_ns)
            )
        return [
            DatasetVersion(
                name=r.name,
                version=r.version,
                digest=r.digest,
                storage=r.storage,
                source=r.source,
                description=r.description,
                num_rows=r.num_rows,
                size=r.size,
                files=tuple(files[r.version_id]),
                statistics_digest=r.statistics_digest,
                created_by=r.created_by,
                run_id=r.run_id if r.run_id else (r.provenance or {}).get("run_id"),
                step=r.step,
                provenance=dict(r.provenance or {}),
                creation_time=r.creation_time,
                _artifacts=self.artifacts,
                _settings=self.settings,
            )
            for r in rows
        ]


def _version_query() -> Any:
    return select(VERSIONS, DATASETS.c.name).select_from(VERSIONS.join(DATASETS))


def _check_unchanged(source: _sources.Source, settings: Settings) -> None:
    """Refuse to record files that changed while they were copied and summarized."""
    for file in source.files:
        if file.local is not None:
            stat = file.local.stat() if file.local.exists() else None
            now = (stat.st_size, stat.st_mtime_ns) if stat else None
            if now != (file.size, file.mtime_ns):
                raise InvalidInput(
                    f"{file.local} changed while it was being registered; register it again "
                    "once nothing writes to it"
                )
        elif file.uri is not None:
            try:
                current = _sources.stat_external(file.uri, settings)
            except FileNotFoundError:
                current = None
            if current != (file.size, file.etag, file.mtime_ns):
                raise InvalidInput(
                    f"{file.uri} changed while it was being registered; register it again "
                    "once nothing writes to it"
                )


def _active_run_id() -> str | None:
    """The caller's active run, if the tracking API is in use (data never imports it)."""
    fluent = sys.modules.get("mloop.tracking._fluent")
    if fluent is None:
        return None
    active = fluent.active_run()
    return None if active is None else str(active.info.run_id)


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


# -- the module-level API ---------------------------------------------------------------------


@contextmanager
def open_registry(settings: Settings | None = None) -> Iterator[DatasetRegistry]:
    """The registry over the configured stores, closed on exit.

    The metadata store is the tracking URI when that is a database URI (so dataset and
    run lineage share one store), else ``MLOOP_DB_URI`` / the embedded SQLite file.
    """
    settings = settings or get_settings()
    artifacts = artifact_store_for(settings)
    registry = DatasetRegistry(open_store(settings.metadata_uri), artifacts, settings=settings)
    try:
        yield registry
    finally:
        registry.close()


def register(
    name: str,
    source: Any,
    *,
    description: str | None = None,
    reference: bool | None = None,
    compute_digest: bool = False,
    run_id: str | None = None,
    step: str | None = None,
    parents: Sequence[DatasetVersion | str] = (),
    provenance: Mapping[str, Any] | None = None,
    progress: Any = None,
) -> DatasetVersion:
    """Register ``source`` as a version of dataset ``name``; identical content returns the
    version that already holds it.

    ``source`` is a file, folder or glob of Parquet / CSV / JSON-lines files, a pandas or
    Polars DataFrame, an Arrow table, or an external URI (``s3://…``, ``file://…``).
    Local and in-memory data is copied into the artifact store; external data is
    referenced (``reference=True`` references local files too, ``reference=False``
    copies external objects). ``compute_digest`` also records the SHA-256 of referenced
    objects. ``run_id`` (default: the active run) and ``step`` record what produced the
    version; ``parents`` the versions it was derived from; ``provenance`` extra facts.
    Statistics are computed once here and stored with the version.
    """
    with open_registry() as registry:
        return registry.register(
            name,
            source,
            description=description,
            reference=reference,
            compute_digest=compute_digest,
            run_id=run_id,
            step=step,
            parents=parents,
            provenance=provenance,
            progress=progress,
        )


def get_dataset_version(ref: str | tuple[str, int | str]) -> DatasetVersion:
    """``get_dataset_version("sales@3")``, ``("sales@latest")`` or ``(("sales", 3))``."""
    with open_registry() as registry:
        return registry.get(ref)


def list_datasets() -> list[DatasetSummary]:
    """Every dataset with at least one version, by name."""
    with open_registry() as registry:
        return registry.list_datasets()


def list_versions(name: str) -> list[DatasetVersion]:
    """The versions of ``name``, oldest first."""
    with open_registry() as registry:
        return registry.list_versions(name)


__all__ = [
    "DatasetFile",
    "DatasetRegistry",
    "DatasetSummary",
    "DatasetVersion",
    "FileChange",
    "get_dataset_version",
    "list_datasets",
    "list_versions",
    "open_registry",
    "read_manifest",
    "register",
]
