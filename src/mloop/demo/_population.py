"""A synthetic credit-applicant population with the structure real credit data has.

No data set bundled with scikit-learn has the demographic columns a fairness-aware,
sliced evaluation needs (``sex``, an age bucket) together with a binary outcome, and the
demo must not download anything. So applicants are drawn from a small generative model:
income grows with age and differs by region, debt ratio and late payments are correlated,
and the chance of default is a logistic function of those features. ``era`` changes the
world the way it changes in production: ``"after"`` is a younger, more indebted
population (a new marketing channel) in a harsher economy, where debt weighs more on
default than it used to — covariate drift *and* concept drift, so a model trained before
the change measurably loses accuracy and a model retrained on fresh labels wins it back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import pandas as pd

Era = Literal["before", "after"]

LABEL = "default"
FEATURES = (
    "age",
    "age_bucket",
    "sex",
    "region",
    "income",
    "debt_ratio",
    "credit_lines",
    "late_payments",
    "employment_years",
)
CATEGORICAL = ("age_bucket", "sex", "region")
SLICES = ("sex", "age_bucket")
REGIONS = ("north", "south", "east", "west")
AGE_BUCKETS = ((18, "18-29"), (30, "30-44"), (45, "45-59"), (60, "60+"))


def age_bucket(age: int) -> str:
    """The bucket an age falls in: the slices evaluation and monitoring report on."""
    label = AGE_BUCKETS[0][1]
    for lower, name in AGE_BUCKETS:
        if age >= lower:
            label = name
    return label


def applicants(n: int, *, era: Era = "before", seed: int = 0) -> pd.DataFrame:
    """``n`` applicants with their outcome (``default``: 1 = did not repay)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    after = era == "after"
    age = np.clip(rng.normal(33 if after else 44, 9 if after else 13, n), 18, 85).astype(int)
    sex = rng.choice(["F", "M"], n, p=[0.5, 0.5])
    region = rng.choice(REGIONS, n, p=[0.2, 0.2, 0.2, 0.4] if after else [0.3, 0.3, 0.2, 0.2])
    regional = {"north": 1.1, "south": 0.9, "east": 0.85, "west": 1.05}
    income = np.round(
        np.exp(rng.normal(np.log(22 + 0.6 * np.minimum(age, 60)), 0.35, n))
        * np.vectorize(regional.__getitem__)(region)
        * (0.85 if after else 1.0),
        1,
    )
    debt_ratio = np.round(np.clip(rng.beta(2.6 if after else 2.0, 5.0, n), 0.0, 0.99), 3)
    credit_lines = rng.poisson(2.0 + (age - 18) / 15, n)
    late_payments = rng.poisson(0.2 + 2.2 * debt_ratio, n)
    employment_years = np.round(np.minimum(age - 18, rng.exponential(7.0, n)), 1)

    debt_weight = 6.0 if after else 3.0
    logit = (
        -1.5
        + debt_weight * (debt_ratio - 0.3)
        + 0.55 * late_payments
        - 0.025 * (income - 45)
        - 0.03 * employment_years
        + 0.15 * (credit_lines > 6)
        + (1.3 * (region == "west") + 0.8 * (debt_ratio > 0.45) if after else 0.0)
    )
    default = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "age": age,
            "age_bucket": [age_bucket(int(a)) for a in age],
            "sex": sex,
            "region": region,
            "income": income,
            "debt_ratio": debt_ratio,
            "credit_lines": credit_lines,
            "late_payments": late_payments,
            "employment_years": employment_years,
            LABEL: default,
        }
    )
