"""Evaluation of candidate models against a baseline: sliced metrics, fairness, robustness,
and the gate that blesses or refuses a model version (ATLAS AML.M0008, model validation).

``evaluate(candidate, data=..., label=..., baseline=..., slices=[...], gate=...)`` returns an
:class:`EvaluationReport` (``.blessed``, ``.reasons``, ``.overall``, ``.slices``,
``.write_html``); the verdict is stored and linked to the model version, and
``require_blessing(name, aliases=["champion"])`` makes ``set_alias`` insist on it.

Names are imported on first use (PEP 562): importing the package costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mloop._lazy import lazy_attributes

if TYPE_CHECKING:
    from mloop.evaluation._blessings import (
        Blessing,
        Requirement,
        get_blessing,
        get_blessing_requirement,
        require_blessing,
    )
    from mloop.evaluation._bootstrap import MetricValue
    from mloop.evaluation._evaluate import evaluate
    from mloop.evaluation._fairness import Fairness
    from mloop.evaluation._gates import delete_gate, get_gate, list_gates, save_gate
    from mloop.evaluation._report import EvaluationReport, SliceResult
    from mloop.evaluation._robustness import BackdoorProbe, RobustnessCheck
    from mloop.evaluation._spec import GateSpec
    from mloop.evaluation._store import StoredEvaluation, get_evaluation, list_evaluations

_LAZY: dict[str, str] = {
    "BackdoorProbe": "mloop.evaluation._robustness",
    "Blessing": "mloop.evaluation._blessings",
    "EvaluationReport": "mloop.evaluation._report",
    "Fairness": "mloop.evaluation._fairness",
    "GateSpec": "mloop.evaluation._spec",
    "MetricValue": "mloop.evaluation._bootstrap",
    "Requirement": "mloop.evaluation._blessings",
    "RobustnessCheck": "mloop.evaluation._robustness",
    "SliceResult": "mloop.evaluation._report",
    "StoredEvaluation": "mloop.evaluation._store",
    "delete_gate": "mloop.evaluation._gates",
    "evaluate": "mloop.evaluation._evaluate",
    "get_blessing": "mloop.evaluation._blessings",
    "get_blessing_requirement": "mloop.evaluation._blessings",
    "get_evaluation": "mloop.evaluation._store",
    "get_gate": "mloop.evaluation._gates",
    "list_evaluations": "mloop.evaluation._store",
    "list_gates": "mloop.evaluation._gates",
    "require_blessing": "mloop.evaluation._blessings",
    "save_gate": "mloop.evaluation._gates",
}

__all__: list[str] = [
    "BackdoorProbe",
    "Blessing",
    "EvaluationReport",
    "Fairness",
    "GateSpec",
    "MetricValue",
    "Requirement",
    "RobustnessCheck",
    "SliceResult",
    "StoredEvaluation",
    "delete_gate",
    "evaluate",
    "get_blessing",
    "get_blessing_requirement",
    "get_evaluation",
    "get_gate",
    "list_evaluations",
    "list_gates",
    "require_blessing",
    "save_gate",
]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
