"""Serving: the inference server, deployments, and the logs of what it answered.

``create_app(TARGET)`` builds the ASGI app (Open Inference Protocol / KServe V2 and
TF-Serving JSON) over a deployment or a model URI; ``serve`` runs it under uvicorn, as
``mloop serve`` does. Deployments (named, revisioned sets of model versions with roles and
guards) are managed with the ``*_deployment`` functions; every answered request lands in
the prediction log (``read_predictions``), joined to feedback by request id.

Names are imported on first use (PEP 562), so starting a server imports only what it runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mloop._lazy import lazy_attributes

if TYPE_CHECKING:
    from mloop.serving._app import create_app, serve
    from mloop.serving._atypical import AtypicalDetector, detector_for_model_version
    from mloop.serving._deployments import (
        create_deployment,
        current_revision,
        deployment_history,
        get_deployment,
        implicit_deployment,
        list_deployments,
        rollback_deployment,
        update_deployment,
    )
    from mloop.serving._feedback import FeedbackLog, read_feedback, record_feedback
    from mloop.serving._metrics import ServingMetrics
    from mloop.serving._predlog import PredictionLog, PredictionRecord, read_predictions
    from mloop.serving._review import label_review, list_review
    from mloop.serving._spec import Deployment, DeploymentSpec, Guards, Member, RateLimit

_LAZY: dict[str, str] = {
    "AtypicalDetector": "mloop.serving._atypical",
    "Deployment": "mloop.serving._spec",
    "DeploymentSpec": "mloop.serving._spec",
    "FeedbackLog": "mloop.serving._feedback",
    "Guards": "mloop.serving._spec",
    "Member": "mloop.serving._spec",
    "PredictionLog": "mloop.serving._predlog",
    "PredictionRecord": "mloop.serving._predlog",
    "RateLimit": "mloop.serving._spec",
    "ServingMetrics": "mloop.serving._metrics",
    "create_app": "mloop.serving._app",
    "create_deployment": "mloop.serving._deployments",
    "current_revision": "mloop.serving._deployments",
    "deployment_history": "mloop.serving._deployments",
    "detector_for_model_version": "mloop.serving._atypical",
    "get_deployment": "mloop.serving._deployments",
    "implicit_deployment": "mloop.serving._deployments",
    "label_review": "mloop.serving._review",
    "list_deployments": "mloop.serving._deployments",
    "list_review": "mloop.serving._review",
    "read_feedback": "mloop.serving._feedback",
    "read_predictions": "mloop.serving._predlog",
    "record_feedback": "mloop.serving._feedback",
    "rollback_deployment": "mloop.serving._deployments",
    "serve": "mloop.serving._app",
    "update_deployment": "mloop.serving._deployments",
}

__all__: list[str] = [
    "AtypicalDetector",
    "Deployment",
    "DeploymentSpec",
    "FeedbackLog",
    "Guards",
    "Member",
    "PredictionLog",
    "PredictionRecord",
    "RateLimit",
    "ServingMetrics",
    "create_app",
    "create_deployment",
    "current_revision",
    "deployment_history",
    "detector_for_model_version",
    "get_deployment",
    "implicit_deployment",
    "label_review",
    "list_deployments",
    "list_review",
    "read_feedback",
    "read_predictions",
    "record_feedback",
    "rollback_deployment",
    "serve",
    "update_deployment",
]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
