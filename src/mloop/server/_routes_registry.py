"""The model registry over HTTP: what a remote client needs to register and load models.

Each route calls the registry library on the server's own store, so its policies,
approvals and audit log apply unchanged. The actor is the principal of the Bearer key;
with auth off it is the server's configured user (``MLOOP_USER``), as for a local call.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from mloop import registry
from mloop.server._auth import may_read, principal_of
from mloop.server._errors import ERROR_RESPONSES, OrjsonResponse
from mloop.store import MetadataStore

ModelName = Annotated[str, Path(max_length=256)]


class ModelVersionModel(BaseModel):
    name: str
    version: int
    source: str
    package_digest: str
    run_id: str | None
    uploader: str
    status: str
    description: str | None
    tags: dict[str, str]
    aliases: list[str]
    dataset_versions: list[str]
    creation_time: int
    last_update_time: int
    uri: str


class RegisteredModelModel(BaseModel):
    name: str
    description: str | None
    tags: dict[str, str]
    latest_version: int | None
    num_versions: int
    aliases: dict[str, int]
    creation_time: int
    last_update_time: int


class ModelsResponse(BaseModel):
    models: list[RegisteredModelModel]


class VersionsResponse(BaseModel):
    versions: list[ModelVersionModel]


class RegisterVersionRequest(BaseModel):
    source: str = Field(max_length=1024, description="runs:/RUN_ID/name or a package path.")
    package_digest: str = Field(max_length=128, description="SHA-256 of the manifest file.")
    run_id: str | None = Field(default=None, max_length=128)
    dataset_versions: list[str] = Field(
        default_factory=list, description="name@N; default: the run's training inputs."
    )
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class TrustPolicyModel(BaseModel):
    require_signature: bool
    trusted_keys: list[str] = Field(description="PEM public keys.")
    require_clean_scan: bool
    required_approvals: int
    approver_not_uploader: bool
    require_evaluation: bool


class TrustPolicyResponse(BaseModel):
    policy: TrustPolicyModel | None


class SetAliasRequest(BaseModel):
    version: int = Field(ge=1)


def registry_router(store: MetadataStore) -> APIRouter:
    router = APIRouter(
        prefix="/api/v1/registry/models", tags=["registry"], responses=ERROR_RESPONSES
    )

    @router.get("", response_model=ModelsResponse)
    def list_models(request: Request) -> Response:
        """Registered models the caller may read, by name."""
        found = [
            m.to_dict()
            for m in registry.list_registered_models(store=store)
            if may_read(request, registry.Resource.model(m.name))
        ]
        return OrjsonResponse({"models": found})

    @router.get("/{name}", response_model=RegisteredModelModel)
    def get_model(name: ModelName) -> Response:
        return OrjsonResponse(registry.get_registered_model(name, store=store).to_dict())

    @router.get("/{name}/versions", response_model=VersionsResponse)
    def list_versions(name: ModelName, include_archived: bool = True) -> Response:
        """Versions, oldest first."""
        found = registry.list_model_versions(name, include_archived=include_archived, store=store)
        return OrjsonResponse({"versions": [v.to_dict() for v in found]})

    @router.post("/{name}/versions", status_code=201, response_model=ModelVersionModel)
    def register_version(
        name: ModelName, body: RegisterVersionRequest, request: Request
    ) -> Response:
        """Register the next version of ``name`` (created on first use)."""
        version = registry.register_model_version(
            name,
            body.source,
            run_id=body.run_id,
            package_digest=body.package_digest,
            dataset_versions=body.dataset_versions,
            description=body.description,
            tags=body.tags,
            actor=principal_of(request),
            store=store,
        )
        return OrjsonResponse(version.to_dict(), status_code=201)

    @router.get("/{name}/versions/{version}", response_model=ModelVersionModel)
    def get_version(name: ModelName, version: Annotated[str, Path(max_length=20)]) -> Response:
        """A version by number, or ``latest`` (the newest active one)."""
        return OrjsonResponse(_version(registry.resolve(name, version, store=store)))

    @router.get("/{name}/trust-policy", response_model=TrustPolicyResponse)
    def get_trust_policy(name: ModelName) -> Response:
        """What loading a version requires beyond its digests (null: nothing more); a
        remote ``load_model`` enforces it as a local one does."""
        policy = registry.get_trust_policy(name, store=store)
        return OrjsonResponse({"policy": policy.to_dict() if policy is not None else None})

    @router.get("/{name}/aliases/{alias}", response_model=ModelVersionModel)
    def resolve_alias(name: ModelName, alias: Annotated[str, Path(max_length=256)]) -> Response:
        """The version ``@alias`` points at."""
        return OrjsonResponse(_version(registry.resolve(name, f"@{alias}", store=store)))

    @router.put("/{name}/aliases/{alias}", response_model=ModelVersionModel)
    def set_alias(
        name: ModelName,
        alias: Annotated[str, Path(max_length=256)],
        body: SetAliasRequest,
        request: Request,
    ) -> Response:
        """Point ``@alias`` at a version, if the model's trust policy allows it (else 409
        POLICY_VIOLATION listing what is missing)."""
        version = registry.set_alias(
            name, alias, body.version, actor=principal_of(request), store=store
        )
        return OrjsonResponse(version.to_dict())

    return router


def _version(version: registry.ModelVersion) -> dict[str, Any]:
    return version.to_dict()
