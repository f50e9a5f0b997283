"""On-prem training with real processes: the contract, failures, cancel, crashes, environments."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import mlport
from mlport import Code, Compute, Environment, InvalidSpecError, JobFailedError, TrainingJob
from mlport.package import verify
from mlport.processes import ProcessRecord, is_running
from mlport.services.training import code_sha256
from mlport.status import JobStatus
from mlport.testing import conformance

SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from mlport import runtime

    hps = runtime.hyperparameters()
    print("argv", json.dumps(sys.argv[1:]))
    print("hps", json.dumps(hps))
    for name in hps.get("inputs", []):
        folder = runtime.input_dir(name)
        print("input", name, json.dumps(sorted(p.name for p in folder.iterdir())))
    for step in range(3):
        runtime.log_metric("loss", 1.0 / (step + 1), step=step)
    runtime.log_metric("accuracy", 0.75)
    (runtime.model_dir() / "model.joblib").write_bytes(b"not really joblib")
    print("a warning", file=sys.stderr)
    time.sleep(float(hps.get("sleep", 0)))
    if hps.get("exit"):
        print("boom: something broke", file=sys.stderr)
        sys.exit(int(hps["exit"]))
    """
)


@pytest.fixture
def code(tmp_path: Path) -> Path:
    source = tmp_path / "code"
    source.mkdir()
    (source / "train.py").write_text(SCRIPT)
    return source


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "train.csv"
    path.parent.mkdir()
    path.write_text("a,b\n1,2\n3,4\n")
    return path


def job(code: Path, name: str, **kwargs: Any) -> TrainingJob:
    return TrainingJob(name=name, code=Code(source_dir=str(code)), **kwargs)


def test_contract_metrics_lineage_and_package(
    ml: mlport.Connection, code: Path, data: Path
) -> None:
    (data.parent / "extra.txt").write_text("x")
    spec = job(
        code,
        "contract",
        inputs={"train": str(data), "folder": str(data.parent)},
        hyperparameters={"lr": 0.1, "name": "run one", "inputs": ["train", "folder"], "flag": True},
    )
    finished = ml.training.submit(spec).wait(60, progress=False)
    lines = list(finished.logs())
    assert (
        'argv ["--lr=0.1", "--name=run one", "--inputs=[\\"train\\", \\"folder\\"]", "--flag=true"]'
        in lines
    )
    assert 'input train ["train.csv"]' in lines
    assert 'input folder ["extra.txt", "train.csv"]' in lines
    assert "a warning" in lines
    assert finished.metrics == {"loss": pytest.approx(1 / 3), "accuracy": 0.75}

    lineage = finished.lineage
    expected = hashlib.sha256(data.read_bytes()).hexdigest()
    assert lineage["inputs"]["train"] == {"train.csv": expected}
    assert lineage["inputs"]["folder"]["train.csv"] == expected
    assert lineage["code_sha256"] == code_sha256(code)
    assert lineage["hyperparameters"]["lr"] == 0.1
    assert lineage["environment"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert any(p.startswith("pydantic==") for p in lineage["environment"]["packages"])
    assert lineage["started_at"] <= lineage["ended_at"]
    assert lineage["compute"]["machine"]["cpus"] == len(os.sched_getaffinity(0))

    assert finished.model_uri is not None
    manifest = verify(finished.model_uri.removeprefix("file://"))
    assert manifest.loader == "joblib"
    assert manifest.lineage["code_sha256"] == lineage["code_sha256"]


def test_nonzero_exit_is_failed_with_stderr(ml: mlport.Connection, code: Path) -> None:
    submitted = ml.training.submit(job(code, "exit3", hyperparameters={"exit": 3}))
    with pytest.raises(JobFailedError) as info:
        submitted.wait(60, progress=False)
    assert submitted.status is JobStatus.FAILED
    assert submitted.failure_reason is not None
    assert "exit code 3" in submitted.failure_reason
    assert "boom: something broke" in submitted.failure_reason
    assert "exit code 3" in str(info.value)
    assert submitted.metrics["accuracy"] == 0.75  # metrics logged before the failure are kept


def _wait_running(ml: mlport.Connection, name: str) -> dict[str, Any]:
    for _ in range(200):
        if ml.training.get(name).status is JobStatus.RUNNING:
            break
        time.sleep(0.05)
    provider: Any = ml.provider_for("training")
    doc: dict[str, Any] = provider.state.get("jobs", name)
    return doc


def test_cancel_stops_the_whole_group(ml: mlport.Connection, code: Path) -> None:
    submitted = ml.training.submit(job(code, "cancel-me", hyperparameters={"sleep": 60}))
    doc = _wait_running(ml, submitted.name)
    child = ProcessRecord.from_json(doc["child"])
    submitted.cancel()
    with pytest.raises(JobFailedError):
        submitted.wait(30, progress=False)
    assert submitted.status is JobStatus.CANCELLED
    assert not is_running(child)
    # The supervisor records the outcome, then exits.
    supervisor = ProcessRecord.from_json(doc["supervisor"])
    deadline = time.monotonic() + 15
    while is_running(supervisor) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not is_running(supervisor)


def test_max_runtime_is_enforced(ml: mlport.Connection, code: Path) -> None:
    submitted = ml.training.submit(
        job(
            code,
            "too-slow",
            hyperparameters={"sleep": 60},
            max_runtime="2s",
            compute=Compute(cpus=1),
        )
    )
    with pytest.raises(JobFailedError, match="max_runtime exceeded"):
        submitted.wait(30, progress=False)
    assert submitted.failure_reason == "max_runtime exceeded (2s)"
    assert submitted.lineage["compute"]["requested"] == {"cpus": 1}


def test_killed_supervisor_is_reconciled_to_failed(ml: mlport.Connection, code: Path) -> None:
    submitted = ml.training.submit(job(code, "killed", hyperparameters={"sleep": 60}))
    doc = _wait_running(ml, submitted.name)
    supervisor = ProcessRecord.from_json(doc["supervisor"])
    child = ProcessRecord.from_json(doc["child"])
    os.killpg(supervisor.pgid, signal.SIGKILL)
    for _ in range(100):
        if not is_running(supervisor):
            break
        time.sleep(0.05)
    seen = ml.training.get(submitted.name)
    assert seen.status is JobStatus.FAILED
    assert "exited without recording a result" in (seen.failure_reason or "")
    assert not is_running(child)  # the orphaned script is stopped too


def test_killed_script_is_failed_with_the_signal(ml: mlport.Connection, code: Path) -> None:
    submitted = ml.training.submit(job(code, "script-killed", hyperparameters={"sleep": 60}))
    doc = _wait_running(ml, submitted.name)
    os.killpg(ProcessRecord.from_json(doc["child"]).pgid, signal.SIGKILL)
    with pytest.raises(JobFailedError, match="SIGKILL"):
        submitted.wait(30, progress=False)


def _python(code_text: str, root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code_text],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "MLPORT_TEST_ROOT": str(root)},
    )


def test_job_outlives_the_process_that_submitted_it(
    root: Path, code: Path, ml: mlport.Connection
) -> None:
    submit = f"""
import os, mlport
from mlport import TrainingJob, Code
ml = mlport.connect("onprem", root=os.environ["MLPORT_TEST_ROOT"])
ml.training.submit(TrainingJob(name="orphan", code=Code(source_dir={str(code)!r}),
                               hyperparameters={{"sleep": 1}}))
os._exit(0)  # the submitting process dies at once, without cleaning up
"""
    assert _python(submit, root).returncode == 0
    seen_elsewhere = """
import os, mlport
ml = mlport.connect("onprem", root=os.environ["MLPORT_TEST_ROOT"], poll_interval=0.05)
job = ml.training.wait("orphan", timeout=60)
print(job.status.value, job.metrics["accuracy"])
"""
    result = _python(seen_elsewhere, root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "SUCCEEDED 0.75"
    assert ml.training.get("orphan").status is JobStatus.SUCCEEDED


def test_several_jobs_at_once(ml: mlport.Connection, code: Path) -> None:
    jobs = [
        ml.training.submit(job(code, f"para-{i}", hyperparameters={"sleep": 1})) for i in range(3)
    ]
    started = time.monotonic()
    for submitted in jobs:
        submitted.wait(60, progress=False)
    assert all(j.status is JobStatus.SUCCEEDED for j in jobs)
    assert time.monotonic() - started < 3 * 1 + 6  # they overlapped


def test_compute_beyond_this_machine_is_refused(ml: mlport.Connection, code: Path) -> None:
    cores = len(os.sched_getaffinity(0))
    with pytest.raises(InvalidSpecError, match="this machine"):
        ml.training.submit(job(code, "huge", compute=Compute(cpus=cores + 1)))
    assert list(ml.training.list()) == []  # nothing half-created


def test_images_and_remote_inputs_are_refused(ml: mlport.Connection, code: Path) -> None:
    with pytest.raises(InvalidSpecError, match="container images"):
        ml.training.submit(job(code, "img", environment=Environment(image="python:3.11")))
    with pytest.raises(InvalidSpecError, match="s3://"):
        ml.training.submit(job(code, "remote", inputs={"train": "s3://bucket/train.csv"}))
    assert list(ml.training.list()) == []


def test_logs_follow_streams_until_the_end(ml: mlport.Connection, code: Path) -> None:
    submitted = ml.training.submit(job(code, "follow", hyperparameters={"sleep": 1}))
    lines = list(ml.training.logs(submitted.name, follow=True))
    assert "a warning" in lines and any(line.startswith("MLPORT_METRIC") for line in lines)
    assert ml.training.get(submitted.name).status is JobStatus.SUCCEEDED


def test_down_stops_running_jobs(ml: mlport.Connection, code: Path) -> None:
    submitted = ml.training.submit(job(code, "downed", hyperparameters={"sleep": 60}))
    doc = _wait_running(ml, submitted.name)
    stopped = ml.down()
    assert any("downed" in line for line in stopped)
    assert not is_running(ProcessRecord.from_json(doc["child"]))
    assert ml.training.get(submitted.name).status in (JobStatus.CANCELLED, JobStatus.FAILED)


def _wheel(folder: Path) -> Path:
    """A tiny pure-Python wheel, made by hand so the test needs no package index."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mlport_probe-0.1-py3-none-any.whl"
    files = {
        "mlport_probe/__init__.py": "ANSWER = 42\n",
        "mlport_probe-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: mlport-probe\nVersion: 0.1\n",
        "mlport_probe-0.1.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{name},,\n" for name in files) + "mlport_probe-0.1.dist-info/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
        wheel.writestr("mlport_probe-0.1.dist-info/RECORD", record)
    return folder


def test_requirements_build_a_cached_virtualenv(root: Path, tmp_path: Path) -> None:
    wheels = _wheel(tmp_path / "wheels")
    source = tmp_path / "venv-code"
    source.mkdir()
    (source / "requirements.txt").write_text("mlport-probe==0.1\n")
    (source / "train.py").write_text(
        "import sys, mlport_probe\nfrom mlport import runtime\n"
        "runtime.log_metric('answer', mlport_probe.ANSWER)\nprint(sys.executable)\n"
    )
    ml = mlport.connect(
        "onprem",
        root=str(root),
        poll_interval=0.05,
        max_poll_interval=0.25,
        pip_args=["--no-index", "--find-links", str(wheels)],
    )
    try:
        first = ml.training.submit(TrainingJob(name="venv-1", code=Code(source_dir=str(source))))
        first.wait(180, progress=False)
        assert first.metrics == {"answer": 42}
        executable = list(first.logs())[-1]
        assert executable.startswith(str(root / "envs"))
        assert "mlport-probe==0.1" in first.lineage["environment"]["packages"]
        second = ml.training.submit(TrainingJob(name="venv-2", code=Code(source_dir=str(source))))
        second.wait(60, progress=False)
        assert list(second.logs())[-1] == executable  # the environment was reused
        assert len([p for p in (root / "envs").iterdir() if p.is_dir()]) == 1
    finally:
        ml.down()


def test_a_broken_requirement_fails_with_pips_words(root: Path, code: Path) -> None:
    spec = job(code, "badreq", environment=Environment(requirements=["no-such-package-xyz==1"]))
    ml = mlport.connect("onprem", root=str(root), poll_interval=0.05, pip_args=["--no-index"])
    try:
        with pytest.raises(JobFailedError, match="pip could not install no-such-package-xyz"):
            ml.training.submit(spec).wait(120, progress=False)
        assert not (root / "envs").exists() or not [
            p for p in (root / "envs").iterdir() if p.is_dir()
        ]
    finally:
        ml.down()


class OnPremFixtures(conformance.Fixtures):
    @pytest.fixture
    def job_spec(self, code: Path) -> Callable[[str], TrainingJob]:  # type: ignore[override]
        return lambda name: job(code, name)

    @pytest.fixture
    def failing_job_spec(self, code: Path) -> Callable[[str], TrainingJob]:  # type: ignore[override]
        return lambda name: job(code, name, hyperparameters={"exit": 1})

    @pytest.fixture
    def slow_job_spec(self, code: Path) -> Callable[[str], TrainingJob]:  # type: ignore[override]
        return lambda name: job(code, name, hyperparameters={"sleep": 60})

    @pytest.fixture
    def refused_name(self) -> str:  # type: ignore[override]
        return "x" * 129


class TestTrainingConformance(OnPremFixtures, conformance.TrainingTests): ...
