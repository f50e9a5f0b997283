"""Small helpers shared by the tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlport_vertex.emulator import VertexEmulator

TRAIN_IMAGE = "us-docker.pkg.dev/vertex-ai/training/sklearn-cpu.1-0:latest"
SERVE_IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/sklearn-cpu.1-0:latest"


def wait_for(get: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 60) -> Any:
    """Poll ``get()`` until ``done(result)``; return the result."""
    deadline = time.monotonic() + timeout
    while True:
        result = get()
        if done(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


def upload_iris_artifacts(emu: VertexEmulator, tmp_path: Path, prefix: str = "iris") -> str:
    """Train a small model in-process and put model.joblib under gs://staging/<prefix>/."""
    import joblib
    from google.cloud import storage
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    features, labels = load_iris(return_X_y=True)
    local = tmp_path / "model.joblib"
    joblib.dump(DecisionTreeClassifier(random_state=0).fit(features, labels), local)
    bucket = storage.Client(project=emu.project, credentials=emu.credentials).bucket(
        emu.staging_bucket[5:]
    )
    bucket.blob(f"{prefix}/model.joblib").upload_from_filename(str(local))
    return f"{emu.staging_bucket}/{prefix}/"
