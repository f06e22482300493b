"""Output obfuscation (MITRE ATLAS AML.M0002, passive output obfuscation).

Full class probabilities let a caller copy a model (extraction) or steer an input across a
decision boundary (evasion) with few queries; fewer digits, fewer classes or no scores at
all make both slower. A deployment's ``guards.output`` picks how much a response says:

``full``      everything the model returned;
``label``     the predicted class only (``predictions``); every score is dropped;
``top_k``     the predicted class and the ``top_k`` best classes with their probabilities
              (``top_k_classes``, ``top_k_probabilities``, best first); the full
              probability matrix and any other scores are dropped;
``rounded``   everything, with floating-point outputs rounded to ``digits`` decimals.

Outputs are named: ``predictions`` is one label (or value) per row, ``probabilities`` an
``[N, C]`` matrix whose columns follow ``classes``. When a mode needs probabilities the
model did not give (``top_k`` on a regressor), the response falls back to ``label``: a
guard that cannot apply as asked never says more than the stricter choice.
Everything is vectorized over the batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from mloop.errors import InvalidInput

PREDICTIONS = "predictions"
PROBABILITIES = "probabilities"
TOP_K_CLASSES = "top_k_classes"
TOP_K_PROBABILITIES = "top_k_probabilities"
OUTPUT_MODES = ("full", "label", "top_k", "rounded")

OutputMode = Literal["full", "label", "top_k", "rounded"]


class OutputGuards(Protocol):
    """The parts of a deployment's ``Guards`` that obfuscation reads."""

    @property
    def output(self) -> OutputMode: ...

    @property
    def top_k(self) -> int: ...

    @property
    def digits(self) -> int: ...


def check_output_guards(guards: OutputGuards) -> None:
    """Refuse settings no response could honour (checked once, when a deployment loads)."""
    if guards.output not in OUTPUT_MODES:
        raise InvalidInput(
            f"guards.output must be one of {', '.join(OUTPUT_MODES)}, got {guards.output!r}"
        )
    if guards.top_k < 1:
        raise InvalidInput(f"guards.top_k must be at least 1, got {guards.top_k}")
    if not 0 <= guards.digits <= 15:
        raise InvalidInput(f"guards.digits must be between 0 and 15, got {guards.digits}")


def obfuscate(
    outputs: Mapping[str, npt.NDArray[Any]],
    guards: OutputGuards,
    classes: Sequence[Any] | npt.NDArray[Any] | None = None,
) -> dict[str, npt.NDArray[Any]]:
    """The outputs a response may carry under ``guards`` (the input is not changed).

    ``classes`` labels the columns of ``outputs["probabilities"]`` (the model's
    ``classes_``); without it columns are named by their index.
    """
    mode = guards.output
    if mode == "full":
        return dict(outputs)
    check_output_guards(guards)
    if mode == "rounded":
        return {name: _rounded(value, guards.digits) for name, value in outputs.items()}
    probabilities = _probabilities(outputs)
    labels = _class_labels(classes, probabilities)
    predictions = outputs.get(PREDICTIONS)
    if predictions is None:
        if probabilities is None:
            raise InvalidInput(
                f"the model returned neither {PREDICTIONS!r} nor {PROBABILITIES!r} "
                f"(outputs: {', '.join(sorted(outputs)) or 'none'}); output obfuscation "
                "needs one of them"
            )
        predictions = labels[np.argmax(probabilities, axis=1)]
    if mode == "label" or probabilities is None:
        return {PREDICTIONS: np.asarray(predictions)}
    k = min(guards.top_k, probabilities.shape[1])
    # best first; among equal probabilities the class listed first wins, as in argmax
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return {
        PREDICTIONS: np.asarray(predictions),
        TOP_K_CLASSES: labels[order],
        TOP_K_PROBABILITIES: np.take_along_axis(probabilities, order, axis=1),
    }


def _probabilities(outputs: Mapping[str, npt.NDArray[Any]]) -> npt.NDArray[np.floating[Any]] | None:
    value = outputs.get(PROBABILITIES)
    if value is None:
        return None
    array = np.asarray(value)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.number):
        raise InvalidInput(
            f"{PROBABILITIES!r} must be a numeric [rows, classes] matrix, got shape "
            f"{array.shape} of {array.dtype}"
        )
    return array.astype(np.float64, copy=False)


def _class_labels(
    classes: Sequence[Any] | npt.NDArray[Any] | None,
    probabilities: npt.NDArray[np.floating[Any]] | None,
) -> npt.NDArray[Any]:
    width = None if probabilities is None else probabilities.shape[1]
    if classes is None:
        return np.arange(width or 0)
    labels = np.asarray(classes)
    if width is not None and labels.shape != (width,):
        raise InvalidInput(
            f"the model names {labels.size} classes but gave {width} probability columns; "
            "pass the classes in the order of the probability columns"
        )
    return labels


def _rounded(value: npt.NDArray[Any], digits: int) -> npt.NDArray[Any]:
    array = np.asarray(value)
    if np.issubdtype(array.dtype, np.floating):
        return np.round(array, digits)
    return array


__all__ = ["OUTPUT_MODES", "OutputGuards", "check_output_guards", "obfuscate"]
