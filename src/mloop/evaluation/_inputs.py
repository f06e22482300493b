"""What an evaluation reads: the models (pinned to exact packages) and the labelled rows.

An alias (``models:/churn@champion``) is resolved to its version number once, at the start,
so the candidate and baseline cannot move while they are being evaluated, and the report
names exactly what was compared. Each package is named by its digest too, which is what
links a blessing to a model version registered later from the same run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mloop.errors import InvalidInput, MloopError, NotFound
from mloop.evaluation._metrics import Outcomes

if TYPE_CHECKING:
    import pandas as pd

    from mloop.models import LoadedModel

MAX_CLASSES = 1000


@dataclass(frozen=True)
class ModelRef:
    """A loaded model and what names it: the URI asked for, the pinned URI, the package
    digest, the registered version (when it is one) and the run that logged it."""

    asked: str
    uri: str
    model: LoadedModel
    digest: str
    registered: tuple[str, int] | None
    run_id: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "uri": self.asked,
            "resolved": self.uri,
            "model": None if self.registered is None else self.registered[0],
            "version": None if self.registered is None else self.registered[1],
            "package_digest": self.digest,
            "run_id": self.run_id,
        }


def load(uri: str) -> ModelRef:
    from mloop import registry
    from mloop.models import load_model
    from mloop.models._package import package_digest
    from mloop.models._uris import ModelsUri, RunsUri, parse_model_uri
    from mloop.registry._remote import remote_registry

    if not isinstance(uri, str | os.PathLike) or not str(uri).strip():
        raise InvalidInput(
            f"model URI {uri!r} is empty; give models:/NAME/VERSION, runs:/… or a path"
        )
    asked = os.fspath(uri)
    parsed = parse_model_uri(asked)
    registered: tuple[str, int] | None = None
    pinned = asked
    run_id = parsed.run_id if isinstance(parsed, RunsUri) else None
    if isinstance(parsed, ModelsUri):
        version = (remote_registry() or registry).resolve(parsed.name, parsed.ref)
        registered = (version.name, int(version.version))
        pinned = f"models:/{version.name}/{version.version}"
        run_id = version.run_id
    model = load_model(pinned)
    return ModelRef(asked, pinned, model, package_digest(model.path), registered, run_id)


def load_frame(data: Any) -> tuple[pd.DataFrame, str | None]:
    """The rows to evaluate on and, for a dataset version, its ``NAME@VERSION``."""
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data.reset_index(drop=True), None
    if not isinstance(data, str | os.PathLike):
        raise InvalidInput(
            f"data must be a dataset version (NAME@VERSION), a CSV/Parquet file or a pandas "
            f"DataFrame, not {type(data).__name__}"
        )
    text = os.fspath(data)
    path = Path(text)
    if path.suffix.lower() in {".csv", ".parquet", ".pq"}:
        if not path.is_file():
            raise NotFound(f"data file {path} does not exist")
        frame = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
        return frame, None
    if "@" not in text:
        raise InvalidInput(
            f"data {text!r} is neither NAME@VERSION (a registered dataset version, e.g. "
            "adult@3 or adult@latest) nor a .csv/.parquet file"
        )
    from mloop.data import get_dataset_version

    version = get_dataset_version(text)
    return version.to_pandas(), f"{version.name}@{version.version}"


def feature_frame(model: LoadedModel, frame: pd.DataFrame, label: str) -> pd.DataFrame:
    """The columns the model reads: its signature's inputs, else the feature names a
    scikit-learn model was fitted on, else every column but the label."""
    signature = model.signature
    names = getattr(getattr(signature, "inputs", None), "names", None)
    if not names:
        fitted = getattr(model.model, "feature_names_in_", None)
        names = None if fitted is None else [str(n) for n in fitted]
    if names:
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise InvalidInput(
                f"the data lacks column(s) {', '.join(map(repr, missing))} that {model.uri} "
                "reads; evaluate on data with the model's input columns"
            )
        return frame[list(names)]
    return frame.drop(columns=[label])


def model_classes(model: LoadedModel) -> list[Any] | None:
    found = getattr(model.model, "classes_", None)
    return None if found is None else list(np.asarray(found).tolist())


def detect_task(candidate: LoadedModel, labels: pd.Series[Any], task: str | None) -> str:
    import pandas as pd

    if task is not None:
        if task not in ("classification", "regression"):
            raise InvalidInput(f"task {task!r} is not classification or regression")
        return task
    if hasattr(candidate, "predict_proba") or model_classes(candidate) is not None:
        return "classification"
    return "regression" if pd.api.types.is_float_dtype(labels) else "classification"


def class_list(
    candidate: LoadedModel, labels: pd.Series[Any], extra: Sequence[Any] = ()
) -> list[Any]:
    """The classes in the candidate's own order, then any others seen in labels or answers."""
    classes = model_classes(candidate) or []
    seen = set(classes)
    for value in sorted({*labels.dropna().tolist(), *extra}, key=str):
        if value not in seen:
            classes.append(value)
            seen.add(value)
    if len(classes) > MAX_CLASSES:
        raise InvalidInput(
            f"the label has {len(classes)} distinct values, over {MAX_CLASSES}: is it a "
            "regression target? pass task='regression'"
        )
    return classes


def predict(
    model: LoadedModel, features: pd.DataFrame, task: str
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]:
    """The model's answers and, for a classifier that gives them, its probabilities."""
    try:
        answers = np.asarray(model.predict(features))
        proba = None
        if task == "classification" and hasattr(model, "predict_proba"):
            proba = np.asarray(model.predict_proba(features), dtype=np.float64)
    except MloopError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidInput(f"{model.uri} could not predict on the data: {exc}") from exc
    if answers.ndim > 1:
        answers = answers.reshape(answers.shape[0], -1)[:, 0]
    return answers, proba


def outcomes(
    task: str,
    labels: np.ndarray[Any, Any],
    answers: np.ndarray[Any, Any],
    proba: np.ndarray[Any, Any] | None,
    classes: list[Any],
    own_classes: list[Any] | None,
    positive: int | None,
) -> Outcomes:
    """Answers in the metrics' shape; probabilities reordered to ``classes``."""
    if task == "regression":
        try:
            return Outcomes(task, labels.astype(np.float64), answers.astype(np.float64))
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"regression labels and answers must be numbers: {exc}") from exc
    import pandas as pd

    index = pd.Index(classes)
    y = index.get_indexer(labels)
    pred = index.get_indexer(answers)
    if (pred < 0).any():
        unknown = answers[pred < 0][0]
        raise InvalidInput(f"the model answered {unknown!r}, which is not a class of the label")
    full = None
    if proba is not None:
        own = own_classes or classes[: proba.shape[1]]
        if proba.shape[1] != len(own):
            raise InvalidInput(
                f"the model gave {proba.shape[1]} probabilities per row for {len(own)} classes"
            )
        full = np.zeros((labels.shape[0], len(classes)))
        full[:, index.get_indexer(own)] = proba
    return Outcomes(task, y, pred, full, tuple(classes), positive)
