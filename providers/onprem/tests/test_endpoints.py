"""On-prem endpoints: the portable model server as a real process per endpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import mlport
from mlport import DeploymentFailedError
from mlport.processes import ProcessRecord, is_running
from mlport.status import EndpointStatus
from mlport.testing import conformance


def _package(folder: Path, coefficient: float = 1.0) -> Path:
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


class EndpointFixtures(conformance.Fixtures):
    @pytest.fixture
    def model_source(self, tmp_path: Path) -> str:  # type: ignore[override]
        return str(_package(tmp_path / "pkg"))

    @pytest.fixture
    def refused_name(self) -> str:  # type: ignore[override]
        return "x" * 129


class TestEndpointConformance(EndpointFixtures, conformance.EndpointTests): ...


def test_prediction_equals_the_models_own(ml: mlport.Connection, tmp_path: Path) -> None:
    import joblib

    folder = _package(tmp_path / "pkg")
    version = ml.registry.register("eq", str(folder))
    endpoint = ml.endpoints.deploy("eq-api", version, timeout=60)
    rows = [[0.5, -1.0], [2.0, 1.0], [-3.0, 0.1]]
    model = joblib.load(folder / "model.joblib")
    assert endpoint.predict(rows) == [int(v) for v in model.predict(rows)]
    provider: Any = ml.provider_for("endpoints")
    record = ProcessRecord.from_json(provider.state.get("endpoints", "eq-api")["server"])
    ml.endpoints.delete("eq-api")
    assert not is_running(record)


def test_failed_update_keeps_the_old_version(ml: mlport.Connection, tmp_path: Path) -> None:
    good = ml.registry.register("roll", str(_package(tmp_path / "good")))
    ml.endpoints.deploy("roll-api", good, timeout=60)
    bad = ml.registry.register("roll", str(_package(tmp_path / "bad", coefficient=-1.0)))
    provider: Any = ml.provider_for("endpoints")
    staged = provider.root / "endpoints" / "roll-api" / "models" / bad.version
    ml.registry.download(bad, staged)
    (staged / "model.joblib").write_bytes(b"corrupted after download")
    with pytest.raises(DeploymentFailedError, match="previous one keeps serving"):
        ml.endpoints.deploy("roll-api", bad)
    endpoint = ml.endpoints.get("roll-api")
    assert endpoint.status is EndpointStatus.READY
    assert endpoint.variants == {good.version: 100}
    assert len(endpoint.predict([[1.0, 1.0]])) == 1
