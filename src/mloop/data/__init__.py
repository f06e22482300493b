"""Data: versioned datasets with lineage, mergeable statistics, schema, validation, drift.

The TFX Data Validation part of the loop. Statistics are computed once per dataset version
and stored with it, so validation and drift against training data never re-read it.
"""

from mloop.data._diff import DatasetDiff, diff
from mloop.data._drift import (
    DriftConfig,
    DriftReport,
    FeatureDrift,
    detect_drift,
    render_drift_html,
)
from mloop.data._drift_methods import register_drift_method
from mloop.data._executors import register_executor
from mloop.data._model import FeatureKind
from mloop.data._readers import (
    CorruptDataError,
    DataSourceError,
    EmptyDataError,
    UnknownFormatError,
)
from mloop.data._sanitize import SanitizeReport, sanitize
from mloop.data._schema import Feature, Schema, infer_schema
from mloop.data._statistics import (
    DatasetStatistics,
    FeatureStats,
    Moments,
    compute_statistics,
    statistics_of_table,
)
from mloop.data._validation import Anomaly, validate_statistics
from mloop.data._versions import (
    DatasetVersion,
    get_dataset_version,
    list_datasets,
    list_versions,
    register,
)

__all__ = [
    "Anomaly",
    "CorruptDataError",
    "DataSourceError",
    "DatasetDiff",
    "DatasetStatistics",
    "DatasetVersion",
    "DriftConfig",
    "DriftReport",
    "EmptyDataError",
    "Feature",
    "FeatureDrift",
    "FeatureKind",
    "FeatureStats",
    "Moments",
    "SanitizeReport",
    "Schema",
    "UnknownFormatError",
    "compute_statistics",
    "detect_drift",
    "diff",
    "get_dataset_version",
    "infer_schema",
    "list_datasets",
    "list_versions",
    "register",
    "register_drift_method",
    "register_executor",
    "render_drift_html",
    "sanitize",
    "statistics_of_table",
    "validate_statistics",
]
