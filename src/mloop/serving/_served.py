"""What one server process serves: a deployment's members loaded, routed and batched.

``mloop serve TARGET`` takes a deployment name (a stored, revisioned deployment), a
registered model URI (``models:/iris/1``, ``models:/iris@champion``: an implicit
deployment named after the model) or a package (``runs:/…``, a folder: a deployment of
one model, named after it, with default guards). Whatever the target, the server sees a
:class:`ServedDeployment`: the members loaded and verified (digests, trust policy), one
micro-batcher per member, the router, the guards, and the atypical-input detector when
the guards ask for one.

A stored deployment is reloaded when its revision changes: :meth:`DeploymentSource.load`
builds the new :class:`ServedDeployment` beside the old one (reusing members already
loaded), and the server swaps one reference, so requests in flight finish on the revision
they started with and none is dropped.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mloop.errors import ConfigError, InvalidInput, MloopError, NotFound
from mloop.models._signature import ColumnSchema, TensorSchema
from mloop.serving._batching import MicroBatcher, Outputs
from mloop.serving._obfuscation import PREDICTIONS, PROBABILITIES
from mloop.serving._spec import DeploymentSpec, Guards, Member
from mloop.serving._validation import ModelInput

if TYPE_CHECKING:
    from mloop.models import LoadedModel
    from mloop.serving._atypical import AtypicalDetector
    from mloop.serving._routing import Router
    from mloop.serving._spec import Deployment
    from mloop.store import MetadataStore

log = logging.getLogger("mloop.serving")
INLINE_ROWS = 1024
"""Batches up to this many rows are predicted on the event loop, larger ones in a thread."""
_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(eq=False)
class ServedModel:
    """One loaded model version with its batcher."""

    name: str
    version: int
    role: str
    uri: str
    loaded: LoadedModel
    batcher: MicroBatcher = field(init=False, repr=False)

    def __post_init__(self) -> None:
        predictor = self.loaded.model
        classes = getattr(predictor, "classes_", None)
        self.has_probabilities = hasattr(predictor, "predict_proba")
        self.classes: np.ndarray[Any, Any] | None = (
            np.asarray(classes) if classes is not None and self.has_probabilities else None
        )

    @property
    def signature(self) -> Any:
        return self.loaded.signature

    @property
    def version_label(self) -> str:
        return str(self.version)

    def run(self, batch: ModelInput, probabilities: bool) -> Outputs:
        """Predict one (micro-)batch; called in a worker thread. A model refusing the values
        it was given (``ValueError``/``TypeError`` from the library) is the caller's 400."""
        predictor = self.loaded.model
        data = _model_data(batch)
        try:
            outputs: Outputs = {PREDICTIONS: np.asarray(predictor.predict(data))}
            if probabilities and self.has_probabilities:
                outputs[PROBABILITIES] = np.asarray(
                    predictor.predict_proba(data),  # type: ignore[attr-defined]
                    dtype=np.float64,
                )
        except (ValueError, TypeError) as exc:
            raise InvalidInput(
                f"model {self.name} version {self.version} could not use the input: {exc}"
            ) from exc
        return outputs


def _model_data(batch: ModelInput) -> Any:
    if batch.tensor is not None:
        return batch.tensor
    import pandas as pd

    return pd.DataFrame(batch.columns)


@dataclass(eq=False)
class ServedDeployment:
    """One revision of a deployment, loaded. ``members`` answer (primary, canaries, an
    ensemble's primaries); ``shadows`` only get a copy of the traffic."""

    name: str
    revision: int
    guards: Guards
    combine: str
    members: list[ServedModel]
    shadows: list[ServedModel]
    router: Router | None = None
    detector: AtypicalDetector | None = None
    preprocessing: LoadedModel | None = None
    _by_member: dict[tuple[str, int], ServedModel] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for served in [*self.members, *self.shadows]:
            self._by_member[(served.name, served.version)] = served

    @property
    def primary(self) -> ServedModel:
        return next((m for m in self.members if m.role == "primary"), self.members[0])

    @property
    def all_models(self) -> list[ServedModel]:
        return [*self.members, *self.shadows]

    @property
    def versions(self) -> list[str]:
        return sorted({m.version_label for m in self.all_models}, key=_version_key)

    def route(self, route_key: str | None) -> tuple[list[ServedModel], list[ServedModel]]:
        """The models whose answer is returned, and the shadows, for one request."""
        if self.router is None:
            return ([self.members[0]], self.shadows)
        chosen = self.router.route(route_key)
        return (
            [self._by_member[(m.model, m.version)] for m in chosen.members],
            [self._by_member[(m.model, m.version)] for m in chosen.shadows],
        )

    def prepare(self, arrays: dict[str, np.ndarray[Any, Any]]) -> dict[str, np.ndarray[Any, Any]]:
        """The model's inputs from a request's: the deployment's preprocessing (ATLAS
        M0017), fitted at training time, computes the features from the raw fields here,
        so clients never compute (or see how to compute) them."""
        if self.preprocessing is None:
            return arrays
        from mloop.serving._validation import tensor_name, validate

        raw = validate(self.preprocessing.signature, arrays)
        transformer = self.preprocessing.model
        step = getattr(transformer, "transform", None) or transformer.predict
        try:
            features = step(_model_data(raw))
        except (ValueError, TypeError, KeyError) as exc:
            raise InvalidInput(
                f"the deployment's preprocessing ({self.preprocessing.uri}) could not use the "
                f"input: {exc}"
            ) from exc
        columns = getattr(features, "columns", None)
        if columns is not None:  # a table: one input per column
            return {str(c): np.asarray(features[c]) for c in columns}
        schema = None if self.primary.signature is None else self.primary.signature.inputs
        if isinstance(schema, ColumnSchema):
            matrix = np.asarray(features)
            return {name: matrix[:, j] for j, name in enumerate(schema.names)}
        name = tensor_name(schema) if isinstance(schema, TensorSchema) else "input-0"
        return {name: np.asarray(features)}

    def version(self, label: str) -> ServedModel:
        """The member serving version ``label`` (``/versions/{v}`` pins it, no routing)."""
        found = [m for m in self.all_models if m.version_label == label]
        if not found:
            raise NotFound(
                f"deployment {self.name!r} serves no version {label!r}; it serves "
                f"{', '.join(self.versions)}"
            )
        return found[0]


def _version_key(label: str) -> tuple[int, str]:
    return (int(label), "") if label.isdigit() else (1 << 62, label)


# -- combining an ensemble (ATLAS M0006) ------------------------------------------------------


def combine(how: str, answers: Sequence[Outputs], models: Sequence[ServedModel]) -> Outputs:
    """One answer from several models: ``mean`` averages probabilities (classifiers with
    the same classes) or predictions (regressors); ``vote`` takes the most frequent
    prediction per row, ties going to the member listed first."""
    if how == "mean":
        probabilities = [a.get(PROBABILITIES) for a in answers]
        classes = models[0].classes
        same = classes is not None and all(
            m.classes is not None and np.array_equal(m.classes, classes) for m in models
        )
        if same and all(p is not None for p in probabilities):
            assert classes is not None
            mean = np.mean(np.stack(probabilities), axis=0)  # type: ignore[arg-type]
            return {PREDICTIONS: classes[np.argmax(mean, axis=1)], PROBABILITIES: mean}
        predictions = np.stack([np.asarray(a[PREDICTIONS], dtype=np.float64) for a in answers])
        return {PREDICTIONS: predictions.mean(axis=0)}
    stacked = np.stack([np.asarray(a[PREDICTIONS]) for a in answers], axis=1)  # [rows, members]
    winners = []
    for row in stacked:
        _values, first, counts = np.unique(row, return_index=True, return_counts=True)
        best = counts.max()
        winners.append(row[min(first[counts == best])])
    return {PREDICTIONS: np.asarray(winners, dtype=stacked.dtype)}


# -- loading ----------------------------------------------------------------------------------


class DeploymentSource:
    """Where the served deployment comes from, and how to (re)load it."""

    def __init__(
        self,
        target: str,
        *,
        store: MetadataStore | None = None,
        executor: Executor | None = None,
        on_batch: Any = None,
        after_batch: Any = None,
        arriving: Any = None,
        alone: Any = None,
    ) -> None:
        self.target = target
        self._store = store
        self._executor = executor
        self._on_batch = on_batch
        self._after_batch = after_batch
        self._arriving = arriving
        self._alone = alone
        self._cache: dict[str, LoadedModel] = {}
        self.stored = _is_deployment_name(target)

    def revision(self) -> int:
        """The revision the store holds now (a stored deployment only; one cheap read)."""
        from mloop.serving._deployments import current_revision

        return current_revision(self.target, store=self._store)

    def load(self) -> ServedDeployment:
        """Load the target as it is now (blocking: run it in a thread from async code)."""
        if self.stored:
            from mloop.serving._deployments import get_deployment

            return self._from_deployment(get_deployment(self.target, store=self._store))
        if self.target.startswith("models:/"):
            from mloop.serving._deployments import implicit_deployment

            return self._from_deployment(implicit_deployment(self.target, store=self._store))
        return self._from_package(self.target)

    def _from_deployment(self, deployment: Deployment) -> ServedDeployment:
        from mloop.serving._routing import Router

        spec: DeploymentSpec = deployment.spec
        router = Router(spec)
        answering: list[Member] = []
        for route in router.routes:
            for member in route.members:
                if member not in answering:
                    answering.append(member)
        members = [self._member(m, spec.guards) for m in answering]
        shadows = [self._member(m, spec.guards) for m in spec.shadows]
        served = ServedDeployment(
            name=deployment.name,
            revision=deployment.revision,
            guards=spec.guards,
            combine=spec.combine,
            members=members,
            shadows=shadows,
            router=router if (len(answering) > 1 or spec.combine != "none") else None,
        )
        served.detector = _detector(served, spec)
        if spec.preprocessing is not None:
            served.preprocessing = self._load(spec.preprocessing)
        return served

    def _member(self, member: Member, guards: Guards) -> ServedModel:
        uri = f"models:/{member.model}/{member.version}"
        return self._served(member.model, member.version, member.role, uri, guards)

    def _from_package(self, target: str) -> ServedDeployment:
        name = _package_name(target)
        guards = Guards()
        served = self._served(name, 0, "primary", target, guards)
        return ServedDeployment(name, 0, guards, "none", [served], [])

    def _served(self, name: str, version: int, role: str, uri: str, guards: Guards) -> ServedModel:
        served = ServedModel(name, version, role, uri, self._load(uri))
        served.batcher = MicroBatcher(
            served.run,
            max_batch_size=guards.max_batch_size,
            max_batch_wait_ms=guards.max_batch_wait_ms,
            arriving=self._arriving,
            executor=self._executor,
            on_batch=None if self._on_batch is None else _bound(self._on_batch, served),
            after_batch=None if self._after_batch is None else _bound(self._after_batch, served),
            inline_rows=int(os.environ.get("MLOOP_INLINE_ROWS", INLINE_ROWS)),
            alone=self._alone,
        )
        return served

    def _load(self, uri: str) -> LoadedModel:
        from mloop.models import load_model

        loaded = self._cache.get(uri)
        if loaded is None:
            loaded = self._cache[uri] = load_model(uri)
        return loaded

    def forget_unused(self, served: ServedDeployment) -> None:
        """Drop cached models the current revision no longer serves."""
        keep = {m.uri for m in served.all_models}
        if served.preprocessing is not None:
            keep.add(served.preprocessing.uri)
        for uri in [u for u in self._cache if u not in keep]:
            del self._cache[uri]


def _bound(callback: Any, served: ServedModel) -> Any:
    def bound(*args: Any) -> None:
        callback(served, *args)

    return bound


def _detector(served: ServedDeployment, spec: DeploymentSpec) -> AtypicalDetector | None:
    if spec.guards.atypical == "off":
        return None
    from mloop.serving._atypical import detector_for_model_version

    primary = spec.primary
    try:
        return detector_for_model_version(primary.model, primary.version)
    except MloopError as exc:
        raise ConfigError(
            f"deployment {served.name!r} asks for atypical-input detection "
            f"({spec.guards.atypical}) but no detector can be built for "
            f"{primary.model} version {primary.version}: {exc.message}"
        ) from exc


def _is_deployment_name(target: str) -> bool:
    return "/" not in target and ":" not in target and not Path(target).exists()


def _package_name(target: str) -> str:
    path = target.rstrip("/")
    if path.startswith("runs:/"):
        path = path[len("runs:/") :]
    name = _NAME.sub("-", Path(path).name).strip("-.") or "model"
    return name[:200]


__all__ = [
    "DeploymentSource",
    "ServedDeployment",
    "ServedModel",
    "combine",
]
