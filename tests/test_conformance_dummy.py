"""The conformance suite on the in-memory dummy providers (a full one, and one lacking features)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import mlport
from mlport import Code, TrainingJob
from mlport.testing import conformance


class DummyFixtures(conformance.Fixtures):
    provider_name = "dummy"

    @pytest.fixture
    def world(self) -> str:
        return uuid.uuid4().hex

    @pytest.fixture
    def ml(self, world: str) -> mlport.Connection:
        return mlport.connect(self.provider_name, world=world, poll_interval=0.001, steps=1)

    @pytest.fixture
    def code_dir(self, tmp_path: Path) -> Path:
        (tmp_path / "code").mkdir()
        (tmp_path / "code" / "train.py").write_text("print('hi')\n")
        return tmp_path / "code"

    @pytest.fixture
    def job_spec(self, code_dir: Path) -> Callable[[str], TrainingJob]:
        return lambda name: TrainingJob(name=name, code=Code(source_dir=str(code_dir)))

    @pytest.fixture
    def failing_job_spec(self, code_dir: Path) -> Callable[[str], TrainingJob]:
        return lambda name: TrainingJob(
            name=name, code=Code(source_dir=str(code_dir)), hyperparameters={"fail": True}
        )

    @pytest.fixture
    def slow_job_spec(self, code_dir: Path) -> Callable[[str], TrainingJob]:
        return lambda name: TrainingJob(
            name=name, code=Code(source_dir=str(code_dir)), hyperparameters={"steps": 10**6}
        )

    @pytest.fixture
    def model_source(self) -> str:
        return "mem://models/source"

    @pytest.fixture
    def refused_name(self) -> str:
        return "Upper_Case"

    @pytest.fixture
    def storage_prefix(self) -> str:
        return "mem://bucket"

    @pytest.fixture
    def faults(self, world: str) -> Any:
        from mlport_dummy.cloud import world as get_world

        return get_world(world).faults

    @pytest.fixture
    def fault_methods(self) -> dict[str, str]:
        return {"training.submit": "training.submit", "registry.register": "registry.register"}


class TestTraining(DummyFixtures, conformance.TrainingTests): ...


class TestRegistry(DummyFixtures, conformance.RegistryTests): ...


class TestEndpoints(DummyFixtures, conformance.EndpointTests): ...


class TestMonitoring(DummyFixtures, conformance.MonitoringTests): ...


class TestNotebooks(DummyFixtures, conformance.NotebookTests): ...


class TestStorage(DummyFixtures, conformance.StorageTests): ...


class LimitedFixtures(DummyFixtures):
    provider_name = "dummy-limited"

    @pytest.fixture
    def refused_name(self) -> None:
        return None


class TestLimitedTraining(LimitedFixtures, conformance.TrainingTests): ...


class TestLimitedEndpoints(LimitedFixtures, conformance.EndpointTests): ...


class TestLimitedMonitoring(LimitedFixtures, conformance.MonitoringTests): ...


class TestLimitedNotebooks(LimitedFixtures, conformance.NotebookTests): ...
