"""The conformance suite on SageMaker, against the local SageMaker endpoint."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mlport_sagemaker.emulator import SageMakerEmulator

from mlport import Code, TrainingJob
from mlport.testing import conformance

SCRIPT = textwrap.dedent(
    """
    import sys, time
    from mlport import runtime

    hps = runtime.hyperparameters()
    runtime.log_metric("loss", 0.5)
    import joblib
    from sklearn.linear_model import LogisticRegression
    model = LogisticRegression().fit([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]], [0, 1, 1, 0])
    runtime.save_model(model, framework="sklearn")
    time.sleep(float(hps.get("sleep", 0)))
    if hps.get("exit"):
        print("boom: something broke", file=sys.stderr)
        sys.exit(int(hps["exit"]))
    """
)


def model_package(folder: Path, coefficient: float = 1.0) -> Path:
    """A scikit-learn model package (joblib) taking two features."""
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from mlport import package

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    y = (coefficient * x[:, 0] + x[:, 1] > 0).astype(int)
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(LogisticRegression().fit(x, y), folder / "model.joblib")
    package.build(folder, framework="sklearn")
    return folder


class SageMakerFixtures(conformance.Fixtures):
    @pytest.fixture
    def code(self, tmp_path: Path) -> Path:
        source = tmp_path / "code"
        source.mkdir(exist_ok=True)
        (source / "train.py").write_text(SCRIPT)
        return source

    @pytest.fixture
    def job_spec(self, code: Path) -> Callable[[str], TrainingJob]:  # type: ignore[override]
        return lambda name: TrainingJob(name=name, code=Code(source_dir=str(code)))

    @pytest.fixture
    def failing_job_spec(self, code: Path) -> Callable[[str], TrainingJob]:  # type: ignore[override]
        return lambda name: TrainingJob(
            name=name, code=Code(source_dir=str(code)), hyperparameters={"exit": 1}
        )

    @pytest.fixture
    def slow_job_spec(self, code: Path) -> Callable[[str], TrainingJob]:  # type: ignore[override]
        return lambda name: TrainingJob(
            name=name, code=Code(source_dir=str(code)), hyperparameters={"sleep": 60}
        )

    @pytest.fixture
    def model_source(self, tmp_path: Path) -> str:  # type: ignore[override]
        return str(model_package(tmp_path / "pkg"))

    @pytest.fixture
    def refused_name(self) -> str:  # type: ignore[override]
        return "x" * 64

    @pytest.fixture
    def storage_prefix(self, sagemaker: SageMakerEmulator) -> str:  # type: ignore[override]
        return f"s3://{sagemaker.bucket}/conformance"

    @pytest.fixture
    def faults(self, sagemaker: SageMakerEmulator) -> Any:
        return sagemaker

    @pytest.fixture
    def fault_methods(self) -> dict[str, str]:
        return {"training.submit": "CreateTrainingJob", "registry.register": "CreateModelPackage"}

    @pytest.fixture
    def wait_timeout(self) -> float:
        return 60.0


class TestTraining(SageMakerFixtures, conformance.TrainingTests): ...


class TestRegistry(SageMakerFixtures, conformance.RegistryTests): ...


class TestEndpoints(SageMakerFixtures, conformance.EndpointTests): ...


class TestMonitoring(SageMakerFixtures, conformance.MonitoringTests): ...


class TestNotebooks(SageMakerFixtures, conformance.NotebookTests): ...


class TestStorage(SageMakerFixtures, conformance.StorageTests): ...
