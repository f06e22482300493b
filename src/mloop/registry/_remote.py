"""The registry through a tracking server: what ``log_model`` and ``load_model`` need when
the tracking URI is ``http(s)://…``.

The registry lives in the server's store, not this machine's, so registering a version
or resolving ``models:/NAME@alias`` must ask the server; the server applies the same
policies, approvals and audit log, with the API key's owner (``MLOOP_API_KEY``) as actor.
Calls go through the tracking backend's connection (same key, pool and error mapping),
so a server's 404/403/409 arrive here as ``NotFound``/``PermissionDenied``/
``PolicyViolation``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mloop.registry._entities import ModelVersion, RegisteredModel, TrustPolicy

if TYPE_CHECKING:  # httpx and the REST client are imported only when a server is used
    from mloop.tracking._rest_backend import RestBackend

PREFIX = "/registry/models"


class RemoteRegistry:
    """Registry calls answered by the tracking server behind ``backend``."""

    def __init__(self, backend: RestBackend) -> None:
        self._backend = backend

    def __repr__(self) -> str:
        return f"RemoteRegistry({self._backend.uri!r})"

    def register_model_version(
        self,
        name: str,
        source: str,
        *,
        run_id: str | None = None,
        package_digest: str,
        dataset_versions: tuple[str, ...] | list[str] = (),
        description: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> ModelVersion:
        body = {
            "source": source,
            "package_digest": package_digest,
            "run_id": run_id,
            "dataset_versions": list(dataset_versions),
            "description": description,
            "tags": tags or {},
        }
        return _version(self._call("POST", f"/{_q(name)}/versions", json=body))

    def get_registered_model(self, name: str) -> RegisteredModel:
        return RegisteredModel(**self._call("GET", f"/{_q(name)}"))

    def list_registered_models(self) -> list[RegisteredModel]:
        return [RegisteredModel(**m) for m in self._call("GET", "")["models"]]

    def list_model_versions(self, name: str) -> list[ModelVersion]:
        return [_version(v) for v in self._call("GET", f"/{_q(name)}/versions")["versions"]]

    def resolve(self, name: str, ref: str | int) -> ModelVersion:
        """Like :func:`mloop.registry.resolve`: a number, ``"@alias"`` or ``"latest"``."""
        text = str(ref)
        if text.startswith("@"):
            return _version(self._call("GET", f"/{_q(name)}/aliases/{_q(text[1:])}"))
        return _version(self._call("GET", f"/{_q(name)}/versions/{_q(text)}"))

    def get_trust_policy(self, name: str) -> TrustPolicy | None:
        found = self._call("GET", f"/{_q(name)}/trust-policy")["policy"]
        if found is None:
            return None
        return TrustPolicy(**{**found, "trusted_keys": tuple(found["trusted_keys"])})

    def set_alias(self, name: str, alias: str, version: int | str) -> ModelVersion:
        body = {"version": int(version)}
        return _version(self._call("PUT", f"/{_q(name)}/aliases/{_q(alias)}", json=body))

    def _call(self, method: str, path: str, *, json: Any = None) -> Any:
        return self._backend.request_json(method, PREFIX + path, json=json)


def remote_registry(tracking_uri: str | None = None) -> RemoteRegistry | None:
    """The server's registry when the tracking URI (default: the active one) is
    ``http(s)://…``; None when the registry is in a store this process opens itself."""
    from mloop.tracking import get_tracking_uri

    uri = tracking_uri or get_tracking_uri()
    if not uri.startswith(("http://", "https://")):
        return None
    from mloop.tracking._resolve import backend_for
    from mloop.tracking._rest_backend import RestBackend

    backend = backend_for(uri)
    assert isinstance(backend, RestBackend)
    return RemoteRegistry(backend)


def _version(data: dict[str, Any]) -> ModelVersion:
    fields = {k: v for k, v in data.items() if k != "uri"}
    fields["aliases"] = tuple(fields.get("aliases") or ())
    fields["dataset_versions"] = tuple(fields.get("dataset_versions") or ())
    return ModelVersion(**fields)


def _q(segment: str) -> str:
    return quote(segment, safe="")
