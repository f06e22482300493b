"""The public surface of mloop.serving is pinned, and every name resolves."""

from __future__ import annotations

import subprocess
import sys

import mloop.serving


def test_public_names() -> None:
    assert set(mloop.serving.__all__) == {
        "AtypicalDetector", "Deployment", "DeploymentSpec", "FeedbackLog", "Guards", "Member",
        "PredictionLog", "PredictionRecord", "RateLimit", "ServingMetrics", "create_app",
        "create_deployment", "current_revision", "deployment_history",
        "detector_for_model_version", "get_deployment", "implicit_deployment", "label_review",
        "list_deployments", "list_review", "read_feedback", "read_predictions",
        "record_feedback", "rollback_deployment", "serve", "update_deployment",
    }  # fmt: skip
    for name in mloop.serving.__all__:
        assert getattr(mloop.serving, name) is not None
    assert set(mloop.serving.__all__) <= set(dir(mloop.serving))


def test_importing_the_package_loads_no_server_stack() -> None:
    code = (
        "import sys, mloop.serving; heavy = {'starlette', 'uvicorn', 'sklearn', 'pandas', "
        "'sqlalchemy'}; print(sorted(heavy & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
