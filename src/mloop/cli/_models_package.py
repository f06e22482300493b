"""Placeholder: this module's commands land with their area (issue 4)."""

from __future__ import annotations
