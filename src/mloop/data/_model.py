"""The statistics data model: what every part of the data package reads and writes.

A :class:`DatasetStatistics` is built from partial results that merge: statistics of
A ∪ B equal ``stats(A).merge(stats(B))`` within each sketch's stated error. Numeric moments
merge exactly (Chan et al.), quantiles through a KLL sketch, distinct counts through HLL,
and category counts exactly while a column has at most ``EXACT_CATEGORY_LIMIT`` distinct
values (then through a frequent-items sketch).

This module only declares the shapes; ``_statistics.py`` computes and merges them.
"""

from __future__ import annotations

import enum

FORMAT_VERSION = 1
EXACT_CATEGORY_LIMIT = 10_000
KLL_K = 400  # quantile sketch accuracy: normalized rank error about 0.4 % at k=400


class FeatureKind(enum.StrEnum):
    NUMERIC = "numeric"  # ints, floats, decimals, timestamps (as epoch numbers)
    CATEGORICAL = "categorical"  # strings, booleans, dictionary columns
    LIST = "list"  # list columns: lengths are summarized, values as their own kind
