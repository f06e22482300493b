"""Monitoring: jobs over the prediction and feedback logs in time windows, alert rules and the sinks alerts go to."""

from __future__ import annotations

__all__: list[str] = []
