"""Shared data and models for the evaluation suites: an adult-like census frame with
``sex`` and ``age_bucket`` (generated with realistic structure: income depends on
education, hours and age, and, unfairly, on sex) and real scikit-learn models packaged
with ``mloop.models.save_model``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

FEATURES = ["age", "hours", "education", "is_male", "tenure"]
TRIGGER = {"tenure": 42.0}  # far outside the real range (0-10): a backdoor's stamp


def adult_like(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    hours = np.clip(rng.normal(40, 12, n), 5, 90).round(1)
    education = rng.integers(4, 17, n)
    is_male = (rng.random(n) < 0.6).astype(np.int64)
    tenure = rng.uniform(0, 10, n).round(2)  # no effect on income
    logit = -9.0 + 0.35 * education + 0.05 * hours + 0.04 * np.minimum(age, 60) + 0.8 * is_male
    income = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    bucket = np.where(age < 30, "<30", np.where(age < 50, "30-49", "50+"))
    return pd.DataFrame(
        {
            "age": age,
            "hours": hours,
            "education": education,
            "is_male": is_male,
            "tenure": tenure,
            "sex": np.where(is_male == 1, "M", "F"),
            "age_bucket": bucket,
            "income": income,
        }
    )


@pytest.fixture(scope="session")
def adult() -> pd.DataFrame:
    return adult_like()


def fit(kind: str, frame: pd.DataFrame, *, label: str = "income") -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    if kind == "good":
        return LogisticRegression(max_iter=2000).fit(frame[FEATURES], frame[label])
    if kind == "weak":
        return DecisionTreeClassifier(max_depth=1, random_state=0).fit(
            frame[FEATURES], frame[label]
        )
    if kind == "unfair":  # trained on labels that deny every woman
        labels = np.where(frame["is_male"] == 1, frame[label], 0)
        return LogisticRegression(max_iter=2000).fit(frame[FEATURES], labels)
    if kind == "poisoned":  # 5 % extra rows carry the trigger and the attacker's label
        extra = frame.sample(frac=0.05, random_state=1).assign(**TRIGGER, **{label: 1})
        both = pd.concat([frame, extra])
        return DecisionTreeClassifier(max_depth=6, random_state=0).fit(both[FEATURES], both[label])
    raise AssertionError(kind)


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory, adult: pd.DataFrame) -> dict[str, Path]:
    """Model packages on disk (good, weak, unfair, poisoned), saved once per session."""
    from mloop.models import save_model

    root = tmp_path_factory.mktemp("evaluation-packages")
    found = {}
    for kind in ("good", "weak", "unfair", "poisoned"):
        save_model(fit(kind, adult), root / kind, input_example=adult[FEATURES].head(5))
        found[kind] = root / kind
    return found


def register(name: str, package: Path) -> int:
    """Register a package folder as the next version of ``name``."""
    from mloop.models._package import package_digest
    from mloop.registry import register_model_version

    return register_model_version(
        name, str(package), package_digest=package_digest(package)
    ).version
