"""Small models for the server's tests, loaded from a folder holding ``model.json``.

``model.json`` keys: ``factor`` (predict = row sums times this), ``n_features``,
``feature_names``, ``batching``, ``load_delay`` (seconds the load takes), ``broken`` (the load
fails). A row holding 999 makes ``predict`` sleep ``slow_seconds``; a row holding -999 makes it
raise.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlport.serving.model import InputError, ServedModel

SLOW = 999.0
FAIL = -999.0


class RowSumModel(ServedModel):
    """Predicts ``factor * sum(row)``; counts its predict calls and the rows in each."""

    def __init__(
        self,
        *,
        factor: float = 1.0,
        n_features: int = 3,
        feature_names: list[str] | None = None,
        batching: bool = True,
        slow_seconds: float = 1.5,
    ) -> None:
        self.framework = "numpy"
        self.loader = "test"
        self.factor = factor
        self.n_features = n_features
        self.feature_names = feature_names
        self.batching = batching
        self.slow_seconds = slow_seconds
        self.calls: list[int] = []

    def validate(self, rows: Sequence[Any]) -> Any:
        converted = []
        for number, row in enumerate(rows):
            if isinstance(row, dict):
                if self.feature_names is None:
                    raise InputError(f"row {number}: this model takes lists, not named features")
                missing = [n for n in self.feature_names if n not in row]
                if missing:
                    raise InputError(f"row {number}: missing feature(s) {', '.join(missing)}")
                row = [row[n] for n in self.feature_names]  # noqa: PLW2901
            if not isinstance(row, list) or len(row) != self.n_features:
                raise InputError(f"row {number}: expected {self.n_features} features")
            for value in row:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise InputError(f"row {number}: {value!r} is not a number")
            converted.append(row)
        return np.asarray(converted, dtype=np.float64)

    def predict(self, inputs: Any) -> list[Any]:
        self.calls.append(len(inputs))
        if (inputs == FAIL).any():
            raise RuntimeError("the model broke")
        if (inputs == SLOW).any():
            time.sleep(self.slow_seconds)
        return [round(float(v), 6) for v in inputs.sum(axis=1) * self.factor]


def load(path: str, *, manifest_sha256: str | None = None, trust: bool = False) -> ServedModel:
    """Load the model described by ``<path>/model.json``."""
    spec = json.loads((Path(path) / "model.json").read_text())
    time.sleep(float(spec.pop("load_delay", 0)))
    if spec.pop("broken", False):
        raise ValueError(f"{path} holds a broken model")
    return RowSumModel(**spec)


def write(folder: Path, **spec: Any) -> Path:
    """Write a model folder for :func:`load`; returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.json").write_text(json.dumps(spec))
    return folder
