"""The demo's training code: a few candidate credit-default models, each a tracked run.

This is the file the demo commits into its project repository, so the runs it makes
record a real git commit. It is written the way user code would be: the public fluent
API, a dataset version logged as the run's input, the model logged as a package with its
signature (inferred from an input example) — and nothing registered yet: only the
candidate that passes the gate is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import mloop
from mloop.demo._population import CATEGORICAL, FEATURES, LABEL

if TYPE_CHECKING:
    import pandas as pd

    from mloop.data import DatasetVersion
    from mloop.models import ModelInfo

EXPERIMENT = "credit-demo"
MODEL_NAME = "credit-default"
VALIDATION_SHARE = 0.25


@dataclass(frozen=True)
class Candidate:
    """One model to train: a family, its hyper-parameters and how to build it."""

    name: str
    family: str
    params: dict[str, Any] = field(default_factory=dict)

    def build(self) -> Any:
        """A scikit-learn pipeline: categories one-hot encoded, numbers scaled, then the
        classifier; the whole pipeline is the model, so serving takes raw columns."""
        from sklearn.compose import ColumnTransformer
        from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        numeric = [f for f in FEATURES if f not in CATEGORICAL]
        features = ColumnTransformer(
            [
                ("categories", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL)),
                ("numbers", StandardScaler(), numeric),
            ]
        )
        builders: dict[str, Callable[..., Any]] = {
            "logistic_regression": lambda **p: LogisticRegression(max_iter=1000, **p),
            "random_forest": lambda **p: RandomForestClassifier(random_state=0, n_jobs=1, **p),
            "gradient_boosting": lambda **p: GradientBoostingClassifier(random_state=0, **p),
        }
        return make_pipeline(features, builders[self.family](**self.params))


def candidates(quick: bool = False) -> list[Candidate]:
    """The models the demo tries; ``quick`` keeps to two small ones."""
    if quick:
        return [
            Candidate("logreg-C1", "logistic_regression", {"C": 1.0}),
            Candidate("forest-40x6", "random_forest", {"n_estimators": 40, "max_depth": 6}),
        ]
    return [
        Candidate("logreg-C0.1", "logistic_regression", {"C": 0.1}),
        Candidate("logreg-C1", "logistic_regression", {"C": 1.0}),
        Candidate("forest-100x8", "random_forest", {"n_estimators": 100, "max_depth": 8}),
        Candidate(
            "boost-100",
            "gradient_boosting",
            {"n_estimators": 100, "learning_rate": 0.1, "max_depth": 2},
        ),
    ]


@dataclass(frozen=True)
class TrainedCandidate:
    """A finished candidate run: its package and validation metrics."""

    candidate: Candidate
    run_id: str
    model: ModelInfo
    metrics: dict[str, float]


def train_candidates(
    dataset: DatasetVersion,
    models: Sequence[Candidate],
    *,
    tags: dict[str, str] | None = None,
    on_done: Callable[[Candidate], None] | None = None,
) -> list[TrainedCandidate]:
    """Train each candidate on ``dataset`` as its own run; best validation ROC-AUC first."""
    frame = dataset.to_pandas()
    train, valid = split(frame)
    mloop.set_experiment(EXPERIMENT)
    mloop.seed_everything(0)
    trained = []
    for candidate in models:
        trained.append(_train_one(candidate, dataset, train, valid, tags or {}))
        if on_done is not None:
            on_done(candidate)
    return sorted(trained, key=lambda t: -t.metrics["roc_auc"])


def fit(rows: pd.DataFrame, family: str = "logistic_regression", **params: Any) -> Any:
    """The retraining pipeline's trainer (``mloop.demo._training:fit``): the rows it is
    given, label included, to one fitted candidate of ``family``."""
    model = Candidate(family, family, params).build()
    return model.fit(rows[list(FEATURES)], rows[LABEL])


def split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training and validation rows, stratified by the label, the same every time."""
    from sklearn.model_selection import train_test_split

    train, valid = train_test_split(
        frame, test_size=VALIDATION_SHARE, stratify=frame[LABEL], random_state=0
    )
    return train, valid


def _train_one(
    candidate: Candidate,
    dataset: DatasetVersion,
    train: pd.DataFrame,
    valid: pd.DataFrame,
    tags: dict[str, str],
) -> TrainedCandidate:
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score, roc_curve

    features = list(FEATURES)
    with mloop.start_run(run_name=candidate.name, tags={"model": candidate.family, **tags}) as run:
        mloop.log_input(dataset, context="training")
        mloop.log_params(
            {"model": candidate.family, **candidate.params, "validation_share": VALIDATION_SHARE}
        )
        started = time.perf_counter()
        model = candidate.build().fit(train[features], train[LABEL])
        proba = model.predict_proba(valid[features])[:, 1]
        predicted = (proba >= 0.5).astype(int)
        metrics = {
            "accuracy": float(accuracy_score(valid[LABEL], predicted)),
            "f1": float(f1_score(valid[LABEL], predicted)),
            "roc_auc": float(roc_auc_score(valid[LABEL], proba)),
            "fit_seconds": time.perf_counter() - started,
        }
        mloop.log_metrics(metrics)
        fpr, tpr, _ = roc_curve(valid[LABEL], proba)
        mloop.log_figure(_roc_figure(fpr, tpr, metrics["roc_auc"], candidate.name), "roc.png")
        info = mloop.log_model(model, "model", input_example=train[features].head(5))
    return TrainedCandidate(candidate, run.info.run_id, info, metrics)


def _roc_figure(fpr: Any, tpr: Any, auc: float, title: str) -> Any:
    # A Figure without pyplot: no GUI backend is chosen and no global figure state kept.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.2, 3.6), layout="constrained")
    ax = figure.add_subplot()
    ax.plot(fpr, tpr, label=f"AUC {auc:.3f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"{title}: ROC curve (validation)")
    ax.legend(loc="lower right")
    return figure
