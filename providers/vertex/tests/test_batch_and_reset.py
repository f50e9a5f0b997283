"""BatchPredictionJob through the GAPIC v1 client, and what reset() clears."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions
from mlport_vertex.emulator import VertexEmulator

from mlport.processes import is_running

from .helpers import SERVE_IMAGE, TRAIN_IMAGE, upload_iris_artifacts, wait_for


@pytest.fixture
def clients(client_options: dict[str, Any]) -> Any:
    from google.cloud import aiplatform_v1

    class Clients:
        jobs = aiplatform_v1.JobServiceClient(**client_options)
        models = aiplatform_v1.ModelServiceClient(**client_options)
        endpoints = aiplatform_v1.EndpointServiceClient(**client_options)

    return Clients


@pytest.fixture
def model(emu: VertexEmulator, clients: Any, parent: str, tmp_path: Path) -> str:
    uploaded = clients.models.upload_model(
        parent=parent,
        model={
            "display_name": "iris",
            "artifact_uri": upload_iris_artifacts(emu, tmp_path),
            "container_spec": {"image_uri": SERVE_IMAGE},
        },
    ).result()
    return str(uploaded.model)


@pytest.fixture
def bucket(emu: VertexEmulator) -> Any:
    from google.cloud import storage

    return storage.Client(project=emu.project, credentials=emu.credentials).bucket(
        emu.staging_bucket[5:]
    )


def _request(emu: VertexEmulator, model: str, **changes: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "display_name": "score",
        "model": model,
        "input_config": {
            "instances_format": "csv",
            "gcs_source": {"uris": [f"{emu.staging_bucket}/in/rows.csv"]},
        },
        "output_config": {
            "predictions_format": "jsonl",
            "gcs_destination": {"output_uri_prefix": f"{emu.staging_bucket}/out"},
        },
        "dedicated_resources": {
            "machine_spec": {"machine_type": "n1-standard-4"},
            "starting_replica_count": 1,
        },
    }
    request.update(changes)
    return request


def _ended(job: Any) -> bool:
    return job.state.name in ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED")


def test_csv_batch_with_a_bad_row_writes_predictions_and_errors(
    clients: Any, parent: str, model: str, emu: VertexEmulator, bucket: Any
) -> None:
    bucket.blob("in/rows.csv").upload_from_string(
        "sl,sw,pl,pw\n5.1,3.5,1.4,0.2\n7.7,3.0,6.1,2.3\n1.0,oops,1.0,1.0\n"
    )
    job = clients.jobs.create_batch_prediction_job(
        parent=parent, batch_prediction_job=_request(emu, model)
    )
    assert job.state.name == "JOB_STATE_QUEUED" and job.model_version_id == "1"
    done = wait_for(lambda: clients.jobs.get_batch_prediction_job(name=job.name), _ended)
    assert done.state.name == "JOB_STATE_SUCCEEDED", done.error.message
    assert (done.completion_stats.successful_count, done.completion_stats.failed_count) == (2, 1)
    folder = done.output_info.gcs_output_directory[len(emu.staging_bucket) + 1 :]
    predictions = [
        json.loads(line)
        for line in bucket.blob(f"{folder}/predictions_00001.jsonl").download_as_text().splitlines()
    ]
    assert [p["prediction"] for p in predictions] == [0, 2]
    errors = bucket.blob(f"{folder}/errors_00001.jsonl").download_as_text().splitlines()
    assert json.loads(errors[0])["instance"] == [1.0, "oops", 1.0, 1.0]
    listed = clients.jobs.list_batch_prediction_jobs(parent=parent)
    assert [j.name for j in listed] == [job.name]
    clients.jobs.delete_batch_prediction_job(name=job.name).result()
    with pytest.raises(exceptions.NotFound):
        clients.jobs.get_batch_prediction_job(name=job.name)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"display_name": ""}, "display_name"),
        ({"model": ""}, "model"),
        ({"input_config": {"gcs_source": {"uris": ["gs://b/x"]}}}, "instances_format"),
        (
            {"input_config": {"instances_format": "jsonl", "gcs_source": {"uris": []}}},
            "gcs_source.uris",
        ),
        (
            {"output_config": {"predictions_format": "jsonl", "gcs_destination": {}}},
            "output_uri_prefix",
        ),
        ({"dedicated_resources": None}, "dedicated_resources"),
        (
            {"dedicated_resources": {"machine_spec": {"machine_type": "n9-big"}}},
            "machine_type",
        ),
    ],
)
def test_batch_validation(
    clients: Any, parent: str, model: str, emu: VertexEmulator, change: dict[str, Any], field: str
) -> None:
    request = _request(emu, model)
    for key, value in change.items():
        if value is None:
            request.pop(key)
        else:
            request[key] = value
    with pytest.raises(exceptions.InvalidArgument) as caught:
        clients.jobs.create_batch_prediction_job(parent=parent, batch_prediction_job=request)
    assert field in str(caught.value.details) + caught.value.message


def test_batch_of_a_missing_model_is_not_found(
    clients: Any, parent: str, emu: VertexEmulator
) -> None:
    with pytest.raises(exceptions.NotFound):
        clients.jobs.create_batch_prediction_job(
            parent=parent, batch_prediction_job=_request(emu, f"{parent}/models/404")
        )


def test_injected_batch_failure(clients: Any, parent: str, model: str, emu: VertexEmulator) -> None:
    emu.inject("CreateBatchPredictionJob", "JOB_FAILED")
    job = clients.jobs.create_batch_prediction_job(
        parent=parent, batch_prediction_job=_request(emu, model)
    )
    done = wait_for(lambda: clients.jobs.get_batch_prediction_job(name=job.name), _ended)
    assert done.state.name == "JOB_STATE_FAILED"
    assert "injected" in done.error.message


def test_reset_forgets_resources_and_stops_processes(
    clients: Any, parent: str, model: str, emu: VertexEmulator, bucket: Any
) -> None:
    endpoint = clients.endpoints.create_endpoint(parent=parent, endpoint={"display_name": "e"})
    endpoint_name = endpoint.result().name
    clients.endpoints.deploy_model(
        endpoint=endpoint_name,
        deployed_model={
            "model": model,
            "dedicated_resources": {
                "machine_spec": {"machine_type": "n1-standard-2"},
                "min_replica_count": 1,
            },
        },
    ).result()
    job = clients.jobs.create_custom_job(
        parent=parent,
        custom_job={
            "display_name": "sleeper",
            "job_spec": {
                "worker_pool_specs": [
                    {
                        "machine_spec": {"machine_type": "n1-standard-4"},
                        "replica_count": 1,
                        "container_spec": {
                            "image_uri": TRAIN_IMAGE,
                            "command": ["python", "-c", "import time; time.sleep(60)"],
                        },
                    }
                ]
            },
        },
    )
    wait_for(
        lambda: clients.jobs.get_custom_job(name=job.name),
        lambda j: j.state.name == "JOB_STATE_RUNNING",
    )
    processes = wait_for(lambda: emu.processes, lambda found: len(found) == 2)
    assert len(processes) == 2 and all(is_running(p) for p in processes)
    emu.inject("ListEndpoints", "INTERNAL")

    emu.reset()

    assert not any(is_running(p) for p in processes)
    assert emu.processes == []
    assert list(clients.endpoints.list_endpoints(parent=parent)) == []  # the fault is gone too
    assert list(clients.jobs.list_custom_jobs(parent=parent)) == []
    with pytest.raises(exceptions.NotFound):
        clients.models.get_model(name=model)
    assert list(bucket.list_blobs()) == []  # storage is empty; the staging bucket is back
