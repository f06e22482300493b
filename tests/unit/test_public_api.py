"""The public surface is pinned: a name added or dropped by accident fails here."""

from __future__ import annotations

import subprocess
import sys

import pytest

import mloop
import mloop.data
import mloop.tracking


def test_top_level_api_is_the_tracking_api_the_model_functions_and_the_error_base() -> None:
    assert set(mloop.__all__) == {
        "MloopError", "__version__", "load_model", "log_model", "pipeline", "step",
        *mloop.tracking.__all__,
    }  # fmt: skip
    for name in mloop.__all__:
        assert getattr(mloop, name) is not None


def test_the_model_functions_are_the_models_package_ones() -> None:
    import mloop.models

    assert mloop.log_model is mloop.models.log_model
    assert mloop.load_model is mloop.models.load_model


def test_importing_mloop_loads_no_model_library() -> None:
    """The flavors import their libraries when used, so tracking code stays light."""
    code = (
        "import sys, mloop, mloop.models; heavy = {'skops', 'onnx', 'onnxruntime', 'xgboost', "
        "'lightgbm', 'sklearn', 'pandas'}; print(sorted(heavy & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_model_package_api() -> None:
    import mloop.models

    package_names = {
        "ColumnSchema", "ColumnSpec", "Flavor", "LoadedModel", "Manifest", "ModelInfo",
        "ModelSignature", "Predictor", "PythonModel", "TensorSchema", "infer_signature",
        "load_model", "log_model", "register_flavor", "resolve_package", "save_model",
        "verify_package",
    }  # fmt: skip
    assert package_names <= set(mloop.models.__all__)


def test_the_data_package_is_loaded_on_first_use() -> None:
    assert mloop.data.register is mloop.data._versions.register


def test_data_api() -> None:
    assert set(mloop.data.__all__) == {
        "Anomaly", "CorruptDataError", "DataSourceError", "DatasetDiff", "DatasetStatistics",
        "DatasetVersion", "DriftConfig", "DriftReport", "EmptyDataError", "Feature",
        "FeatureDrift", "FeatureKind", "FeatureStats", "Moments", "SanitizeReport", "Schema",
        "UnknownFormatError", "compute_statistics", "detect_drift", "diff",
        "get_dataset_version", "infer_schema", "list_datasets", "list_versions", "register",
        "register_drift_method", "register_executor", "render_drift_html", "sanitize",
        "statistics_of_table", "validate_statistics",
    }  # fmt: skip


def test_tracking_api_names_follow_mlflow() -> None:
    mlflow_names = {
        "set_experiment", "start_run", "active_run", "end_run", "log_param", "log_params",
        "log_metric", "log_metrics", "set_tag", "set_tags", "log_artifact", "log_artifacts",
        "log_dict", "log_figure", "log_text", "get_run", "get_metric_history", "search_runs",
        "log_input", "set_tracking_uri", "get_tracking_uri", "create_experiment",
    }  # fmt: skip
    assert mlflow_names <= set(mloop.tracking.__all__)


def _run_fresh(code: str) -> str:
    """Run ``code`` in a fresh interpreter (nothing imported yet); return its stdout."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _fresh_modules(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter; return the heavy modules it left loaded."""
    probe = (
        f"{code}\nimport sys\n"
        "heavy = {'sqlalchemy', 'alembic', 'pandas', 'numpy', 'pyarrow', 'pydantic', "
        "'pydantic_settings', 'fsspec', 'httpx', 'cryptography', 'mloop.tracking', "
        "'mloop.config', 'mloop.store'}\n"
        "print(','.join(sorted(heavy & set(sys.modules))))"
    )
    return [name for name in _run_fresh(probe).strip().split(",") if name]


def test_importing_mloop_loads_nothing_heavy() -> None:
    """Every public name loads on first use (PEP 562), so `import mloop` is cheap."""
    assert _fresh_modules("import mloop") == []


def test_the_command_line_and_the_scanner_load_nothing_heavy() -> None:
    """`mloop models scan` stays close to a bare interpreter: the command tree and the
    scanner import neither the stores, the settings nor the data libraries."""
    code = "import mloop.cli\nfrom mloop.models import scan_path"
    assert _fresh_modules(code) == []


def test_every_public_name_resolves_in_a_fresh_process_and_is_listed_by_dir() -> None:
    code = (
        "import mloop, mloop.models\n"
        "for module in (mloop, mloop.models):\n"
        "    missing = [n for n in module.__all__ if getattr(module, n, None) is None]\n"
        "    assert not missing, missing\n"
        "    assert set(module.__all__) <= set(dir(module)), module\n"
        "assert mloop.start_run is mloop.tracking.start_run\n"
        "assert mloop.MloopError is mloop.errors.MloopError\n"
        "assert mloop.models.scan_path is mloop.models._scan.scan_path\n"
    )
    _run_fresh(code)


def test_an_unknown_name_is_an_attribute_error() -> None:
    import mloop.models

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = mloop.nope  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = mloop.models.nope  # type: ignore[attr-defined]
