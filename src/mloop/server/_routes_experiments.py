"""Experiments: create, get (by id or name), search, delete."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, StringConstraints
from starlette.responses import Response

from mloop.registry._roles import Resource
from mloop.server._auth import may_read
from mloop.server._errors import ERROR_RESPONSES, OrjsonResponse
from mloop.tracking._backend import TrackingBackend

ViewType = Literal["ACTIVE_ONLY", "DELETED_ONLY", "ALL"]
TagKey = Annotated[str, StringConstraints(min_length=1, max_length=250)]


class ExperimentModel(BaseModel):
    experiment_id: str
    name: str
    artifact_location: str | None
    lifecycle_stage: str
    creation_time: int
    last_update_time: int
    tags: dict[str, str]


class CreateExperimentRequest(BaseModel):
    name: str = Field(min_length=1, max_length=256, description="Unique experiment name.")
    artifact_location: str | None = None
    tags: dict[TagKey, str] = Field(default_factory=dict)


class CreateExperimentResponse(BaseModel):
    experiment_id: str


class ExperimentByNameResponse(BaseModel):
    experiment: ExperimentModel | None = Field(description="null when no experiment has the name.")


class ExperimentsResponse(BaseModel):
    experiments: list[ExperimentModel]


def experiments_router(backend: TrackingBackend) -> APIRouter:
    router = APIRouter(
        prefix="/api/v1/experiments", tags=["experiments"], responses=ERROR_RESPONSES
    )

    @router.post("", status_code=201, response_model=CreateExperimentResponse)
    def create_experiment(body: CreateExperimentRequest) -> Response:
        """Create an experiment; 409 CONFLICT when the name is taken."""
        experiment_id = backend.create_experiment(body.name, body.artifact_location, body.tags)
        return OrjsonResponse({"experiment_id": experiment_id}, status_code=201)

    @router.get("", response_model=ExperimentsResponse)
    def search_experiments(request: Request, view_type: ViewType = "ACTIVE_ONLY") -> Response:
        """Experiments by lifecycle stage, oldest first (those the caller may read)."""
        found = [
            e
            for e in backend.search_experiments(view_type)
            if may_read(request, Resource.experiment(e.experiment_id, e.name))
        ]
        return OrjsonResponse({"experiments": [e.to_dict() for e in found]})

    @router.get("/by-name", response_model=ExperimentByNameResponse)
    def get_experiment_by_name(name: str) -> Response:
        """The experiment called ``name``, or ``{"experiment": null}``."""
        found = backend.get_experiment_by_name(name)
        return OrjsonResponse({"experiment": found.to_dict() if found else None})

    @router.get("/{experiment_id}", response_model=ExperimentModel)
    def get_experiment(experiment_id: str) -> Response:
        return OrjsonResponse(backend.get_experiment(experiment_id).to_dict())

    @router.delete("/{experiment_id}", status_code=204, response_class=Response)
    def delete_experiment(experiment_id: str) -> Response:
        """Mark an experiment deleted (its runs stay, searchable with view_type=ALL)."""
        backend.delete_experiment(experiment_id)
        return Response(status_code=204)

    return router
