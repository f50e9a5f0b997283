"""Compute instances and clusters; batch endpoints whose invocations write predictions."""

from __future__ import annotations

import csv
import io
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from mlport_azureml.emulator import AzureMLEmulator

from .conftest import ROWS
from .test_jobs import training_job, wait
from .test_online import _model


def test_compute_instance_lifecycle(ml: Any) -> None:
    from azure.ai.ml.entities import ComputeInstance

    created = ml.compute.begin_create_or_update(
        ComputeInstance(name="dev-box", size="Standard_DS3_v2")
    ).result()
    assert created.state == "Running"
    ml.compute.begin_stop("dev-box").result()
    assert ml.compute.get("dev-box").state == "Stopped"
    ml.compute.begin_start("dev-box").result()
    ml.compute.begin_restart("dev-box").result()
    assert ml.compute.get("dev-box").state == "Running"
    ml.compute.begin_delete("dev-box").result()
    assert [c.name for c in ml.compute.list()] == []


def test_stopping_a_stopped_instance_conflicts(ml_no_retry: Any) -> None:
    from azure.ai.ml.entities import ComputeInstance

    ml_no_retry.compute.begin_create_or_update(
        ComputeInstance(name="dev-box", size="Standard_DS3_v2")
    ).result()
    ml_no_retry.compute.begin_stop("dev-box").result()
    with pytest.raises(HttpResponseError) as caught:
        ml_no_retry.compute.begin_stop("dev-box").result()
    assert caught.value.status_code == 409


def test_job_on_a_cluster_runs_and_on_a_missing_cluster_is_rejected(
    ml: Any, ml_no_retry: Any, project: Path
) -> None:
    from azure.ai.ml.entities import AmlCompute

    ml.compute.begin_create_or_update(
        AmlCompute(name="cpu-cluster", size="Standard_DS3_v2", max_instances=2)
    ).result()
    job = ml.jobs.create_or_update(training_job(project, compute="cpu-cluster"))
    assert wait(ml, job.name).status == "Completed"
    with pytest.raises(HttpResponseError) as caught:
        ml_no_retry.jobs.create_or_update(training_job(project, compute="nowhere"))
    assert caught.value.status_code == 400


def test_batch_invocation_writes_predictions_to_storage(
    ml: Any, emulator: AzureMLEmulator, tmp_path: Path
) -> None:
    import joblib
    from azure.ai.ml import Input
    from azure.ai.ml.entities import AmlCompute, BatchDeployment, BatchEndpoint

    ml.compute.begin_create_or_update(
        AmlCompute(name="cpu-cluster", size="Standard_DS3_v2", max_instances=1)
    ).result()
    model = _model(ml, tmp_path)
    endpoint = ml.batch_endpoints.begin_create_or_update(BatchEndpoint(name="churn-batch")).result()
    assert endpoint.provisioning_state == "Succeeded"
    ml.batch_deployments.begin_create_or_update(
        BatchDeployment(
            name="first",
            endpoint_name="churn-batch",
            model=model,
            compute="cpu-cluster",
            instance_count=1,
            mini_batch_size=10,
        )
    ).result()
    assert ml.batch_endpoints.get("churn-batch").defaults.deployment_name == "first"
    data = tmp_path / "batch"
    data.mkdir()
    (data / "rows.csv").write_text("a,b\n" + "".join(f"{a},{b}\n" for a, b in ROWS))
    job = ml.batch_endpoints.invoke("churn-batch", input=Input(type="uri_folder", path=str(data)))
    with redirect_stdout(io.StringIO()):
        ml.jobs.stream(job.name)
    assert ml.jobs.get(job.name).status == "Completed"
    names = emulator.azurite.list_names(emulator.service.blob_container, "azureml/")
    written = [n for n in names if n.endswith("rows.predictions.csv")]
    assert len(written) == 1
    text = (
        emulator.azurite.container(emulator.service.blob_container)
        .download_blob(written[0])
        .readall()
        .decode()
    )
    predictions = [int(float(row["prediction"])) for row in csv.DictReader(io.StringIO(text))]
    local = joblib.load(tmp_path / "clf" / "model.joblib")
    assert predictions == local.predict(ROWS).tolist()


def test_batch_deployment_needs_an_existing_compute(ml_no_retry: Any, tmp_path: Path) -> None:
    from azure.ai.ml.entities import BatchDeployment, BatchEndpoint

    model = _model(ml_no_retry, tmp_path)
    ml_no_retry.batch_endpoints.begin_create_or_update(BatchEndpoint(name="churn-batch")).result()
    with pytest.raises(HttpResponseError) as caught:
        ml_no_retry.batch_deployments.begin_create_or_update(
            BatchDeployment(
                name="first", endpoint_name="churn-batch", model=model, compute="nowhere"
            )
        ).result()
    assert caught.value.error.target == "properties.compute"


def test_compute_name_needs_a_letter_after_its_last_dash(ml_no_retry: Any) -> None:
    from azure.ai.ml.entities import AmlCompute

    with pytest.raises(HttpResponseError) as caught:
        ml_no_retry.compute.begin_create_or_update(
            AmlCompute(name="cpu-cluster-1", size="Standard_DS3_v2", max_instances=1)
        ).result()
    assert caught.value.status_code == 400
    assert caught.value.error.target == "computeName"
    assert [c.name for c in ml_no_retry.compute.list()] == []
