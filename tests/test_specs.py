"""Specs reject at construction what no provider accepts, naming the field and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlport import Code, Compute, Environment, InvalidSpecError, TrainingJob
from mlport.specs import (
    DeploymentOptions,
    MonitorOptions,
    NotebookOptions,
    format_duration,
    parse_duration,
    spec_hash,
)


def job(**kwargs: object) -> TrainingJob:
    return TrainingJob(code=Code(source_dir="src"), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("2h", 7200),
        ("30m", 1800),
        ("90s", 90),
        ("1h30m", 5400),
        ("1d", 86400),
        (45, 45),
        ("120", 120),
        (1.4, 1),
    ],
)
def test_durations(value: object, seconds: int) -> None:
    assert parse_duration(value) == seconds
    assert job(max_runtime=value).max_runtime == seconds


@pytest.mark.parametrize("value", ["2 hours", "h", "-5", 0, -1, "1w", True, None, [1]])
def test_bad_durations_name_the_field(value: object) -> None:
    with pytest.raises(InvalidSpecError, match="max_runtime"):
        job(max_runtime=value)


def test_format_duration() -> None:
    assert format_duration(5400) == "1h30m"
    assert format_duration(90061) == "1d1h1m1s"


@pytest.mark.parametrize(
    ("kwargs", "culprit"),
    [
        ({"nmae": "x"}, "did you mean 'name'"),
        ({"name": "has space"}, "'name'"),
        ({"name": "-leading"}, "portable-name"),
        ({"name": "x" * 256}, "portable-name"),
        ({"name": "a", "base_name": "b"}, "not both"),
        ({"inputs": {"1bad": "x"}}, "input name '1bad'"),
        ({"inputs": {"train": ""}}, "empty path"),
        ({"hyperparameters": {"lr": float("nan")}}, "hyperparameter 'lr'"),
        ({"hyperparameters": {"obj": object()}}, "hyperparameter 'obj'"),
        ({"hyperparameters": {"bad key": 1}}, "'bad key'"),
        ({"env": {"MLPORT_MODEL_DIR": "x"}}, "reserved"),
        ({"env": {"1X": "x"}}, "'1X'"),
        ({"provider_options": {"SageMaker!": {}}}, "provider name"),
        ({"compute": {"cpus": 0}}, "cpus"),
        ({"compute": {"gpus": -1}}, "gpus"),
        ({"compute": {"cpu": 4}}, "did you mean 'cpus'"),
        ({"environment": {"framework": "sklearn", "image": "x"}}, "not both"),
        ({"environment": {"version": "1.5"}}, "needs a framework"),
        ({"environment": {"framework": "scikit"}}, "framework"),
        ({"environment": {"framework": "sklearn", "python": "py3"}}, "3.11"),
    ],
)
def test_bad_training_job_names_the_culprit(kwargs: dict[str, object], culprit: str) -> None:
    with pytest.raises(InvalidSpecError, match=culprit) as info:
        job(**kwargs)
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith("TrainingJob")


@pytest.mark.parametrize("entry", ["/abs/train.py", "../up.py", ""])
def test_entry_point_stays_inside_source_dir(entry: str) -> None:
    with pytest.raises(InvalidSpecError, match="entry_point"):
        Code(source_dir="src", entry_point=entry)


def test_assignment_is_validated_too() -> None:
    spec = job(name="ok")
    with pytest.raises(InvalidSpecError, match="max_runtime"):
        spec.max_runtime = "soon"  # type: ignore[assignment]


def test_paths_are_accepted_as_path_objects() -> None:
    spec = TrainingJob(code=Code(source_dir=Path("src")), inputs={"train": Path("data/train.csv")})
    assert spec.code.source_dir == "src"
    assert spec.inputs == {"train": "data/train.csv"}


def test_gpu_type_implies_a_gpu_and_is_normalised() -> None:
    compute = Compute(gpu_type="nvidia_tesla_t4")
    assert (compute.gpus, compute.gpu_type) == (1, "T4")


def test_spec_hash_is_stable_and_sensitive() -> None:
    a = job(name="x", hyperparameters={"a": 1, "b": 2})
    b = job(name="x", hyperparameters={"b": 2, "a": 1})
    c = job(name="x", hyperparameters={"a": 1, "b": 3})
    assert spec_hash(a) == spec_hash(b) != spec_hash(c)


def test_deployment_options() -> None:
    with pytest.raises(InvalidSpecError, match="max_replicas"):
        DeploymentOptions(min_replicas=3, max_replicas=2)
    with pytest.raises(InvalidSpecError, match="capture_percent"):
        DeploymentOptions(capture_percent=101)
    with pytest.raises(InvalidSpecError, match="traffic_percent"):
        DeploymentOptions(traffic_percent=-1)


def test_monitor_and_notebook_options() -> None:
    assert MonitorOptions(baseline="b.csv", schedule="15m").schedule == 900
    with pytest.raises(InvalidSpecError, match="alert"):
        MonitorOptions(baseline="b.csv", alert="ftp://x")
    with pytest.raises(InvalidSpecError, match="thresholds"):
        MonitorOptions(baseline="b.csv", thresholds={"f": 0})
    assert NotebookOptions(idle_timeout="1h").idle_timeout == 3600
    with pytest.raises(InvalidSpecError, match="idle_timeout"):
        NotebookOptions(idle_timeout="later")


def test_environment_defaults() -> None:
    assert Environment().framework is None
    assert Environment(framework="sklearn", version="1.5").version == "1.5"
