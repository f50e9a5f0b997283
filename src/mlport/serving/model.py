"""The interface between the portable model server and model loaders.

A loader turns a verified model package into a :class:`ServedModel`; the server only ever calls
what is declared here, so a new format is a new loader and nothing else.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any

from mlport.errors import InvalidSpecError

__all__ = ["InputError", "ServedModel"]


class InputError(InvalidSpecError):
    """A request's rows do not fit the model (answered with HTTP 400/422 and this message)."""


class ServedModel(abc.ABC):
    """A loaded model, ready to predict. Thread-safe ``predict`` is not required: the server
    calls it from one thread per worker.

    Attributes:
        framework: e.g. ``"sklearn"``.
        loader: The manifest's loader (``joblib``, ``skops``, ``onnx``, ``mlflow``, ...).
        feature_names: Input feature names when the signature has them, else None.
        n_features: Number of input features when known, else None.
        batching: False if rows must not be combined across requests (the model opts out of
            micro-batching, e.g. a stateful or per-request model).
    """

    framework: str | None = None
    loader: str = ""
    feature_names: list[str] | None = None
    n_features: int | None = None
    batching: bool = True

    @abc.abstractmethod
    def validate(self, rows: Sequence[Any]) -> Any:
        """Check and convert request rows (lists of values, or dicts of feature -> value) into
        the model's input (e.g. a 2-D float array). Cheap; runs per request.

        Raises:
            InputError: naming the row and what is wrong (feature count, unknown or missing
                names, a value that is not a number, ...).
        """

    @abc.abstractmethod
    def predict(self, inputs: Any) -> list[Any]:
        """Predict for validated inputs (as returned by :meth:`validate`, possibly several
        requests' inputs concatenated with :meth:`concat`); one JSON-able output per row."""

    def concat(self, parts: Sequence[Any]) -> Any:
        """Join validated inputs of several requests into one batch (default: numpy vstack)."""
        import numpy as np

        return np.concatenate(parts, axis=0)

    def size(self, inputs: Any) -> int:
        """Number of rows in validated inputs."""
        return len(inputs)
