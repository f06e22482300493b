"""The reference each slice is held to, and where closing the gap to it is worth most.

A reference is what is achievable on a slice: human-level performance measured by the
user (a table: clear speech 0.95, car noise 0.93, …) or, without one, the baseline model.
A gap of 4 points on a slice with 2 % of the rows is worth less than a gap of 1 point on
one with 60 %, so gaps are weighted by the slice's share of the rows and ranked.

Table formats (``slice`` keys as the report writes them: ``sex=F``, ``sex=F & age=<30``,
``overall``)::

    slice,accuracy,f1              slice,metric,value            sex=F:
    overall,0.95,0.93              sex=F,accuracy,0.94             accuracy: 0.94
    sex=F,0.94,0.92                sex=M,accuracy,0.95           sex=M: 0.95   # the gate metric
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mloop.errors import InvalidInput, NotFound
from mloop.evaluation._spec import ALL_METRICS, higher_is_better

MAX_REFERENCE_BYTES = 4 << 20
MAIN_METRIC = ""  # a bare value's metric until the evaluation's main metric is known
Reference = dict[str, dict[str, float]]


def normalize_key(key: str, where: str = "reference") -> str:
    """``"sex = F &age=<30"`` → ``"sex=F & age=<30"``; ``"Overall"`` → ``"overall"``."""
    text = str(key).strip()
    if text.lower() in ("overall", "all", "*"):
        return "overall"
    parts = []
    for part in text.split("&"):
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise InvalidInput(
                f"{where}: slice {key!r} is not 'column=value' (or several joined by '&', "
                "or 'overall')"
            )
        parts.append(f"{name.strip()}={value.strip()}")
    return " & ".join(parts)


def load_reference(source: Any, *, metric: str) -> Reference:
    """A reference table from a CSV or YAML file, or a mapping already in memory."""
    if source is None:
        return {}
    if isinstance(source, Mapping):
        return _from_mapping(source, metric, "reference")
    if not isinstance(source, str | os.PathLike):
        raise InvalidInput(
            f"reference must be a CSV/YAML file or a mapping, not {type(source).__name__}"
        )
    path = Path(source)
    if not path.is_file():
        raise NotFound(f"reference table {path} does not exist")
    if path.stat().st_size > MAX_REFERENCE_BYTES:
        raise InvalidInput(f"reference table {path} is over {MAX_REFERENCE_BYTES} bytes")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        return _from_csv(text, metric, str(path))
    if path.suffix.lower() in (".yaml", ".yml", ".json"):
        import yaml

        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidInput(f"{path}: not valid YAML ({exc})") from None
        if not isinstance(document, Mapping):
            raise InvalidInput(f"{path}: a reference table is a mapping of slice to metrics")
        return _from_mapping(document, metric, str(path))
    raise InvalidInput(f"reference table {path} must be .csv, .yaml, .yml or .json")


def _value(raw: Any, where: str) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise InvalidInput(f"{where}: {raw!r} is not a number") from None
    if value != value:
        raise InvalidInput(f"{where}: the value is NaN")
    return value


def _metric(name: Any, where: str) -> str:
    text = str(name).strip()
    if text not in ALL_METRICS and text != MAIN_METRIC:
        raise InvalidInput(f"{where}: unknown metric {text!r}; use one of {', '.join(ALL_METRICS)}")
    return text


def _from_mapping(document: Mapping[Any, Any], metric: str, source: str) -> Reference:
    table: Reference = {}
    for key, entry in document.items():
        where = f"{source}: slice {key!r}"
        values = entry if isinstance(entry, Mapping) else {metric: entry}
        table[normalize_key(key, where)] = {
            _metric(m, where): _value(v, f"{where}, {m}") for m, v in values.items()
        }
    return table


def _from_csv(text: str, metric: str, source: str) -> Reference:
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise InvalidInput(f"{source}: the table has no rows")
    header = [h.strip() for h in rows[0]]
    if "slice" not in header:
        raise InvalidInput(
            f"{source}: the table needs a 'slice' column (found {', '.join(header)})"
        )
    table: Reference = {}
    long_form = set(header) == {"slice", "metric", "value"}
    for number, row in enumerate(rows, start=2):
        clean = {str(k).strip(): v for k, v in row.items() if k is not None}
        where = f"{source}, line {number}"
        key = normalize_key(clean["slice"], where)
        entry = table.setdefault(key, {})
        if long_form:
            entry[_metric(clean["metric"], where)] = _value(clean["value"], where)
            continue
        for name, raw in clean.items():
            if name != "slice" and raw not in (None, ""):
                entry[_metric(name, where)] = _value(raw, f"{where}, {name}")
    return table


def main_metric_is(table: Reference, metric: str) -> Reference:
    """``table`` with its bare values (read before the main metric was known) under
    ``metric``; an explicit value for ``metric`` wins over a bare one."""
    return {
        key: {
            (metric if name == MAIN_METRIC else name): v
            for name, v in sorted(values.items(), key=lambda kv: kv[0] != MAIN_METRIC)
        }
        for key, values in table.items()
    }


def gap(candidate: float, reference: float, metric: str) -> float:
    """How far the candidate is behind the reference (positive = room to improve)."""
    return reference - candidate if higher_is_better(metric) else candidate - reference
