"""Steps and pipelines the tests run: importable by name, as the process and Ray
executors and ``resume`` need.

Steps note each real execution in a file inside ``MLOOP_HOME`` (which every executor's
workers see), so a test can tell a step that ran from one that was reused.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from sklearn.linear_model import LogisticRegression

import mloop
from mloop.data import DatasetVersion
from mloop.models import ModelInfo
from mloop.pipelines import Resources, StopPipeline


def _home() -> Path:
    home = Path(os.environ["MLOOP_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    return home


def note(name: str) -> None:
    """Append a line per real execution (with the process id)."""
    with (_home() / "calls.log").open("a") as f:
        f.write(f"{name} {os.getpid()}\n")


def calls() -> list[str]:
    path = _home() / "calls.log"
    return [line.split()[0] for line in path.read_text().splitlines()] if path.exists() else []


def pids() -> dict[str, str]:
    path = _home() / "calls.log"
    return dict(line.split() for line in path.read_text().splitlines()) if path.exists() else {}


def broken_flag() -> Path:
    return _home() / "broken"


# -- steps ------------------------------------------------------------------------------------


@mloop.step
def make_frame(rows: int) -> pd.DataFrame:
    note("make_frame")
    return pd.DataFrame({"x": list(range(rows)), "y": [i * 2.0 for i in range(rows)]})


@mloop.step
def total(frame: pd.DataFrame, column: str = "y") -> dict[str, float]:
    note("total")
    return {"sum": float(frame[column].sum()), "rows": float(len(frame))}


@mloop.step(resources=Resources(cpus=1, memory_mb=64))
def double(frame: pd.DataFrame) -> pd.DataFrame:
    note("double")
    return frame * 2


@mloop.step(retries=2, backoff_s=0.5)
def flaky(failures: int) -> int:
    """Fails the first ``failures`` times it is called (counted across runs)."""
    note("flaky")
    counter = _home() / "flaky.count"
    count = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(count))
    if count <= failures:
        raise RuntimeError(f"flaky failure {count}")
    return count


@mloop.step
def fragile(frame: pd.DataFrame) -> pd.DataFrame:
    note("fragile")
    if broken_flag().exists():
        raise RuntimeError("the fragile step is broken")
    return frame.head(2)


@mloop.step(retries=3, backoff_s=0.01)
def gate(metrics: dict[str, float], minimum: float) -> dict[str, float]:
    note("gate")
    if metrics["sum"] < minimum:
        raise StopPipeline(f"sum {metrics['sum']} is below the minimum {minimum}")
    return metrics


@mloop.step(retries=2, backoff_s=0.01)
def liar() -> int:
    note("liar")
    return "not a number"  # type: ignore[return-value]


@mloop.step
def two_outputs(rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    note("two_outputs")
    good = pd.DataFrame({"a": list(range(rows))})
    if broken_flag().exists():
        return good, pd.DataFrame({"a": [1, "x", 2.5]})  # Parquet cannot store this column
    return good, good + 1


@mloop.step
def rows_of(frame: pd.DataFrame) -> int:
    note("rows_of")
    return len(frame)


class Box:
    """Not a type mloop stores: travels in memory only."""

    def __init__(self, value: int) -> None:
        self.value = value


@mloop.step
def boxed(value: int) -> Box:
    note("boxed")
    return Box(value)


@mloop.step
def unbox(box: Box) -> int:
    note("unbox")
    return box.value


@mloop.step
def fit(frame: pd.DataFrame) -> LogisticRegression:
    note("fit")
    labels = (frame["x"] > frame["x"].median()).astype(int)
    return LogisticRegression().fit(frame[["x"]], labels)


@mloop.step
def score(model: LogisticRegression, frame: pd.DataFrame) -> dict[str, float]:
    note("score")
    labels = (frame["x"] > frame["x"].median()).astype(int)
    return {"accuracy": float(model.score(frame[["x"]], labels))}


@mloop.step
def describe(model: ModelInfo, uri: str) -> dict[str, str]:
    return {"flavor": model.flavor, "uri": uri}


@mloop.step
def count_rows(data: DatasetVersion) -> int:
    note("count_rows")
    return int(data.num_rows or 0)


def _meet(me: str, other: str) -> str:
    """Leave a mark, then wait (polling, with a deadline) for the sibling's: only steps
    that run at the same time both get through."""
    import time

    (_home() / f"{me}.here").touch()
    deadline = time.monotonic() + 30
    while not (_home() / f"{other}.here").exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{other} never ran while {me} was running")
        time.sleep(0.02)
    return me


@mloop.step(cache=False)
def meet_left(frame: pd.DataFrame) -> str:
    return _meet("left", "right")


@mloop.step(cache=False)
def meet_right(frame: pd.DataFrame) -> str:
    return _meet("right", "left")


# -- pipelines --------------------------------------------------------------------------------


@mloop.pipeline
def simple(rows: int = 3, column: str = "y"):
    frame = make_frame(rows)
    return {"totals": total(frame, column), "doubled": double(frame)}


@mloop.pipeline
def retrying(failures: int = 1):
    return flaky(failures)


@mloop.pipeline
def breakable(rows: int = 4):
    frame = make_frame(rows)
    return total(fragile(frame))


@mloop.pipeline
def gated(rows: int = 3, minimum: float = 100.0):
    frame = make_frame(rows)
    checked = gate(total(frame), minimum)
    return {"checked": checked, "doubled": double(frame)}


@mloop.pipeline
def lying():
    return liar()


@mloop.pipeline
def split(rows: int = 3):
    first, second = two_outputs(rows)
    return {"first": rows_of(first), "second": rows_of(second)}


@mloop.pipeline
def in_memory(value: int = 7):
    return unbox(boxed(value))


@mloop.pipeline
def modelled(rows: int = 20):
    frame = make_frame(rows)
    model = fit(frame)
    return {"score": score(model, frame), "described": describe(model, model)}


@mloop.pipeline(name="dataset-rows")
def from_dataset(data: str = "numbers@latest"):
    return count_rows(data)


@mloop.pipeline
def siblings():
    frame = make_frame(2)
    return {"left": meet_left(frame), "right": meet_right(frame)}
