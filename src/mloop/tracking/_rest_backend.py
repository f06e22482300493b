"""Tracking through ``mloop server``: the :class:`TrackingBackend` seam over HTTP.

One keep-alive :class:`httpx.Client` per backend. The server's error shape
(``{"error": {"code", "message", "details"}}``) turns back into the mloop error class of
the same ``code``, so ``except Conflict`` works the same embedded and remote. Artifacts
stream both ways: uploads send the file in 1 MiB chunks, downloads return a file object
that reads the response as it arrives.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, BinaryIO, NoReturn
from urllib.parse import quote

import httpx
import orjson

from mloop.errors import (
    ConfigError,
    Conflict,
    FilterSyntaxError,
    IntegrityError,
    InvalidInput,
    MloopError,
    NotFound,
    PermissionDenied,
    PolicyViolation,
    RemoteError,
    StoreError,
    TamperedPackage,
    Unauthenticated,
    UnsafePath,
    UntrustedSignature,
)
from mloop.tracking._backend import ACTIVE_ONLY
from mloop.tracking._entities import (
    ArtifactInfo,
    Experiment,
    Metric,
    Param,
    Run,
    RunInfo,
    RunInput,
    RunStatus,
    RunTag,
)
from mloop.tracking._http import LeanClient, LeanResponse
from mloop.tracking._run_files import RESEND_DETAIL, DigestCache

CHUNK = 1 << 20
TIMEOUT = 60.0
# Storing a large upload (hashing, copying to object storage) happens before the answer.
TRANSFER_TIMEOUT = 600.0
_ERRORS: dict[str, type[MloopError]] = {
    "NOT_FOUND": NotFound,
    "CONFLICT": Conflict,
    "INVALID_INPUT": InvalidInput,
    "UNSAFE_PATH": UnsafePath,
    "INTEGRITY_ERROR": IntegrityError,
    "STORE_ERROR": StoreError,
    "UNAUTHENTICATED": Unauthenticated,
    "PERMISSION_DENIED": PermissionDenied,
    "POLICY_VIOLATION": PolicyViolation,
    "TAMPERED_PACKAGE": TamperedPackage,
    "UNTRUSTED_SIGNATURE": UntrustedSignature,
    "CONFIG_ERROR": ConfigError,
}


class RestBackend:
    """:class:`~mloop.tracking._backend.TrackingBackend` talking to ``mloop server`` at ``uri``."""

    def __init__(self, uri: str, *, timeout: float = TIMEOUT, api_key: str | None = None) -> None:
        base = uri.rstrip("/")
        self.uri = _redacted(base)  # for messages: never show a password from the URI
        # Every request carries these headers, whichever client sends it.
        headers = {"User-Agent": "mloop-client", "Accept": "application/json"}
        if api_key:  # MLOOP_API_KEY: the server checks it when its auth is on
            headers["Authorization"] = f"Bearer {api_key.strip()}"
        timeouts = httpx.Timeout(timeout, connect=min(timeout, 10.0))
        self._client = httpx.Client(base_url=f"{base}/api/v1", timeout=timeouts, headers=headers)
        # JSON calls (run creation, batches, run end…) take the lean client where it can stand
        # in for httpx exactly; artifact transfers always stream through httpx.
        self._lean = LeanClient.for_uri(f"{base}/api/v1", headers, timeouts)
        # Files the server confirmed holding for this client (see _run_files): later runs
        # refer to them by digest instead of sending them again.
        self._digests = DigestCache()
        self._server_holds: set[str] = set()

    def __repr__(self) -> str:
        return f"RestBackend({self.uri!r})"

    # -- experiments ----------------------------------------------------------------------

    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        body = {"name": name, "artifact_location": artifact_location, "tags": tags or {}}
        return str(self._call("POST", "/experiments", json=body)["experiment_id"])

    def get_experiment(self, experiment_id: str) -> Experiment:
        return Experiment.from_dict(self._call("GET", f"/experiments/{_q(experiment_id)}"))

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        found = self._call("GET", "/experiments/by-name", params={"name": name})["experiment"]
        return Experiment.from_dict(found) if found is not None else None

    def search_experiments(self, view_type: str = ACTIVE_ONLY) -> list[Experiment]:
        answer = self._call("GET", "/experiments", params={"view_type": view_type})
        return [Experiment.from_dict(e) for e in answer["experiments"]]

    def delete_experiment(self, experiment_id: str) -> None:
        self._call("DELETE", f"/experiments/{_q(experiment_id)}")

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
        body: dict[str, Any] = {
            "experiment_id": experiment_id,
            "run_name": run_name,
            "user_id": user_id,
            "start_time": start_time,
            "tags": tags,
            "parent_run_id": parent_run_id,
        }
        small = {p: c for p, c in (artifacts or {}).items() if len(c) <= SMALL_FILE_LIMIT}
        digests = {p: self._digests.digest(c) for p, c in small.items()}
        held = {p: d for p, d in digests.items() if d in self._server_holds}
        body["artifacts"] = {
            p: base64.b64encode(c).decode() for p, c in small.items() if p not in held
        }
        if held:
            body["artifact_digests"] = held
        try:
            answer = self._call("POST", "/runs", json=body)
        except Conflict as exc:
            resend = exc.details.get(RESEND_DETAIL) if held else None
            if not isinstance(resend, list):
                raise
            # The server no longer holds them (restarted, evicted): send everything whole.
            self._server_holds.difference_update(held.values())
            body.pop("artifact_digests")
            body["artifacts"] = {p: base64.b64encode(c).decode() for p, c in small.items()}
            answer = self._call("POST", "/runs", json=body)
        stored = answer.get("stored_files")
        if isinstance(stored, dict):  # servers that can take digests say what they stored
            if len(self._server_holds) > 1024:
                self._server_holds.clear()
            self._server_holds.update(d for p, d in stored.items() if digests.get(p) == d)
        run = Run.from_dict(answer)
        for path, content in (artifacts or {}).items():
            if path not in small:
                self.log_artifact_stream(run.info.run_id, path, io.BytesIO(content))
        return run

    def get_run(self, run_id: str) -> Run:
        return Run.from_dict(self._call("GET", f"/runs/{_q(run_id)}"))

    def update_run(
        self,
        run_id: str,
        *,
        status: RunStatus | None = None,
        end_time: int | None = None,
        run_name: str | None = None,
    ) -> RunInfo:
        body = {
            "status": RunStatus(status).value if status is not None else None,
            "end_time": end_time,
            "run_name": run_name,
        }
        return RunInfo.from_dict(self._call("PATCH", f"/runs/{_q(run_id)}", json=body))

    def delete_run(self, run_id: str) -> None:
        self._call("DELETE", f"/runs/{_q(run_id)}")

    def restore_run(self, run_id: str) -> None:
        self._call("POST", f"/runs/{_q(run_id)}/restore")

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        if not (metrics or params or tags):
            return
        self._call("POST", f"/runs/{_q(run_id)}/log-batch", json=_batch_body(metrics, params, tags))

    def finish_run(
        self,
        run_id: str,
        status: RunStatus,
        end_time: int,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Sequence[RunTag] = (),
    ) -> None:
        body = {
            "status": RunStatus(status).value,
            "end_time": end_time,
            **_batch_body(metrics, params, tags),
        }
        self._call("POST", f"/runs/{_q(run_id)}/finish", json=body)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        answer = self._call("GET", f"/runs/{_q(run_id)}/metrics/history", params={"key": key})
        return [Metric.from_dict(m) for m in answer["metrics"]]

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter_string: str = "",
        view_type: str = ACTIVE_ONLY,
        max_results: int = 1000,
        order_by: Sequence[str] = (),
        page_token: str | None = None,
    ) -> tuple[list[Run], str | None]:
        body = {
            "experiment_ids": list(experiment_ids),
            "filter": filter_string or "",
            "view_type": view_type,
            "max_results": max_results,
            "order_by": list(order_by),
            "page_token": page_token,
        }
        answer = self._call("POST", "/runs/search", json=body)
        return [Run.from_dict(r) for r in answer["runs"]], answer["next_page_token"]

    def log_inputs(self, run_id: str, inputs: Sequence[RunInput]) -> None:
        if not inputs:
            return
        body = {
            "inputs": [
                {
                    "ref": i.ref,
                    "context": i.context,
                    "kind": i.kind,
                    "digest": i.digest,
                    "attributes": i.attributes,
                }
                for i in inputs
            ]
        }
        self._call("POST", f"/runs/{_q(run_id)}/inputs", json=body)

    def get_inputs(self, run_id: str) -> list[RunInput]:
        answer = self._call("GET", f"/runs/{_q(run_id)}/inputs")
        return [
            RunInput(i["ref"], i["context"], i["kind"], i["digest"], i["attributes"])
            for i in answer["inputs"]
        ]

    # -- artifacts ------------------------------------------------------------------------

    def log_artifact_stream(self, run_id: str, path: str, stream: BinaryIO) -> ArtifactInfo:
        from mloop.artifacts import safe_relpath

        path = safe_relpath(path)  # refuse locally before sending any bytes
        url = f"/runs/{_q(run_id)}/artifact"
        try:
            response = self._client.put(
                url,
                params={"path": path},
                content=_read_chunks(stream),
                headers={"Content-Type": "application/octet-stream"},
                timeout=httpx.Timeout(TRANSFER_TIMEOUT, connect=10.0),
            )
        except (httpx.WriteError, httpx.RemoteProtocolError) as exc:
            # The server may refuse (unknown run) and close while we are still sending;
            # ask for the run to surface the real reason, else report the broken transfer.
            self.get_run(run_id)
            raise RemoteError(
                f"upload of {path!r} to the tracking server at {self.uri} was cut off ({exc}); "
                "try again"
            ) from exc
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc
        return ArtifactInfo.from_dict(self._answer(response))

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[ArtifactInfo]:
        params = {"path": path} if path else None
        answer = self._call("GET", f"/runs/{_q(run_id)}/artifacts", params=params)
        return [ArtifactInfo.from_dict(a) for a in answer["artifacts"]]

    def open_artifact(self, run_id: str, path: str) -> BinaryIO:
        request = self._client.build_request(
            "GET",
            f"/runs/{_q(run_id)}/artifact",
            params={"path": path},
            timeout=httpx.Timeout(TRANSFER_TIMEOUT, connect=10.0),
        )
        try:
            response = self._client.send(request, stream=True)
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc
        if response.is_error:
            try:
                response.read()
            finally:
                response.close()
            self._raise_for(response)
        return io.BufferedReader(_ResponseReader(response, self.uri, path), CHUNK)

    def close(self) -> None:
        if self._lean is not None:
            self._lean.close()
        self._client.close()

    def request_json(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        """One JSON call to another endpoint of the server (``url`` under ``/api/v1``), with
        this backend's key, connection pool and error mapping: the registry client's way in."""
        return self._call(method, url, json=json, params=params)

    # -- plumbing -------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        content = orjson.dumps(json) if json is not None else None
        headers = {"Content-Type": "application/json"} if content is not None else None
        response: httpx.Response | LeanResponse
        try:
            if self._lean is not None:
                response = self._lean.request(
                    method, url, content=content, params=params, headers=headers
                )
            else:
                response = self._client.request(
                    method, url, content=content, params=params, headers=headers
                )
        except httpx.TransportError as exc:
            raise self._transport_error(exc) from exc
        return self._answer(response)

    def _answer(self, response: httpx.Response | LeanResponse) -> Any:
        if response.is_error:
            self._raise_for(response)
        if response.status_code == 204 or not response.content:
            return None
        return orjson.loads(response.content)

    def _raise_for(self, response: httpx.Response | LeanResponse) -> NoReturn:
        raise error_from_response(response, self.uri)

    def _transport_error(self, exc: httpx.TransportError) -> RemoteError:
        if isinstance(exc, httpx.ConnectError):
            return RemoteError(
                f"the tracking server at {self.uri} is not reachable ({exc}); start it with "
                "`mloop server`, or point MLOOP_TRACKING_URI at a running one",
                code="UNREACHABLE",
                http_status=503,
            )
        if isinstance(exc, httpx.TimeoutException):
            return RemoteError(
                f"the tracking server at {self.uri} did not answer in time ({type(exc).__name__}); "
                "check that it is not overloaded, then try again",
                code="TIMEOUT",
                http_status=504,
            )
        return RemoteError(
            f"talking to the tracking server at {self.uri} failed: {type(exc).__name__}: {exc}"
        )


def error_from_response(response: httpx.Response | LeanResponse, uri: str) -> MloopError:
    """The mloop error a server error answer stands for (``RemoteError`` when unknown)."""
    status = response.status_code
    try:
        error = orjson.loads(response.content)["error"]
        code, message = str(error["code"]), str(error["message"])
        details = error.get("details") or {}
        if not isinstance(details, dict):
            details = {"details": details}
    except (ValueError, KeyError, TypeError):
        snippet = response.text[:200] if response.content else ""
        return RemoteError(
            f"the tracking server at {uri} answered {status} {response.reason_phrase} "
            f"without an mloop error body ({snippet!r}); is {uri} really an mloop server?",
            http_status=status,
        )
    if code == "INVALID_FILTER":
        filter_error = FilterSyntaxError.__new__(FilterSyntaxError)
        InvalidInput.__init__(filter_error, message, details=details)
        filter_error.column = int(details.get("column", 1))
        filter_error.text = str(details.get("filter", ""))
        return filter_error
    cls = _ERRORS.get(code)
    if cls is not None:
        return cls(message, details=details)
    return RemoteError(message, code=code, http_status=status, details=details)


class _ResponseReader(io.RawIOBase):
    """A raw, read-only file over a streamed response body; closing it closes the response."""

    def __init__(self, response: httpx.Response, uri: str, path: str) -> None:
        self._response = response
        self._chunks = response.iter_bytes()
        self._pending = b""
        self._uri = uri
        self._path = path

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
            except httpx.HTTPError as exc:
                raise RemoteError(
                    f"download of {self._path!r} from {self._uri} broke off ({exc}); the "
                    "server log says why (a digest mismatch raises there); try again"
                ) from exc
        count = min(len(view), len(self._pending))
        view[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def close(self) -> None:
        if not self.closed:
            self._response.close()
        super().close()


def _read_chunks(stream: BinaryIO) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK):
        yield chunk


def _redacted(uri: str) -> str:
    url = httpx.URL(uri)
    return str(url.copy_with(username=url.username, password="***")) if url.password else uri


def _q(segment: str) -> str:
    """One URL path segment: ids with '/', '?' or '#' must not change the route."""
    return quote(segment, safe="")


SMALL_FILE_LIMIT = 1 << 20  # files up to this size travel inside the create-run request


def _batch_body(
    metrics: Sequence[Metric], params: Sequence[Param], tags: Sequence[RunTag]
) -> dict[str, Any]:
    return {
        "metrics": [m.to_dict() for m in metrics],
        "params": [{"key": p.key, "value": p.value} for p in params],
        "tags": [{"key": t.key, "value": t.value} for t in tags],
    }
