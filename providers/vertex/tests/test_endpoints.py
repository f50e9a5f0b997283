"""EndpointService and PredictionService through the GAPIC v1 clients."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.api_core import exceptions
from mlport_vertex.emulator import Delays, VertexEmulator

from .helpers import SERVE_IMAGE, upload_iris_artifacts

ROWS = [[5.1, 3.5, 1.4, 0.2], [7.7, 3.0, 6.1, 2.3]]


@pytest.fixture
def clients(client_options: dict[str, Any]) -> Any:
    from google.cloud import aiplatform_v1

    class Clients:
        endpoints = aiplatform_v1.EndpointServiceClient(**client_options)
        models = aiplatform_v1.ModelServiceClient(**client_options)
        predictions = aiplatform_v1.PredictionServiceClient(**client_options)
        jobs = aiplatform_v1.JobServiceClient(**client_options)

    return Clients


@pytest.fixture
def model(emu: VertexEmulator, clients: Any, parent: str, tmp_path: Path) -> str:
    artifacts = upload_iris_artifacts(emu, tmp_path)
    uploaded = clients.models.upload_model(
        parent=parent,
        model={
            "display_name": "iris",
            "artifact_uri": artifacts,
            "container_spec": {"image_uri": SERVE_IMAGE},
        },
    ).result()
    return f"{uploaded.model}@{uploaded.model_version_id}"


def _deployed(model: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "dedicated_resources": {
            "machine_spec": {"machine_type": "n1-standard-2"},
            "min_replica_count": 1,
        },
        **extra,
    }


@pytest.fixture
def endpoint(clients: Any, parent: str) -> str:
    created = clients.endpoints.create_endpoint(
        parent=parent, endpoint={"display_name": "iris-api", "labels": {"team": "ml"}}
    ).result()
    return str(created.name)


@pytest.fixture
def slow_operations(emu: VertexEmulator) -> Iterator[None]:
    emu.delays = Delays(operation=0.3)
    yield
    emu.delays = Delays()


def test_deploy_two_versions_split_traffic_and_predict(
    clients: Any, parent: str, model: str, endpoint: str
) -> None:
    first = clients.endpoints.deploy_model(
        endpoint=endpoint, deployed_model=_deployed(model), traffic_split={"0": 100}
    ).result()
    deployed_one = first.deployed_model.id
    answer = clients.predictions.predict(endpoint=endpoint, instances=ROWS)
    assert list(answer.predictions) == [0, 2]
    assert answer.deployed_model_id == deployed_one
    assert answer.model == model.split("@", maxsplit=1)[0] and answer.model_version_id == "1"

    raw = clients.predictions.raw_predict(
        endpoint=endpoint,
        http_body={
            "content_type": "application/json",
            "data": json.dumps({"instances": ROWS}).encode(),
        },
    )
    assert json.loads(raw.data)["predictions"] == [0, 2]

    with pytest.raises(exceptions.InvalidArgument, match="sum to 100"):
        clients.endpoints.deploy_model(
            endpoint=endpoint,
            deployed_model=_deployed(model),
            traffic_split={"0": 50, deployed_one: 40},
        )
    with pytest.raises(exceptions.InvalidArgument, match="not on the endpoint"):
        clients.endpoints.deploy_model(
            endpoint=endpoint,
            deployed_model=_deployed(model),
            traffic_split={"0": 50, "123": 50},
        )
    second = clients.endpoints.deploy_model(
        endpoint=endpoint,
        deployed_model=_deployed(model),
        traffic_split={"0": 0, deployed_one: 100},
    ).result()
    deployed_two = second.deployed_model.id
    state = clients.endpoints.get_endpoint(name=endpoint)
    assert dict(state.traffic_split) == {deployed_one: 100, deployed_two: 0}

    from google.protobuf import field_mask_pb2

    mask = field_mask_pb2.FieldMask(paths=["traffic_split"])
    with pytest.raises(exceptions.InvalidArgument, match="sum to 100"):
        clients.endpoints.update_endpoint(
            endpoint={"name": endpoint, "traffic_split": {deployed_one: 10, deployed_two: 10}},
            update_mask=mask,
        )
    with pytest.raises(exceptions.InvalidArgument, match="not on the endpoint"):
        clients.endpoints.update_endpoint(
            endpoint={"name": endpoint, "traffic_split": {"999": 100}}, update_mask=mask
        )
    clients.endpoints.update_endpoint(
        endpoint={"name": endpoint, "traffic_split": {deployed_one: 0, deployed_two: 100}},
        update_mask=mask,
    )
    assert clients.predictions.predict(endpoint=endpoint, instances=ROWS).deployed_model_id == (
        deployed_two
    )

    with pytest.raises(exceptions.FailedPrecondition, match="has traffic"):
        clients.endpoints.undeploy_model(endpoint=endpoint, deployed_model_id=deployed_two)
    with pytest.raises(exceptions.FailedPrecondition, match="deployed models"):
        clients.endpoints.delete_endpoint(name=endpoint)
    with pytest.raises(exceptions.FailedPrecondition, match="deployed"):
        clients.models.delete_model(name=model.split("@", maxsplit=1)[0])

    mutated = clients.endpoints.mutate_deployed_model(
        endpoint=endpoint,
        deployed_model={
            "id": deployed_two,
            "dedicated_resources": {"min_replica_count": 2, "max_replica_count": 3},
        },
        update_mask=field_mask_pb2.FieldMask(
            paths=["dedicated_resources.min_replica_count", "dedicated_resources.max_replica_count"]
        ),
    ).result()
    assert mutated.deployed_model.dedicated_resources.max_replica_count == 3

    clients.endpoints.undeploy_model(endpoint=endpoint, deployed_model_id=deployed_one).result()
    clients.endpoints.undeploy_model(endpoint=endpoint, deployed_model_id=deployed_two).result()
    with pytest.raises(exceptions.FailedPrecondition, match="any deployed model"):
        clients.predictions.predict(endpoint=endpoint, instances=ROWS)
    clients.endpoints.delete_endpoint(name=endpoint).result()
    with pytest.raises(exceptions.NotFound):
        clients.endpoints.get_endpoint(name=endpoint)


def test_endpoint_validation(clients: Any, parent: str, endpoint: str, model: str) -> None:
    with pytest.raises(exceptions.InvalidArgument, match="display name"):
        clients.endpoints.create_endpoint(parent=parent, endpoint={"display_name": ""})
    with pytest.raises(exceptions.InvalidArgument, match="machine_type"):
        clients.endpoints.deploy_model(
            endpoint=endpoint,
            deployed_model={
                "model": model,
                "dedicated_resources": {
                    "machine_spec": {"machine_type": "z9-mega-1"},
                    "min_replica_count": 1,
                },
            },
        )
    with pytest.raises(exceptions.InvalidArgument, match="dedicated_resources"):
        clients.endpoints.deploy_model(endpoint=endpoint, deployed_model={"model": model})
    with pytest.raises(exceptions.NotFound):
        clients.endpoints.deploy_model(
            endpoint=endpoint, deployed_model=_deployed(model.split("@", maxsplit=1)[0] + "@9")
        )
    with pytest.raises(exceptions.NotFound):
        clients.endpoints.deploy_model(
            endpoint=f"{parent}/endpoints/404", deployed_model=_deployed(model)
        )
    named = clients.endpoints.create_endpoint(
        request={"parent": parent, "endpoint": {"display_name": "named"}, "endpoint_id": "churn"}
    ).result()
    assert named.name.endswith("/endpoints/churn")
    with pytest.raises(exceptions.AlreadyExists):
        clients.endpoints.create_endpoint(
            request={"parent": parent, "endpoint": {"display_name": "x"}, "endpoint_id": "churn"}
        )
    listed = clients.endpoints.list_endpoints(parent=parent)
    assert [e.display_name for e in listed] == ["iris-api", "named"]


@pytest.mark.usefixtures("slow_operations")
def test_long_running_operations_are_polled_until_done(
    clients: Any, parent: str, emu: VertexEmulator
) -> None:
    operation = clients.endpoints.create_endpoint(parent=parent, endpoint={"display_name": "slow"})
    assert not operation.done()
    created = operation.result(timeout=30)
    assert created.display_name == "slow"
    assert operation.done()

    from google.longrunning import operations_pb2

    ops = clients.endpoints.list_operations(
        request=operations_pb2.ListOperationsRequest(name=created.name)
    )
    assert [op.name for op in ops.operations] == [operation.operation.name]


def test_faults_on_predict_and_operations(
    clients: Any, parent: str, endpoint: str, emu: VertexEmulator
) -> None:
    emu.inject("Predict", "UNAVAILABLE")
    with pytest.raises(exceptions.ServiceUnavailable):
        clients.predictions.predict(endpoint=endpoint, instances=ROWS, retry=None)
    emu.inject("GetOperation", "INTERNAL")
    emu.delays = Delays(operation=0.2)
    try:
        operation = clients.endpoints.create_endpoint(parent=parent, endpoint={"display_name": "x"})
        with pytest.raises(exceptions.InternalServerError):
            operation.result(timeout=30, retry=None)
    finally:
        emu.delays = Delays()


def test_monitoring_job_lifecycle(clients: Any, parent: str, model: str, endpoint: str) -> None:
    deployed = (
        clients.endpoints.deploy_model(endpoint=endpoint, deployed_model=_deployed(model))
        .result()
        .deployed_model.id
    )
    request = {
        "display_name": "drift",
        "endpoint": endpoint,
        "model_deployment_monitoring_objective_configs": [{"deployed_model_id": deployed}],
        "model_deployment_monitoring_schedule_config": {"monitor_interval": {"seconds": 3600}},
        "logging_sampling_strategy": {"random_sample_config": {"sample_rate": 0.5}},
    }
    bad = {**request, "model_deployment_monitoring_schedule_config": {}}
    with pytest.raises(exceptions.InvalidArgument, match="monitor_interval"):
        clients.jobs.create_model_deployment_monitoring_job(
            parent=parent, model_deployment_monitoring_job=bad
        )
    bad = {**request, "model_deployment_monitoring_objective_configs": [{"deployed_model_id": "1"}]}
    with pytest.raises(exceptions.InvalidArgument, match="not on"):
        clients.jobs.create_model_deployment_monitoring_job(
            parent=parent, model_deployment_monitoring_job=bad
        )

    request["model_deployment_monitoring_schedule_config"] = {"monitor_interval": {"seconds": 90}}
    job = clients.jobs.create_model_deployment_monitoring_job(
        parent=parent, model_deployment_monitoring_job=request
    )
    assert job.state.name == "JOB_STATE_PENDING"
    interval = job.model_deployment_monitoring_schedule_config.monitor_interval
    assert interval.total_seconds() == 3600  # rounded up to the next full hour
    with pytest.raises(exceptions.AlreadyExists):
        clients.jobs.create_model_deployment_monitoring_job(
            parent=parent, model_deployment_monitoring_job=request
        )
    from .helpers import wait_for

    running = wait_for(
        lambda: clients.jobs.get_model_deployment_monitoring_job(name=job.name),
        lambda j: j.state.name == "JOB_STATE_RUNNING",
    )
    assert running.state.name == "JOB_STATE_RUNNING"
    with pytest.raises(exceptions.FailedPrecondition):
        clients.jobs.resume_model_deployment_monitoring_job(name=job.name)
    clients.jobs.pause_model_deployment_monitoring_job(name=job.name)
    assert (
        clients.jobs.get_model_deployment_monitoring_job(name=job.name).state.name
        == "JOB_STATE_PAUSED"
    )
    clients.jobs.resume_model_deployment_monitoring_job(name=job.name)
    listed = clients.jobs.list_model_deployment_monitoring_jobs(parent=parent)
    assert [j.name for j in listed] == [job.name]
    clients.jobs.delete_model_deployment_monitoring_job(name=job.name).result()
    with pytest.raises(exceptions.NotFound):
        clients.jobs.get_model_deployment_monitoring_job(name=job.name)


def test_deploy_fails_its_operation_when_the_artifacts_are_gone(
    clients: Any, model: str, endpoint: str, emu: VertexEmulator
) -> None:
    from google.cloud import storage

    bucket = storage.Client(project=emu.project, credentials=emu.credentials).bucket(
        emu.staging_bucket[5:]
    )
    for blob in bucket.list_blobs(prefix="iris/"):
        blob.delete()
    operation = clients.endpoints.deploy_model(endpoint=endpoint, deployed_model=_deployed(model))
    with pytest.raises(exceptions.FailedPrecondition, match="exactly one of"):
        operation.result(timeout=10)
    assert list(clients.endpoints.get_endpoint(name=endpoint).deployed_models) == []
