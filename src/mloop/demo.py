"""``mloop demo``: train a few scikit-learn models and track them, to see mloop at work.

Every model is trained on scikit-learn's bundled breast-cancer data set (nothing is
downloaded), cross-validated fold by fold so each run has metric curves, then scored on a
held-out split with a confusion matrix, a ROC curve and a classification report logged as
artifacts. Everything goes through the public fluent API, exactly as user code would.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import mloop
from mloop.errors import ConfigError
from mloop.tracking import Run

if TYPE_CHECKING:
    from rich.console import Console

EXPERIMENT = "demo"
DATASET = "sklearn.datasets.load_breast_cancer"
TEST_SIZE = 0.25


@dataclass(frozen=True)
class Candidate:
    """One model to train: a family, its hyper-parameters and how to build it."""

    name: str
    family: str
    params: dict[str, Any] = field(default_factory=dict)

    def build(self) -> Any:
        from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        builders: dict[str, Callable[..., Any]] = {
            "logistic_regression": lambda **p: make_pipeline(
                StandardScaler(), LogisticRegression(max_iter=2000, **p)
            ),
            "random_forest": lambda **p: RandomForestClassifier(random_state=0, n_jobs=1, **p),
            "gradient_boosting": lambda **p: GradientBoostingClassifier(random_state=0, **p),
        }
        return builders[self.family](**self.params)


def candidates(quick: bool = False) -> list[Candidate]:
    """The models the demo trains; ``quick`` keeps to a few small ones (for tests)."""
    if quick:
        return [
            Candidate("logreg-C0.1", "logistic_regression", {"C": 0.1}),
            Candidate("logreg-C1", "logistic_regression", {"C": 1.0}),
            Candidate("forest-20x3", "random_forest", {"n_estimators": 20, "max_depth": 3}),
            Candidate(
                "boost-20",
                "gradient_boosting",
                {"n_estimators": 20, "learning_rate": 0.3, "max_depth": 2},
            ),
        ]
    return [
        *(
            Candidate(f"logreg-C{c:g}", "logistic_regression", {"C": c})
            for c in (0.01, 0.1, 1.0, 10.0)
        ),
        Candidate("forest-50x4", "random_forest", {"n_estimators": 50, "max_depth": 4}),
        Candidate("forest-200", "random_forest", {"n_estimators": 200, "max_depth": None}),
        Candidate(
            "boost-100",
            "gradient_boosting",
            {"n_estimators": 100, "learning_rate": 0.1, "max_depth": 2},
        ),
        Candidate(
            "boost-200",
            "gradient_boosting",
            {"n_estimators": 200, "learning_rate": 0.05, "max_depth": 3},
        ),
    ]


def run_demo(console: Console | None = None, *, quick: bool = False) -> list[Run]:
    """Train and track the demo models; return their runs, best F1 first.

    With a ``console``, a progress bar shows the training loop on it; without one the
    demo is silent. Runs land in the ``demo`` experiment of the configured store.
    """
    try:
        import numpy as np
        from sklearn.base import clone
        from sklearn.datasets import load_breast_cancer
        from sklearn.metrics import (
            accuracy_score,
            classification_report,
            confusion_matrix,
            f1_score,
            log_loss,
            precision_score,
            recall_score,
            roc_auc_score,
            roc_curve,
        )
        from sklearn.model_selection import StratifiedKFold, train_test_split
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"the demo needs {exc.name or 'scikit-learn'}; install it with "
            "`pip install 'mloop[ml]'`"
        ) from exc
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    data = load_breast_cancer()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=TEST_SIZE, stratify=data.target, random_state=0
    )
    folds = 3 if quick else 5
    models = candidates(quick)
    batch = uuid.uuid4().hex[:12]

    mloop.set_experiment(EXPERIMENT)
    mloop.seed_everything(0)
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=console is None,
    )
    with progress:
        task = progress.add_task("training", total=len(models) * (folds + 1))
        for candidate in models:
            progress.update(task, description=f"training {candidate.name}")
            with mloop.start_run(
                run_name=candidate.name, tags={"demo_batch": batch, "model": candidate.family}
            ):
                mloop.log_params(
                    {
                        "model": candidate.family,
                        **candidate.params,
                        "cv_folds": folds,
                        "test_size": TEST_SIZE,
                    }
                )
                mloop.log_input(DATASET, context="training")

                splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
                fold_f1 = []
                for fold, (fit_idx, val_idx) in enumerate(splitter.split(x_train, y_train)):
                    model = clone(candidate.build()).fit(x_train[fit_idx], y_train[fit_idx])
                    predicted = model.predict(x_train[val_idx])
                    proba = model.predict_proba(x_train[val_idx])[:, 1]
                    f1 = float(f1_score(y_train[val_idx], predicted))
                    fold_f1.append(f1)
                    mloop.log_metrics(
                        {
                            "cv_accuracy": float(accuracy_score(y_train[val_idx], predicted)),
                            "cv_f1": f1,
                            "cv_roc_auc": float(roc_auc_score(y_train[val_idx], proba)),
                        },
                        step=fold,
                    )
                    progress.advance(task)

                started = time.perf_counter()
                model = candidate.build().fit(x_train, y_train)
                fit_seconds = time.perf_counter() - started
                predicted = model.predict(x_test)
                proba = model.predict_proba(x_test)[:, 1]
                auc = float(roc_auc_score(y_test, proba))
                mloop.log_metrics(
                    {
                        "accuracy": float(accuracy_score(y_test, predicted)),
                        "f1": float(f1_score(y_test, predicted)),
                        "precision": float(precision_score(y_test, predicted)),
                        "recall": float(recall_score(y_test, predicted)),
                        "roc_auc": auc,
                        "cv_f1_mean": float(np.mean(fold_f1)),
                        "fit_seconds": fit_seconds,
                    }
                )
                if hasattr(model, "staged_predict_proba"):
                    # Boosting grows stage by stage: its test loss per stage is a training curve.
                    for stage, staged in enumerate(model.staged_predict_proba(x_test)):
                        mloop.log_metric(
                            "test_log_loss", float(log_loss(y_test, staged)), step=stage
                        )

                names = [str(n) for n in data.target_names]
                mloop.log_figure(
                    _confusion_figure(confusion_matrix(y_test, predicted), names, candidate.name),
                    "figures/confusion_matrix.png",
                )
                fpr, tpr, _ = roc_curve(y_test, proba)
                mloop.log_figure(
                    _roc_figure(fpr, tpr, auc, candidate.name), "figures/roc_curve.png"
                )
                mloop.log_dict(
                    classification_report(y_test, predicted, target_names=names, output_dict=True),
                    "classification_report.json",
                )
                progress.advance(task)
        progress.update(task, description="done")

    runs = mloop.search_runs(
        experiment_names=[EXPERIMENT],
        filter_string=f"tags.demo_batch = '{batch}'",
        order_by=["metrics.f1 DESC"],
    )
    assert isinstance(runs, list)
    return runs


def _confusion_figure(matrix: Any, labels: list[str], title: str) -> Any:
    # Figure without pyplot: no GUI backend is chosen and no global figure state kept.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.2, 3.6), layout="constrained")
    ax = figure.add_subplot()
    image = ax.imshow(matrix, cmap="Blues")
    high = matrix.max() / 2
    for (row, col), count in _cells(matrix):
        ax.text(
            col,
            row,
            str(count),
            ha="center",
            va="center",
            color="white" if count > high else "black",
        )
    ax.set_xticks(range(len(labels)), labels=labels)
    ax.set_yticks(range(len(labels)), labels=labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}: confusion matrix")
    figure.colorbar(image, ax=ax)
    return figure


def _cells(matrix: Any) -> list[tuple[tuple[int, int], int]]:
    return [
        ((row, col), int(matrix[row][col]))
        for row in range(len(matrix))
        for col in range(len(matrix[row]))
    ]


def _roc_figure(fpr: Any, tpr: Any, auc: float, title: str) -> Any:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.2, 3.6), layout="constrained")
    ax = figure.add_subplot()
    ax.plot(fpr, tpr, label=f"AUC {auc:.3f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"{title}: ROC curve")
    ax.legend(loc="lower right")
    return figure


__all__ = ["Candidate", "candidates", "run_demo"]
