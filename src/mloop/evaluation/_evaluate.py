"""``evaluate``: a candidate model against a baseline, overall and per slice, through a gate.

The order matters for the user's time: everything that can be wrong with the request (a
gate with a typo, a slice column not in the data, a metric the task has no value for) is
refused before any model predicts. Then each model predicts once on the clean rows; every
slice, interval, curve and fairness figure comes from those answers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloop._ids import new_id, now_ms
from mloop.errors import InvalidInput
from mloop.evaluation import _inputs
from mloop.evaluation._bootstrap import MAX_RESAMPLES
from mloop.evaluation._fairness import fairness
from mloop.evaluation._gate import judge
from mloop.evaluation._metrics import Outcomes
from mloop.evaluation._reference import MAIN_METRIC, load_reference, main_metric_is
from mloop.evaluation._report import EvaluationReport
from mloop.evaluation._robustness import BackdoorProbe, backdoor_flip_rate, robustness
from mloop.evaluation._sections import (
    Interval,
    curves,
    priorities,
    reference_source,
    reference_value,
    slice_results,
    with_gap,
)
from mloop.evaluation._slices import check_columns, parse_slice
from mloop.evaluation._spec import GateSpec

if TYPE_CHECKING:
    import pandas as pd

    from mloop.models import LoadedModel
    from mloop.registry import Principal


Progress = Callable[[str, int, int], None]
DEFAULT_METRIC = {"classification": "accuracy", "regression": "rmse"}
SCATTER_POINTS = 500


def evaluate(
    candidate: str,
    *,
    data: str | os.PathLike[str] | pd.DataFrame,
    label: str,
    baseline: str | None = None,
    slices: Sequence[str] = (),
    gate: GateSpec | Mapping[str, Any] | str | os.PathLike[str] | None = None,
    reference: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    sensitive: Sequence[str] = (),
    metric: str | None = None,
    task: str | None = None,
    positive_label: Any = None,
    noise: float = 0.1,
    missing: float = 0.1,
    backdoor_trigger: Mapping[str, Any] | None = None,
    resamples: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
    min_slice_rows: int = 30,
    record: bool = True,
    actor: Principal | str | None = None,
    progress: Progress | None = None,
) -> EvaluationReport:
    """Evaluate ``candidate`` (a model URI) on labelled ``data`` and judge it by ``gate``.

    ``data`` is ``NAME@VERSION``, a CSV/Parquet file or a DataFrame; ``slices`` are column
    names or crosses (``"sex*age_bucket"``); ``gate`` a :class:`GateSpec`, a YAML file or
    a stored gate's name; ``reference`` a human-level table (CSV/YAML/mapping, see
    :mod:`mloop.evaluation._reference`); ``sensitive`` the columns fairness is measured
    across. With ``record`` the outcome is stored and, for a gate, linked to the candidate's
    model version (by package digest, so a version registered later from the same package
    carries it too).
    """
    step = progress or (lambda _stage, _done, _total: None)
    total = 6
    step("checking the request", 0, total)
    specs = [s.strip() for s in slices]
    for spec in specs:
        parse_slice(spec)
    _check_settings(resamples, confidence, noise, missing, min_slice_rows)
    gate_spec, gate_name = _resolve_gate(gate)
    chosen_metric = (gate_spec.metric if gate_spec and gate_spec.metric else None) or metric
    ref_table = load_reference(reference, metric=MAIN_METRIC)
    frame, data_ref = _inputs.load_frame(data)
    if not isinstance(label, str) or label not in frame.columns:
        raise InvalidInput(
            f"label column {label!r} is not in the data; its columns are "
            f"{', '.join(map(str, frame.columns[:30]))}"
        )
    check_columns(frame, specs)
    check_columns(frame, list(sensitive), "sensitive")
    notes: list[str] = []
    labelled = frame[label].notna().to_numpy()
    if not labelled.all():
        notes.append(f"{int((~labelled).sum())} rows without a label were left out")
        frame = frame[labelled].reset_index(drop=True)
    if frame.empty:
        raise InvalidInput("the data has no labelled rows to evaluate on")

    step("loading models", 1, total)
    cand = _inputs.load(candidate)
    base = _inputs.load(baseline) if baseline else None
    kind = _inputs.detect_task(cand.model, frame[label], task)
    features = _inputs.feature_frame(cand.model, frame, label)

    step("predicting", 2, total)
    answers, proba = _inputs.predict(cand.model, features, kind)
    base_answers: tuple[Any, Any] | None = None
    base_features = None
    if base is not None:
        base_features = _inputs.feature_frame(base.model, frame, label)
        base_answers = _inputs.predict(base.model, base_features, kind)
    labels = frame[label].to_numpy()
    classes: list[Any] | None = None
    positive: int | None = None
    if kind == "classification":
        import pandas as pd

        seen = pd.unique(pd.Series(answers)).tolist()
        if base_answers is not None:
            seen += pd.unique(pd.Series(base_answers[0])).tolist()
        classes = _inputs.class_list(cand.model, frame[label], seen)
        positive = _positive_index(classes, positive_label)

    def score(model: LoadedModel, rows: pd.DataFrame) -> Outcomes:
        got, probabilities = _inputs.predict(model, rows, kind)
        return _inputs.outcomes(
            kind, labels, got, probabilities, classes or [], _inputs.model_classes(model), positive
        )

    outcomes = _inputs.outcomes(
        kind, labels, answers, proba, classes or [], _inputs.model_classes(cand.model), positive
    )
    base_outcomes = None
    if base is not None and base_answers is not None:
        base_outcomes = _inputs.outcomes(
            kind,
            labels,
            base_answers[0],
            base_answers[1],
            classes or [],
            _inputs.model_classes(base.model),
            positive,
        )
    chosen_metric = chosen_metric or DEFAULT_METRIC[kind]
    _check_metrics(gate_spec, chosen_metric, outcomes, base_outcomes)
    ref_table = main_metric_is(ref_table, chosen_metric)

    step("computing metrics per slice", 3, total)
    interval = Interval(resamples, confidence, seed)
    overall = interval.of(outcomes, "overall")
    base_overall = None if base_outcomes is None else interval.of(base_outcomes, "overall")
    results = slice_results(frame, specs, outcomes, base_outcomes, interval, min_slice_rows)
    overall_ref = reference_value(ref_table, "overall", chosen_metric, base_overall)
    results = [with_gap(s, ref_table, chosen_metric) for s in results]
    ranked = priorities(results, chosen_metric)

    step("fairness and robustness", 4, total)
    fair = [f for c in sensitive if (f := fairness(outcomes, frame[c], c)) is not None]
    base_fair = []
    if base_outcomes is not None:
        base_fair = [
            f for c in sensitive if (f := fairness(base_outcomes, frame[c], c)) is not None
        ]
    if sensitive and not fair:
        notes.append("fairness is measured for binary classifiers; none computed")
    checks = robustness(
        cand.model,
        features,
        score,
        metric=chosen_metric,
        clean=overall[chosen_metric].value,
        noise=noise,
        missing=missing,
        seed=seed,
    )
    probe = None
    if backdoor_trigger:
        flips = backdoor_flip_rate(cand.model, features, backdoor_trigger, score)
        base_flips = None
        if base is not None and base_features is not None:
            base_flips = backdoor_flip_rate(base.model, base_features, backdoor_trigger, score)
        probe = BackdoorProbe(dict(backdoor_trigger), len(frame), flips, base_flips)

    report = EvaluationReport(
        id=new_id(),
        created_ms=now_ms(),
        task=kind,
        label=label,
        metric=chosen_metric,
        candidate=cand.to_dict(),
        data=data_ref,
        rows=len(frame),
        overall=overall,
        slices=results,
        baseline=None if base is None else base.to_dict(),
        baseline_overall=base_overall,
        classes=classes,
        positive_label=None if positive is None or classes is None else classes[positive],
        reference_source=reference_source(reference, base is not None),
        overall_reference=overall_ref,
        priorities=ranked,
        fairness=fair,
        baseline_fairness=base_fair,
        robustness=checks,
        backdoor=probe,
        curves=curves(outcomes, base_outcomes),
        gate=gate_spec,
        gate_name=gate_name,
        notes=notes,
        settings={
            **asdict(interval),
            "min_slice_rows": min_slice_rows,
            "noise": noise,
            "missing": missing,
        },
    )
    if gate_spec is not None:
        report.blessed, report.reasons, gate_notes = judge(report, gate_spec)
        report.notes.extend(gate_notes)
    step("recording", 5, total)
    if record:
        from mloop.evaluation._store import record_evaluation

        record_evaluation(report, cand, base, actor=actor)
        report.recorded = True
        _log_to_active_run(report)
    step("done", total, total)
    return report


def _log_to_active_run(report: EvaluationReport) -> None:
    """Inside a tracked run (a pipeline step, a training script), the overall metrics go
    to that run as ``eval_<metric>`` and the verdict and evaluation id as tags, as
    ``mlflow.evaluate`` does, so run comparisons show them."""
    import mloop

    if mloop.active_run() is None:
        return
    metrics = {f"eval_{k}": v.value for k, v in report.overall.items() if math.isfinite(v.value)}
    if metrics:
        mloop.log_metrics(metrics)
    mloop.set_tags({"mloop.evaluation": report.id, "mloop.evaluation.verdict": report.verdict})


# -- the request ------------------------------------------------------------------------------


def _check_settings(
    resamples: int, confidence: float, noise: float, missing: float, min_rows: int
) -> None:
    if not 0 <= resamples <= MAX_RESAMPLES:
        raise InvalidInput(f"resamples must be between 0 and {MAX_RESAMPLES}, not {resamples}")
    if not 0 < confidence < 1:
        raise InvalidInput(f"confidence must be between 0 and 1 (e.g. 0.95), not {confidence}")
    if not (math.isfinite(noise) and noise >= 0):
        raise InvalidInput(f"noise is a multiple of each feature's std, >= 0, not {noise}")
    if not 0 <= missing < 1:
        raise InvalidInput(f"missing is a share of cells in [0, 1), not {missing}")
    if min_rows < 1:
        raise InvalidInput(f"min_slice_rows must be at least 1, not {min_rows}")


def _resolve_gate(gate: Any) -> tuple[GateSpec | None, str | None]:
    """A gate object, mapping, YAML file, or the name of a stored gate."""
    if gate is None:
        return None, None
    if isinstance(gate, GateSpec):
        return gate, None
    if isinstance(gate, Mapping):
        return GateSpec.parse(dict(gate)), None
    if isinstance(gate, str | os.PathLike):
        text = os.fspath(gate)
        if Path(text).suffix.lower() in (".yaml", ".yml", ".json") or Path(text).is_file():
            return GateSpec.from_yaml(text), None
        from mloop.evaluation._gates import get_gate

        return get_gate(text), text
    raise InvalidInput(
        f"gate must be a GateSpec, a YAML file or a stored gate's name, not {type(gate).__name__}"
    )


def _positive_index(classes: list[Any], positive_label: Any) -> int | None:
    if positive_label is None:
        return 1 if len(classes) == 2 else None
    for i, c in enumerate(classes):
        if c == positive_label or str(c) == str(positive_label):
            return i
    raise InvalidInput(
        f"positive label {positive_label!r} is not a class of the label; the classes are "
        f"{', '.join(map(repr, classes[:20]))}"
    )


def _check_metrics(
    spec: GateSpec | None, metric: str, outcomes: Outcomes, base: Outcomes | None
) -> None:
    available = set(outcomes.metric_names)
    if base is not None:
        available &= set(base.metric_names)
    wanted = {metric} | (set(spec.thresholds) if spec else set())
    unknown = sorted(wanted - available)
    if unknown:
        raise InvalidInput(
            f"metric(s) {', '.join(unknown)} cannot be computed for this {outcomes.task} "
            f"model{' and baseline' if base is not None else ''}; available: "
            f"{', '.join(sorted(available))}"
        )
