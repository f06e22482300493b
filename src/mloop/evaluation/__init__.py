"""Evaluation of candidate models against a baseline: sliced metrics, fairness, robustness, and the gate that blesses or refuses a model version."""

from __future__ import annotations

__all__: list[str] = []
