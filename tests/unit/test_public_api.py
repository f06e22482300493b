"""The public surface is pinned: a name added or dropped by accident fails here."""

from __future__ import annotations

import subprocess
import sys

import mloop
import mloop.data
import mloop.tracking


def test_top_level_api_is_the_tracking_api_the_model_functions_and_the_error_base() -> None:
    assert set(mloop.__all__) == {
        "MloopError", "__version__", "load_model", "log_model", *mloop.tracking.__all__
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
