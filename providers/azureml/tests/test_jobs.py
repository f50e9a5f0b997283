"""Command jobs really run: inputs from Azurite, outputs back to it, logs streamed."""

from __future__ import annotations

import io
import time
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from mlport_azureml.emulator import AzureMLEmulator


def _environment() -> Any:
    from azure.ai.ml.entities import Environment

    return Environment(image="mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest")


def training_job(project: Path, **overrides: Any) -> Any:
    from azure.ai.ml import Input, Output, command

    spec: dict[str, Any] = {
        "code": project / "src",
        "command": "python train.py --data ${{inputs.data}} --model ${{outputs.model}} "
        "--c ${{inputs.c}}",
        "inputs": {"data": Input(type="uri_folder", path=str(project / "data")), "c": 1.0},
        "outputs": {"model": Output(type="uri_folder")},
        "environment": _environment(),
        "environment_variables": {"GREETING": "hello"},
        "instance_type": "Standard_DS3_v2",
        "experiment_name": "churn",
    }
    spec.update(overrides)
    return command(**spec)


def wait(ml: Any, name: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        job = ml.jobs.get(name)
        if job.status in ("Completed", "Failed", "Canceled"):
            return job
        assert time.monotonic() < deadline, f"job {name} still {job.status}"
        time.sleep(0.1)


def test_training_job_runs_streams_its_log_and_writes_its_output(
    ml: Any, emulator: AzureMLEmulator, project: Path, tmp_path: Path
) -> None:
    job = ml.jobs.create_or_update(training_job(project))
    assert job.status in ("NotStarted", "Queued", "Preparing", "Running")
    assert job.id.endswith(f"/workspaces/{emulator.workspace_name}/jobs/{job.name}")
    printed = io.StringIO()
    with redirect_stdout(printed):
        ml.jobs.stream(job.name)
    assert f"trained in run {job.name} with hello" in printed.getvalue()
    finished = ml.jobs.get(job.name)
    assert finished.status == "Completed"
    ml.jobs.download(job.name, output_name="model", download_path=tmp_path / "out")
    assert (tmp_path / "out" / "named-outputs" / "model" / "model.joblib").is_file()
    assert job.name in [j.name for j in ml.jobs.list()]


def test_failing_command_ends_failed_with_its_error_and_log(ml: Any, project: Path) -> None:
    from azure.ai.ml.exceptions import JobException

    (project / "src" / "boom.py").write_text("raise SystemExit('the data is missing')\n")
    job = ml.jobs.create_or_update(training_job(project, command="python boom.py"))
    with pytest.raises(JobException, match="the data is missing"), redirect_stdout(io.StringIO()):
        ml.jobs.stream(job.name)
    assert ml.jobs.get(job.name).status == "Failed"


def test_job_moves_through_azure_ml_states(
    ml: Any, emulator: AzureMLEmulator, project: Path
) -> None:
    emulator.settings.job_step_seconds = 0.3
    try:
        (project / "src" / "quick.py").write_text("print('ok')\n")
        job = ml.jobs.create_or_update(training_job(project, command="python quick.py"))
        seen = [job.status]
        deadline = time.monotonic() + 30
        while seen[-1] not in ("Completed", "Failed") and time.monotonic() < deadline:
            status = ml.jobs.get(job.name).status
            if status != seen[-1]:
                seen.append(status)
            time.sleep(0.05)
    finally:
        emulator.settings.job_step_seconds = 0.0
    order = ["NotStarted", "Queued", "Preparing", "Running", "Finalizing", "Completed"]
    assert seen[-1] == "Completed"
    assert [order.index(s) for s in seen] == sorted(order.index(s) for s in seen)
    assert {"Queued", "Running"} <= set(seen)


def test_cancel_stops_a_running_job(ml: Any, project: Path) -> None:
    (project / "src" / "slow.py").write_text(
        "import time\nprint('started', flush=True)\ntime.sleep(60)\n"
    )
    job = ml.jobs.create_or_update(training_job(project, command="python slow.py"))
    deadline = time.monotonic() + 30
    while ml.jobs.get(job.name).status != "Running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    ml.jobs.begin_cancel(job.name).result()
    assert wait(ml, job.name).status == "Canceled"


def test_injected_job_failure(ml: Any, emulator: AzureMLEmulator, project: Path) -> None:
    emulator.inject("Jobs_Execute", "JobFailed")
    job = ml.jobs.create_or_update(training_job(project))
    assert wait(ml, job.name).status == "Failed"
    second = ml.jobs.create_or_update(training_job(project))
    assert wait(ml, second.name).status == "Completed"


def test_input_on_a_missing_datastore_is_rejected_naming_the_input(
    ml_no_retry: Any, project: Path
) -> None:
    from azure.ai.ml import Input

    with pytest.raises(HttpResponseError) as caught:
        ml_no_retry.jobs.create_or_update(
            training_job(
                project,
                inputs={
                    "data": Input(type="uri_folder", path="azureml://datastores/nostore/paths/x/"),
                    "c": 1.0,
                },
            )
        )
    assert caught.value.status_code == 400
    assert "nostore" in caught.value.message
    assert caught.value.error.target == "properties.inputs.data"


def test_unknown_instance_type_is_rejected(ml_no_retry: Any, project: Path) -> None:
    with pytest.raises(HttpResponseError) as caught:
        ml_no_retry.jobs.create_or_update(training_job(project, instance_type="Standard_Nope"))
    assert caught.value.status_code == 400
    assert caught.value.error.code == "UserError"


def test_same_name_with_another_command_conflicts(ml_no_retry: Any, project: Path) -> None:
    ml_no_retry.jobs.create_or_update(training_job(project, name="fixed-name"))
    with pytest.raises(ResourceExistsError):
        ml_no_retry.jobs.create_or_update(
            training_job(project, name="fixed-name", command="python other.py")
        )


def test_missing_job_is_resource_not_found(ml: Any) -> None:
    with pytest.raises(ResourceNotFoundError):
        ml.jobs.get("no-such-job")
