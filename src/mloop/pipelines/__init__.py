"""Pipelines: typed steps composed into a DAG, cached by code, parameters and input digests, run in-process, in a process pool or on Ray."""

from __future__ import annotations

__all__: list[str] = []
