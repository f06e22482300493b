"""``mloop demo``: the whole loop, end to end, on the embedded stores.

Register and validate data, train and track candidates, gate, register, sign and deploy
the best, serve real HTTP traffic from a simulated client population, change the
population and let monitoring notice, retrain on the labelled requests, roll the new model
out behind the champion, and trace one prediction back to its data and code. Everything
lives in one folder (``home``); see docs/demo.md.

Names are imported on first use (PEP 562): ``mloop --help`` does not pay for
scikit-learn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mloop._lazy import lazy_attributes

if TYPE_CHECKING:
    from mloop.demo._lineage import Lineage
    from mloop.demo._population import applicants
    from mloop.demo._run import run_demo
    from mloop.demo._state import DemoResult, DemoSize
    from mloop.demo._traffic import TrafficReport

_LAZY: dict[str, str] = {
    "DemoResult": "mloop.demo._state",
    "DemoSize": "mloop.demo._state",
    "Lineage": "mloop.demo._lineage",
    "TrafficReport": "mloop.demo._traffic",
    "applicants": "mloop.demo._population",
    "run_demo": "mloop.demo._run",
}

__all__: list[str] = [
    "DemoResult",
    "DemoSize",
    "Lineage",
    "TrafficReport",
    "applicants",
    "run_demo",
]

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, globals())
