"""The base class of models written as plain Python (the "python function" flavor)."""

from __future__ import annotations

import abc
from typing import Any


class PythonModel(abc.ABC):
    """Subclass it, implement ``predict(self, model_input)`` (and ``predict_proba`` if the
    model gives class probabilities), and save or log an instance.

    The package stores the source of the module that defines the subclass and imports it
    from there on load, so define the class at the top level of its own module file (not in
    a notebook, a script's ``__main__`` or a function). The instance's attributes are stored
    as JSON and set again on load without calling ``__init__``, so keep them to JSON values:
    numbers, strings, lists, dicts. Nothing is pickled.
    """

    @abc.abstractmethod
    def predict(self, model_input: Any) -> Any:
        """Predictions for ``model_input`` (already checked against the signature)."""
