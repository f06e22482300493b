"""The ready-made retraining pipeline: a new dataset version to a model in rollout.

::

    resolve ─► validate ─► train ─► evaluate vs champion (gate) ─► register ─► sign ─► rollout
                 │                          │
                 └ anomalies: stopped       └ refused: stopped, with the gate's reasons

Each part is its own step, so a rerun on the same data reuses what it can (caching) and a
failed run resumes where it failed. The first step is never cached: it pins what "now"
means — the dataset version behind ``churn@latest``, the champion's version, the gate's
rules — and every later step is keyed on those pinned values, so a cache hit can never
hide a newer champion or a changed gate.

A trigger runs it with parameters such as::

    pipeline: mloop.agent:retraining_pipeline
    params:
      data: churn@latest          # or the version a dataset trigger passes in
      trainer: churn_model:train  # fn(DataFrame, **trainer_params) -> fitted model
      label: churned
      model_name: churn
      gate: gates/churn.yaml      # a gate file or a named gate
      signing_key: keys/mloop-signing.key
      deployment: churn           # start a rollout here (optional)

The training function gets the training rows as a pandas DataFrame (label included), or
the :class:`~mloop.data.DatasetVersion` itself when its first parameter is annotated so
(then it sees every row: give ``eval_data`` so the gate judges on rows it has not seen),
and returns a fitted model any mloop flavor can save. Rows are split once, by ``seed``,
into training and holdout (``holdout`` share) unless ``eval_data`` names an evaluation
dataset; the candidate and the champion are evaluated on the same holdout.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mloop.errors import ConfigError, InvalidInput, NotFound
from mloop.pipelines import StopPipeline, pipeline, step

if TYPE_CHECKING:
    import pandas as pd

    from mloop.data import DatasetVersion

VALIDATION_MODES = ("error", "warn", "off")


# -- steps ------------------------------------------------------------------------------------


@step(cache=False)
def resolve_inputs(
    data: str,
    model_name: str,
    gate: str | None,
    champion_alias: str = "champion",
    eval_data: str | None = None,
) -> dict[str, Any]:
    """Pin what the run works on: concrete dataset versions, the champion, the gate."""
    from mloop.data import get_dataset_version

    dataset = get_dataset_version(data).ref
    evaluation = get_dataset_version(eval_data).ref if eval_data else None
    return {
        "dataset": dataset,
        "eval_data": evaluation,
        "baseline": champion_uri(model_name, champion_alias),
        "gate": gate_rules(gate),
    }


@step()
def validate_data(
    pinned: dict[str, Any],
    schema: str | None = None,
    validation: str = "error",
    tolerance: float = 0.01,
) -> dict[str, Any]:
    """Check the dataset version against ``schema`` (a schema YAML file) or, without one,
    against the schema inferred from the dataset's previous version. ERROR anomalies on
    more than ``tolerance`` of the rows stop the pipeline (``validation: warn`` records
    them and goes on; ``off`` skips)."""
    return check_dataset(pinned["dataset"], schema, validation, tolerance)


@step()
def train_candidate(
    pinned: dict[str, Any],
    validated: dict[str, Any],
    trainer: str,
    label: str,
    trainer_params: dict[str, Any] | None = None,
    holdout: float = 0.25,
    seed: int = 0,
) -> dict[str, Any]:
    """Train with the user's function and log the model (with its training data as an
    input of the run)."""
    del validated  # an input only so that training waits for validation
    return train_and_log(pinned, trainer, label, trainer_params or {}, holdout=holdout, seed=seed)


@step()
def evaluate_candidate(
    pinned: dict[str, Any],
    candidate: dict[str, Any],
    label: str,
    slices: list[str] | None = None,
    holdout: float = 0.25,
    seed: int = 0,
    sensitive: list[str] | None = None,
) -> dict[str, Any]:
    """Evaluate the candidate against the champion with the gate; a refusal stops the
    pipeline with the gate's reasons."""
    return gate_candidate(
        pinned, candidate, label, slices or [], holdout=holdout, seed=seed, sensitive=sensitive
    )


@step()
def register_candidate(
    pinned: dict[str, Any], candidate: dict[str, Any], evaluation: dict[str, Any], model_name: str
) -> dict[str, Any]:
    """Register the blessed candidate as the model's next version."""
    from mloop.registry import register_model_version

    tags = {"mloop.retrain.dataset": pinned["dataset"]}
    if evaluation.get("report_id"):
        tags["mloop.retrain.evaluation"] = str(evaluation["report_id"])
    version = register_model_version(
        model_name,
        candidate["model_uri"],
        run_id=candidate["run_id"],
        package_digest=candidate["package_digest"],
        dataset_versions=[pinned["dataset"]],
        description=f"retrained on {pinned['dataset']}",
        tags=tags,
    )
    return {
        "model": model_name,
        "version": version.version,
        "uri": f"models:/{model_name}/{version.version}",
    }


@step()
def sign_candidate(
    registered: dict[str, Any], signing_key: str | None = None, sign: bool = True
) -> dict[str, Any]:
    """Sign the registered version's package with the publisher's key."""
    if not sign:
        return {**registered, "signed": False}
    key = signing_key or _configured_signing_key()
    if not key:
        raise ConfigError(
            "the retraining pipeline signs every model it registers, and no signing key is "
            "set: pass params.signing_key (a private key from `mloop keys generate`), or "
            "params.sign: false to publish unsigned models"
        )
    from mloop.models import sign_package, verify_signature
    from mloop.models._signing_keys import load_private_key

    sign_package(registered["uri"], key)
    public = load_private_key(Path(key).expanduser(), None).public_key()
    info = verify_signature(registered["uri"], [_public_pem(public)])
    return {**registered, "signed": True, "key_id": info.key_id}


@step()
def start_candidate_rollout(
    signed: dict[str, Any], deployment: str | None = None, plan: str | None = None
) -> dict[str, Any]:
    """Start the rollout of the new version on ``deployment`` (none: stop at registering)."""
    if not deployment:
        return {**signed, "rollout": None}
    from mloop.agent import start_rollout

    rollout = start_rollout(deployment, f"{signed['model']}:{signed['version']}", plan)
    return {**signed, "rollout": str(rollout.id)}


@pipeline(name="retraining")
def retraining_pipeline(
    data: str,
    trainer: str,
    label: str,
    model_name: str,
    gate: str | None = None,
    schema: str | None = None,
    validation: str = "error",
    tolerance: float = 0.01,
    eval_data: str | None = None,
    holdout: float = 0.25,
    seed: int = 0,
    trainer_params: dict[str, Any] | None = None,
    slices: list[str] | None = None,
    sensitive: list[str] | None = None,
    champion_alias: str = "champion",
    signing_key: str | None = None,
    sign: bool = True,
    deployment: str | None = None,
    plan: str | None = None,
) -> dict[str, Any]:
    """Validate → train → gate against the champion → register → sign → roll out."""
    pinned = resolve_inputs(data, model_name, gate, champion_alias, eval_data)
    validated = validate_data(pinned, schema, validation, tolerance)
    candidate = train_candidate(pinned, validated, trainer, label, trainer_params, holdout, seed)
    evaluation = evaluate_candidate(
        pinned, candidate, label, slices, holdout, seed, sensitive=sensitive
    )
    registered = register_candidate(pinned, candidate, evaluation, model_name)
    signed = sign_candidate(registered, signing_key, sign)
    return start_candidate_rollout(signed, deployment, plan)


# -- the work behind the steps ----------------------------------------------------------------


def champion_uri(model_name: str, alias: str) -> str | None:
    """``models:/NAME/N`` of the version the alias points at, None when it points nowhere
    (the first model has no champion to beat)."""
    from mloop.registry import resolve

    try:
        version = resolve(model_name, alias)
    except NotFound:
        return None
    return f"models:/{model_name}/{version.version}"


def gate_rules(gate: str | None) -> dict[str, Any]:
    """The gate's rules as JSON: from a YAML/JSON file, or the named gate stored in the
    metadata store. A retraining chain without a gate would ship unchecked models, so one
    is required."""
    if not gate:
        raise ConfigError(
            "the retraining pipeline needs a gate to judge the candidate against the "
            "champion: pass params.gate, a gate file (gate.yaml) or the name of a gate saved "
            "with mloop.evaluation.save_gate; see docs/evaluation.md"
        )
    from mloop.evaluation import GateSpec, get_gate

    path = Path(gate)
    if path.suffix.lower() in (".yaml", ".yml", ".json") or path.is_file():
        if not path.is_file():
            raise InvalidInput(f"gate file {gate} does not exist")
        spec = GateSpec.from_yaml(path)
    else:
        spec = get_gate(gate)
    return spec.to_json()


def check_dataset(
    dataset: str, schema: str | None, validation: str, tolerance: float = 0.01
) -> dict[str, Any]:
    """Anomalies of ``dataset`` against its schema; ERRORs raise :class:`StopPipeline`,
    except those affecting at most ``tolerance`` of the rows (one new extreme value in a
    fresh sample is not a broken pipeline upstream), which are recorded."""
    from mloop.data import Schema, get_dataset_version, infer_schema, validate_statistics

    if validation not in VALIDATION_MODES:
        raise InvalidInput(f"validation {validation!r} is not one of {', '.join(VALIDATION_MODES)}")
    if validation == "off":
        return {"dataset": dataset, "against": None, "anomalies": []}
    version = get_dataset_version(dataset)
    if schema:
        path = Path(schema)
        try:
            expected = Schema.from_yaml(path.read_text(encoding="utf-8"), source=path.name)
        except OSError as exc:
            raise InvalidInput(f"cannot read schema file {schema}: {exc}") from exc
        against = path.name
    elif version.version > 1:
        previous = get_dataset_version((version.name, version.version - 1))
        expected = infer_schema(previous.statistics())
        against = f"the schema inferred from {previous.ref}"
    else:
        return {"dataset": dataset, "against": None, "anomalies": []}
    anomalies = validate_statistics(version.statistics(), expected)
    if not 0.0 <= tolerance < 1.0:
        raise InvalidInput(f"tolerance {tolerance!r} must be a share of rows in [0, 1)")
    errors = [
        a
        for a in anomalies
        if a.severity.value == "ERROR" and (a.share is None or a.share > tolerance)
    ]
    if errors and validation == "error":
        problems = "; ".join(f"{a.feature}: {a.description}" for a in errors)
        raise StopPipeline(f"{dataset} fails validation against {against}: {problems}")
    return {
        "dataset": dataset,
        "against": against,
        "anomalies": [a.to_dict() for a in anomalies],
    }


def split(version: DatasetVersion, holdout: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training and holdout rows, the same for the same version, share and seed."""
    import numpy as np

    if not 0.0 < holdout < 1.0:
        raise InvalidInput(f"holdout {holdout!r} must be a share between 0 and 1, e.g. 0.25")
    frame = version.to_pandas()
    order = np.random.default_rng(seed).permutation(len(frame))
    cut = len(frame) - max(1, round(len(frame) * holdout))
    if cut < 1:
        raise InvalidInput(f"{version.ref} has {len(frame)} rows: too few to hold some out")
    return (
        frame.iloc[order[:cut]].reset_index(drop=True),
        frame.iloc[order[cut:]].reset_index(drop=True),
    )


def train_and_log(
    pinned: dict[str, Any],
    trainer: str,
    label: str,
    trainer_params: dict[str, Any],
    *,
    holdout: float,
    seed: int,
) -> dict[str, Any]:
    import mloop
    from mloop.data import get_dataset_version

    version = get_dataset_version(pinned["dataset"])
    function = load_function(trainer)
    if pinned.get("eval_data"):
        rows = version.to_pandas()
    else:
        rows, _ = split(version, holdout, seed)
    if label not in rows.columns:
        raise InvalidInput(
            f"label {label!r} is not a column of {version.ref}; its columns: "
            + ", ".join(map(str, rows.columns))
        )
    wants_version = _first_parameter_is_dataset_version(function)
    model = function(version if wants_version else rows, **trainer_params)
    if model is None:
        raise InvalidInput(f"trainer {trainer} returned None; it must return the fitted model")
    started = mloop.active_run() is None
    run = mloop.active_run() or mloop.start_run(run_name=f"retrain {version.ref}")
    try:
        mloop.log_input(version, context="training")
        mloop.log_params(
            {"retrain.trainer": trainer, "retrain.holdout": holdout, "retrain.seed": seed}
        )
        info = mloop.log_model(model, "model", input_example=rows.drop(columns=[label]).head(5))
    finally:
        if started:
            mloop.end_run()
    return {
        "model_uri": info.model_uri,
        "package_digest": info.package_digest,
        "run_id": run.info.run_id,
    }


def gate_candidate(
    pinned: dict[str, Any],
    candidate: dict[str, Any],
    label: str,
    slices: list[str],
    *,
    holdout: float,
    seed: int,
    sensitive: list[str] | None = None,
) -> dict[str, Any]:
    from mloop.data import get_dataset_version
    from mloop.evaluation import GateSpec, evaluate

    if pinned.get("eval_data"):
        data: Any = pinned["eval_data"]
    else:
        _, data = split(get_dataset_version(pinned["dataset"]), holdout, seed)
    report = evaluate(
        candidate["model_uri"],
        data=data,
        label=label,
        baseline=pinned.get("baseline"),
        slices=slices,
        sensitive=sensitive or (),
        gate=GateSpec.parse(pinned["gate"], source="the pinned gate"),
        seed=seed,
    )
    if report.blessed is False:
        reasons = "; ".join(report.reasons) or "no reason given"
        raise StopPipeline(f"the gate refused {candidate['model_uri']}: {reasons}")
    return {
        "report_id": str(report.id) if report.id else None,
        "blessed": report.blessed,
        "baseline": pinned.get("baseline"),
    }


def load_function(reference: str) -> Any:
    """The function ``package.module:function`` names, or a clear error."""
    from mloop.agent._trigger_spec import callable_ref

    module_name, _, attribute = callable_ref(reference, "trainer").partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidInput(f"trainer {reference}: cannot import {module_name}: {exc}") from exc
    function = getattr(module, attribute, None)
    if not callable(function):
        raise InvalidInput(f"trainer {reference}: {module_name} has no function {attribute!r}")
    return function


def _first_parameter_is_dataset_version(function: Any) -> bool:
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return False
    if not parameters:
        raise InvalidInput("the trainer must take the training data as its first argument")
    annotation = parameters[0].annotation
    name = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    return str(name).rsplit(".", 1)[-1] == "DatasetVersion"


def _configured_signing_key() -> str | None:
    from mloop.config import get_settings

    return get_settings().signing_key


def _public_pem(public_key: Any) -> str:
    from mloop.models._signing_keys import public_pem

    return public_pem(public_key).decode()
