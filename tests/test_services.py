"""Behaviour the service base classes give every provider, seen through the dummy provider."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import pytest

import mlport
from mlport import (
    AlreadyExistsError,
    Code,
    Compute,
    ConflictError,
    InvalidSpecError,
    NotFoundError,
    NotSupportedError,
    ThrottledError,
    TrainingJob,
    TransientError,
)
from mlport.events import Event


@pytest.fixture
def world() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def ml(world: str) -> mlport.Connection:
    return mlport.connect("dummy", world=world, poll_interval=0.001, retry_attempts=4)


@pytest.fixture
def faults(world: str):  # type: ignore[no-untyped-def]
    from mlport_dummy.cloud import world as get_world

    return get_world(world).faults


@pytest.fixture
def code(tmp_path: Path) -> Code:
    (tmp_path / "train.py").write_text("print(1)\n")
    return Code(source_dir=str(tmp_path))


def test_missing_source_dir_and_entry_point(
    ml: mlport.Connection, tmp_path: Path, code: Code
) -> None:
    with pytest.raises(InvalidSpecError, match="not a directory"):
        ml.training.submit(TrainingJob(code=Code(source_dir=str(tmp_path / "nope"))))
    with pytest.raises(InvalidSpecError, match="main.py.*train.py"):
        ml.training.submit(
            TrainingJob(code=Code(source_dir=code.source_dir, entry_point="main.py"))
        )


def test_missing_input_is_named(ml: mlport.Connection, code: Code) -> None:
    with pytest.raises(InvalidSpecError, match="inputs\\['train'\\]"):
        ml.training.submit(TrainingJob(code=code, inputs={"train": "no/such.csv"}))


def test_provider_name_rule_is_checked_at_submit(ml: mlport.Connection, code: Code) -> None:
    with pytest.raises(InvalidSpecError, match="provider 'dummy'.*dummy-name"):
        ml.training.submit(TrainingJob(name="Churn_Train", code=code))


def test_base_name_gets_a_unique_suffix(ml: mlport.Connection, code: Code) -> None:
    a = ml.training.submit(TrainingJob(base_name="churn", code=code))
    b = ml.training.submit(TrainingJob(base_name="churn", code=code))
    assert a.name != b.name
    assert a.name.startswith("churn-") and b.name.startswith("churn-")


def test_unsupported_compute_feature(ml: mlport.Connection, code: Code) -> None:
    with pytest.raises(NotSupportedError, match="multi-node"):
        ml.training.submit(TrainingJob(code=code, compute=Compute(count=2)))


def test_compute_is_resolved_from_the_catalog(ml: mlport.Connection, code: Code) -> None:
    from mlport.compute import resolve

    job = ml.training.submit(TrainingJob(code=code, compute=Compute(cpus=8, memory_gb=32)))
    expected = resolve(Compute(cpus=8, memory_gb=32), "sagemaker").instance_type
    assert job.lineage["instance_type"] == expected
    with pytest.raises(InvalidSpecError, match="nearest"):
        ml.training.submit(TrainingJob(code=code, compute=Compute(cpus=10_000)))


def test_throttling_is_retried(ml: mlport.Connection, code: Code, faults) -> None:  # type: ignore[no-untyped-def]
    faults.inject("training.submit", ThrottledError("slow down", retry_after=0.01), times=2)
    job = ml.training.submit(TrainingJob(name="t1", code=code))
    assert job.name == "t1"


def test_retries_are_bounded(ml: mlport.Connection, code: Code, faults) -> None:  # type: ignore[no-untyped-def]
    faults.inject("training.get", TransientError("reset"), times=10)
    with pytest.raises(TransientError):
        ml.training.get("t1")
    assert faults.pending("training.get") == 6  # 4 attempts were made


def test_non_retryable_errors_are_not_retried(ml: mlport.Connection, code: Code, faults) -> None:  # type: ignore[no-untyped-def]
    faults.inject("training.submit", AlreadyExistsError("taken"), times=1)
    faults.inject("training.get", ConflictError("busy"), times=3)
    with pytest.raises(ConflictError):
        ml.training.submit(TrainingJob(name="t2", code=code))
    assert faults.pending("training.get") == 2


def test_retries_are_logged_at_debug(
    ml: mlport.Connection, code: Code, faults, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    faults.inject("training.list", TransientError("reset"), times=1)
    with caplog.at_level(logging.DEBUG, logger="mlport.retry"):
        list(ml.training.list())
    assert any("retrying dummy training.list" in r.getMessage() for r in caplog.records)


def test_events_are_emitted(ml: mlport.Connection, code: Code) -> None:
    seen: list[Event] = []
    unsubscribe = ml.events.subscribe(seen.append)
    job = ml.training.submit(TrainingJob(name="ev", code=code))
    unsubscribe()
    ml.training.submit(TrainingJob(name="ev2", code=code))
    assert [(e.kind, e.resource) for e in seen] == [("training.submitted", "ev")]
    assert seen[0].data["provider_id"] == job.provider_id


def test_list_pages_lazily(ml: mlport.Connection, code: Code, world: str) -> None:
    from mlport_dummy.cloud import world as get_world

    for i in range(5):
        ml.training.submit(TrainingJob(name=f"p{i}", code=code))
    calls = get_world(world).calls
    before = calls.get("training.list", 0)
    listing = ml.training.list()
    assert calls.get("training.list", 0) == before  # nothing fetched yet
    next(listing)
    assert calls["training.list"] == before + 1
    assert len(list(listing)) == 4
    assert calls["training.list"] == before + 3  # pages of two


def test_wait_shows_plain_progress_when_not_a_terminal(
    ml: mlport.Connection, code: Code, capsys: pytest.CaptureFixture[str]
) -> None:
    job = ml.training.submit(TrainingJob(name="w1", code=code))
    job.wait(logs=True)
    out, err = capsys.readouterr()
    assert "starting train.py" in out  # streamed logs on stdout
    assert "[mlport] training job w1: SUCCEEDED" in err  # progress lines on stderr


def test_delete_of_running_job_conflicts(ml: mlport.Connection, code: Code) -> None:
    ml.training.submit(TrainingJob(name="busy", code=code, hyperparameters={"steps": 1000}))
    with pytest.raises(ConflictError, match="cancel"):
        ml.training.delete("busy")


def test_register_requires_a_finished_job(ml: mlport.Connection, code: Code) -> None:
    job = ml.training.submit(TrainingJob(name="early", code=code, hyperparameters={"steps": 1000}))
    with pytest.raises(InvalidSpecError, match="early.*wait"):
        ml.registry.register("m", job)
    with pytest.raises(InvalidSpecError, match="neither"):
        ml.registry.register("m", "no/such/dir")


def test_predict_accepts_arrays_and_frames(ml: mlport.Connection) -> None:
    version = ml.registry.register("m", "mem://x")
    ml.endpoints.deploy("ep", version)

    class Array:
        def tolist(self) -> list[list[float]]:
            return [[1.0, 2.0]]

    assert ml.endpoints.predict("ep", Array()) == [3.0]
    with pytest.raises(InvalidSpecError, match="non-empty list"):
        ml.endpoints.predict("ep", [])


def test_handles_need_a_service() -> None:
    from mlport import Job

    with pytest.raises(NotSupportedError, match="not bound"):
        Job(name="loose").refresh()


def _bare_provider(**spec_kwargs: Any) -> Any:
    from mlport_dummy import DummyConfig
    from mlport_dummy.cloud import DummyProvider

    from mlport.providers import ProviderSpec

    spec = ProviderSpec("bare", DummyConfig, "x:y", "x", **spec_kwargs)
    return DummyProvider(spec, DummyConfig(provider="bare", world=uuid.uuid4().hex))


def test_provider_without_catalog_gets_the_request_as_is() -> None:
    provider = _bare_provider()
    resolved = provider.resolve_compute(Compute(cpus=3, gpus=1))
    assert resolved.instance_type is None
    assert resolved.requested == Compute(cpus=3, gpus=1)
    assert provider.resolve_compute(Compute(instance_type="big")).instance_type == "big"


def test_schedule_needs_the_capability() -> None:
    monitoring = _bare_provider(unsupported={"monitoring.schedule": "runs on demand only"}).service(
        "monitoring"
    )
    with pytest.raises(NotSupportedError, match="runs on demand only"):
        monitoring.enable("ep", baseline="b.csv", schedule="1h")
    with pytest.raises(NotFoundError, match="ep"):  # on demand is allowed; the endpoint is missing
        monitoring.enable("ep", baseline="b.csv", schedule=None)
