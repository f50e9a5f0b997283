"""The high-level aiplatform API against the emulator: train, upload, deploy, predict, batch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mlport_vertex.emulator import VertexEmulator

SCRIPTS = Path(__file__).parent / "scripts"
TRAIN_IMAGE = "us-docker.pkg.dev/vertex-ai/training/sklearn-cpu.1-0:latest"
SERVE_IMAGE = "us-docker.pkg.dev/vertex-ai/prediction/sklearn-cpu.1-0:latest"


def test_trained_model_serves_the_same_predictions_as_in_process(
    emu: VertexEmulator, aiplatform: Any, tmp_path: Path
) -> None:
    job = aiplatform.CustomJob.from_local_script(
        display_name="iris-train",
        script_path=str(SCRIPTS / "train_iris.py"),
        container_uri=TRAIN_IMAGE,
        machine_type="n1-standard-4",
        base_output_dir=f"{emu.staging_bucket}/iris",
    )
    job.run(sync=True)
    assert job.state.name == "JOB_STATE_SUCCEEDED"
    assert job.resource_name.startswith(
        f"projects/{emu.project_number}/locations/{emu.location}/customJobs/"
    )
    model_dir = f"{emu.staging_bucket}/iris/model/"

    model = aiplatform.Model.upload(
        display_name="iris",
        artifact_uri=model_dir,
        serving_container_image_uri=SERVE_IMAGE,
    )
    assert model.version_id == "1"
    endpoint = aiplatform.Endpoint.create(display_name="iris-api")
    endpoint.deploy(model, machine_type="n1-standard-2")

    rows = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3]]
    answer = endpoint.predict(instances=rows)

    import joblib
    from google.cloud import storage

    local = tmp_path / "model.joblib"
    storage.Client(project=emu.project, credentials=emu.credentials).bucket(
        emu.staging_bucket[5:]
    ).blob("iris/model/model.joblib").download_to_filename(str(local))
    expected = joblib.load(local).predict(rows).tolist()
    assert [int(p) for p in answer.predictions] == expected
    assert answer.deployed_model_id == endpoint.list_models()[0].id


def _upload_iris(emu: VertexEmulator, aiplatform: Any, tmp_path: Path) -> Any:
    """Train in-process, upload the model as a user would from a local folder."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.tree import DecisionTreeClassifier

    features, labels = load_iris(return_X_y=True)
    folder = tmp_path / "model"
    folder.mkdir()
    joblib.dump(
        DecisionTreeClassifier(random_state=0).fit(features, labels), folder / "model.joblib"
    )
    return aiplatform.Model.upload(
        display_name="iris-tree",
        artifact_uri=str(folder),
        serving_container_image_uri=SERVE_IMAGE,
    )


def test_batch_prediction_job_writes_predictions_to_storage(
    emu: VertexEmulator, aiplatform: Any, tmp_path: Path
) -> None:
    from google.cloud import storage

    model = _upload_iris(emu, aiplatform, tmp_path)
    client = storage.Client(project=emu.project, credentials=emu.credentials)
    bucket = client.bucket(emu.staging_bucket[5:])
    rows = [[5.1, 3.5, 1.4, 0.2], [7.7, 3.0, 6.1, 2.3]]
    bucket.blob("batch/in/rows.jsonl").upload_from_string(
        "".join(json.dumps(r) + "\n" for r in rows)
    )
    job = aiplatform.BatchPredictionJob.create(
        job_display_name="iris-batch",
        model_name=model.resource_name,
        instances_format="jsonl",
        gcs_source=f"{emu.staging_bucket}/batch/in/*.jsonl",
        gcs_destination_prefix=f"{emu.staging_bucket}/batch/out",
        machine_type="n1-standard-2",
        sync=True,
    )
    assert job.state.name == "JOB_STATE_SUCCEEDED"
    out = job.output_info.gcs_output_directory
    assert out.startswith(f"{emu.staging_bucket}/batch/out/prediction-iris-tree-")
    lines = bucket.blob(out[len(emu.staging_bucket) + 1 :] + "/predictions_00001.jsonl")
    records = [json.loads(line) for line in lines.download_as_text().splitlines()]
    assert [r["instance"] for r in records] == rows
    assert [r["prediction"] for r in records] == [0, 2]
    assert job.completion_stats.successful_count == 2


def test_a_failing_training_script_fails_the_job_with_its_error(
    emu: VertexEmulator, aiplatform: Any, tmp_path: Path
) -> None:
    script = tmp_path / "broken.py"
    script.write_text("raise SystemExit('no training data at /gcs/missing')\n")
    job = aiplatform.CustomJob.from_local_script(
        display_name="broken",
        script_path=str(script),
        container_uri=TRAIN_IMAGE,
        machine_type="n1-standard-4",
    )
    with pytest.raises(RuntimeError, match="no training data at /gcs/missing"):
        job.run(sync=True)
    assert job.state.name == "JOB_STATE_FAILED"


def test_injected_faults_surface_as_api_core_exceptions(
    emu: VertexEmulator, aiplatform: Any
) -> None:
    from google.api_core import exceptions

    emu.inject("CreateEndpoint", "RESOURCE_EXHAUSTED")
    with pytest.raises(exceptions.ResourceExhausted):
        aiplatform.Endpoint.create(display_name="quota")
    emu.inject("CreateEndpoint", "INTERNAL")
    with pytest.raises(exceptions.InternalServerError):
        aiplatform.Endpoint.create(display_name="boom")
    endpoint = aiplatform.Endpoint.create(display_name="fine")
    assert endpoint.display_name == "fine"


def test_model_versions_aliases_and_endpoint_teardown(
    emu: VertexEmulator, aiplatform: Any, tmp_path: Path
) -> None:
    from google.api_core import exceptions

    first = _upload_iris(emu, aiplatform, tmp_path)
    second = aiplatform.Model.upload(
        display_name="iris-tree",
        parent_model=first.resource_name,
        artifact_uri=first.uri,
        serving_container_image_uri=SERVE_IMAGE,
        is_default_version=False,
        version_aliases=["challenger"],
    )
    assert (first.version_id, second.version_id) == ("1", "2")
    registry = first.versioning_registry
    assert sorted(v.version_id for v in registry.list_versions()) == ["1", "2"]
    registry.add_version_aliases(["default"], version="2")
    assert aiplatform.Model(first.resource_name).version_id == "2"
    assert aiplatform.Model(f"{first.resource_name}@challenger").version_id == "2"
    assert aiplatform.Model(f"{first.resource_name}@1").version_aliases == []

    endpoint = aiplatform.Endpoint.create(display_name="teardown")
    endpoint.deploy(second, machine_type="n1-standard-2")
    assert endpoint.predict(instances=[[5.1, 3.5, 1.4, 0.2]]).model_version_id == "2"
    with pytest.raises(exceptions.FailedPrecondition):
        endpoint.delete()
    endpoint.delete(force=True)  # undeploys every model, then deletes
    assert aiplatform.Endpoint.list() == []
    registry.delete_version("1")
    assert [v.version_id for v in registry.list_versions()] == ["2"]


def test_a_lost_answer_after_commit_leaves_the_model_registered(
    emu: VertexEmulator, aiplatform: Any, tmp_path: Path
) -> None:
    from google.api_core import exceptions

    emu.inject("UploadModel", "drop_response_after_commit")
    with pytest.raises(exceptions.ServiceUnavailable):
        _upload_iris(emu, aiplatform, tmp_path)
    assert [m.display_name for m in aiplatform.Model.list()] == ["iris-tree"]


def test_the_emulator_satisfies_the_emulator_protocol(emu: VertexEmulator) -> None:
    from mlport.testing.emulator import Emulator

    assert isinstance(emu, Emulator)
    assert emu.provider == "vertex"
    assert set(emu.connect_kwargs) >= {"project", "location", "api_endpoint", "credentials"}
    for name in ("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        assert Path(emu.env[name]).read_text().startswith("-----BEGIN CERTIFICATE-----")
    assert emu.env["STORAGE_EMULATOR_HOST"] == emu.storage_host
    assert Path(emu.ca_file).is_file()


@pytest.mark.filterwarnings("ignore:.*Saving model in the UBJSON format")
def test_xgboost_and_mlport_serving_image_models_answer_predict(
    emu: VertexEmulator, aiplatform: Any, tmp_path: Path
) -> None:
    import numpy as np
    import xgboost
    from sklearn.datasets import load_iris

    features, labels = load_iris(return_X_y=True)
    booster = xgboost.train(
        {"objective": "multi:softprob", "num_class": 3},
        xgboost.DMatrix(features, label=labels),
        num_boost_round=3,
    )
    folder = tmp_path / "xgb"
    folder.mkdir()
    booster.save_model(str(folder / "model.bst"))
    xgb_model = aiplatform.Model.upload(
        display_name="iris-xgb",
        artifact_uri=str(folder),
        serving_container_image_uri="us-docker.pkg.dev/vertex-ai/prediction/xgboost-cpu.2-1:latest",
    )
    sk_model = _upload_iris(emu, aiplatform, tmp_path)
    mlport_model = aiplatform.Model.upload(
        display_name="iris-mlport",
        artifact_uri=sk_model.uri,
        serving_container_image_uri=(
            "us-central1-docker.pkg.dev/mlport-local/mlport/mlport-serving:0.1.0"
        ),
    )
    endpoint = aiplatform.Endpoint.create(display_name="mixed")
    endpoint.deploy(xgb_model, machine_type="n1-standard-2")
    rows = features[:3].tolist()
    answer = endpoint.predict(instances=rows)
    expected = booster.predict(xgboost.DMatrix(np.array(rows)))
    np.testing.assert_allclose(np.array(answer.predictions), expected, rtol=1e-6)

    endpoint.deploy(mlport_model, machine_type="n1-standard-2", traffic_percentage=100)
    served = endpoint.predict(instances=rows)
    assert served.model_resource_name == mlport_model.resource_name
    assert [int(p) for p in served.predictions] == labels[:3].tolist()
    assert endpoint.traffic_split[served.deployed_model_id] == 100


def test_a_model_the_emulator_cannot_serve_fails_to_deploy(
    emu: VertexEmulator, aiplatform: Any, tmp_path: Path
) -> None:
    from google.api_core import exceptions

    model = _upload_iris(emu, aiplatform, tmp_path)
    custom = aiplatform.Model.upload(
        display_name="custom",
        artifact_uri=model.uri,
        serving_container_image_uri="gcr.io/acme/server:1",
    )
    endpoint = aiplatform.Endpoint.create(display_name="nope")
    with pytest.raises(exceptions.FailedPrecondition, match="cannot run the serving container"):
        endpoint.deploy(custom, machine_type="n1-standard-2")


def test_custom_job_cancelled_through_the_sdk(emu: VertexEmulator, aiplatform: Any) -> None:
    job = aiplatform.CustomJob(
        display_name="sleeper",
        worker_pool_specs=[
            {
                "machine_spec": {"machine_type": "n1-standard-4"},
                "replica_count": 1,
                "container_spec": {
                    "image_uri": TRAIN_IMAGE,
                    "command": ["python", "-c", "import time; time.sleep(60)"],
                },
            }
        ],
    )
    job.run(sync=False)
    job.wait_for_resource_creation()
    job.cancel()
    with pytest.raises(RuntimeError, match="cancelled"):
        job.wait()
    assert job.state.name == "JOB_STATE_CANCELLED"
    assert [j.display_name for j in aiplatform.CustomJob.list()] == ["sleeper"]
