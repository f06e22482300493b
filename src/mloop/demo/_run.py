"""The demo from end to end: each stage in its own module, run in the loop's order."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mloop.demo._home import demo_home
from mloop.demo._narrator import Narrator
from mloop.demo._state import DEPLOYMENT, DemoResult, DemoSize
from mloop.errors import ConfigError

if TYPE_CHECKING:
    from rich.console import Console

    from mloop.demo._home import DemoHome


def run_demo(
    console: Console | None = None, *, home: str | Path | None = None, quick: bool = False
) -> DemoResult:
    """Run the whole loop in ``home`` (a new temporary folder when ``None``) and return what
    happened. With a ``console`` every stage is narrated there, with progress bars.

    ``quick`` uses less data and traffic (the end-to-end test runs it). While the demo
    runs, ``MLOOP_*`` settings point at ``home`` and the working directory is the demo
    project; both are restored afterwards.
    """
    _check_installed()
    narrator = Narrator(console)
    size = DemoSize.for_run(quick)
    with demo_home(Path(home) if home else None, poll_interval=size.poll_interval_s) as where:
        result = DemoResult(home=where.root, commit=where.commit)
        narrator.say(f"demo home: [bold]{where.root}[/] (SQLite metadata store, local files)")
        _loop(narrator, result, size, where)
    return result


def _loop(narrator: Narrator, result: DemoResult, size: DemoSize, home: DemoHome) -> None:
    from mloop.demo._lineage import trace_prediction
    from mloop.demo._monitoring import monitor_phase
    from mloop.demo._server import inference_server
    from mloop.demo._stage_data import register_and_validate
    from mloop.demo._stage_model import first_release
    from mloop.demo._stage_monitor import drift_and_detect
    from mloop.demo._stage_retrain import retrain
    from mloop.demo._stage_rollout import roll_out
    from mloop.demo._stage_serve import traffic_phase

    v1 = register_and_validate(narrator, result, size, home)
    first_release(narrator, result, size, home, v1)

    narrator.stage(
        4,
        "Serve real HTTP traffic",
        "uvicorn on 127.0.0.1 serves the deployment; simulated clients call it and report "
        "each applicant's outcome later as feedback. Every answer is in the prediction log.",
    )
    with inference_server(DEPLOYMENT, poll_interval=size.poll_interval_s) as url:
        narrator.say(f"inference server at {url} (Open Inference Protocol and TF-Serving JSON)")
        traffic_phase(
            narrator,
            result,
            size,
            url,
            phase="before drift",
            era="before",
            requests=size.requests_before,
            seed=2,
        )
        monitor_phase(narrator, result, size, "before drift")
        drift_and_detect(narrator, result, size, home, url, v1)
        candidate = retrain(narrator, result, home)
        if candidate is not None:
            roll_out(narrator, result, size, url, candidate)
        else:
            result.rollout_outcome = "no rollout: the gate refused the retrained model"

    narrator.stage(
        8,
        "Lineage of one prediction",
        "From an answer in the prediction log back to the data and the code that made it.",
    )
    last_phase = list(result.traffic)[-1]
    request_id = result.traffic[last_phase].request_ids[-1]
    result.lineage = trace_prediction(DEPLOYMENT, request_id)
    narrator.show(result.lineage.tree())


def _check_installed() -> None:
    """The demo trains scikit-learn models and signs skops packages: say what is missing."""
    import importlib.util

    missing = [
        package
        for module, package in (
            ("sklearn", "scikit-learn"),
            ("pandas", "pandas"),
            ("matplotlib", "matplotlib"),
            ("skops", "skops"),
            ("model_signing", "model-signing"),
            ("OpenSSL", "pyopenssl"),  # model-signing 1.1.1 imports it without declaring it
        )
        if importlib.util.find_spec(module) is None
    ]
    if missing:
        raise ConfigError(
            f"the demo needs {', '.join(missing)}; install them with `pip install 'mloop[models]'`"
        )
