"""Steps and pipelines the tests run: importable by name, as the process and Ray
executors and ``resume`` need."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

import mloop

CALLS = Path(os.environ.get("PIPES_CALLS", "calls.log"))


def note(name: str) -> None:
    """Append a line per real execution (a file, so other processes count too)."""
    with CALLS.open("a") as f:
        f.write(name + "\n")


def calls() -> list[str]:
    return CALLS.read_text().split() if CALLS.exists() else []


@mloop.step
def make_frame(rows: int) -> pd.DataFrame:
    note("make_frame")
    return pd.DataFrame({"x": list(range(rows)), "y": [i * 2.0 for i in range(rows)]})


@mloop.step
def total(frame: pd.DataFrame, column: str = "y") -> dict[str, float]:
    note("total")
    return {"sum": float(frame[column].sum()), "rows": float(len(frame))}


@mloop.step
def double(frame: pd.DataFrame) -> pd.DataFrame:
    note("double")
    return frame * 2


@mloop.pipeline
def simple(rows: int = 3):
    frame = make_frame(rows)
    return {"totals": total(frame), "doubled": double(frame)}
