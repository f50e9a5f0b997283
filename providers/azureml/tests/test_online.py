"""Online endpoints and deployments: real scoring through the portable model server."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from mlport_azureml.emulator import AzureMLEmulator

from .conftest import ROWS
from .test_jobs import training_job, wait

SERVING_IMAGE = "example.azurecr.io/mlport-serving:0.1"


def _serving_environment(ml: Any) -> Any:
    from azure.ai.ml.entities import Environment

    return ml.environments.create_or_update(
        Environment(name="mlport-serving", version="1", image=SERVING_IMAGE)
    )


def _model(ml: Any, tmp_path: Path, name: str = "clf") -> Any:
    import joblib
    from azure.ai.ml.entities import Model
    from sklearn.linear_model import LogisticRegression

    folder = tmp_path / name
    folder.mkdir()
    labels = [int(a > b) for a, b in ROWS]
    joblib.dump(LogisticRegression().fit(ROWS, labels), folder / "model.joblib")
    return ml.models.create_or_update(Model(name=name, path=folder, type="custom_model"))


def _deploy(ml: Any, endpoint: str, name: str, model: Any, environment: Any) -> Any:
    from azure.ai.ml.entities import ManagedOnlineDeployment

    return ml.online_deployments.begin_create_or_update(
        ManagedOnlineDeployment(
            name=name,
            endpoint_name=endpoint,
            model=model,
            environment=environment,
            instance_type="Standard_DS3_v2",
            instance_count=1,
        )
    ).result()


def _endpoint(ml: Any, name: str = "churn-api", **kwargs: Any) -> Any:
    from azure.ai.ml.entities import ManagedOnlineEndpoint

    return ml.online_endpoints.begin_create_or_update(
        ManagedOnlineEndpoint(name=name, auth_mode="key", **kwargs)
    ).result()


def _score(emulator: AzureMLEmulator, url: str, key: str, body: Any, **headers: str) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json", **headers},
    )
    context = ssl.create_default_context(cafile=emulator.ca_bundle)
    with urllib.request.urlopen(request, context=context, timeout=30) as answer:
        return answer.headers.get("azureml-model-deployment"), json.loads(answer.read())


def test_trained_model_registered_deployed_and_invoked_matches_in_process_predictions(
    ml: Any, emulator: AzureMLEmulator, project: Path, tmp_path: Path
) -> None:
    import joblib
    from azure.ai.ml.entities import Model

    job = ml.jobs.create_or_update(training_job(project))
    assert wait(ml, job.name).status == "Completed"
    model = ml.models.create_or_update(
        Model(name="churn", path=f"azureml://jobs/{job.name}/outputs/model", type="custom_model")
    )
    endpoint = _endpoint(ml)
    assert endpoint.provisioning_state == "Succeeded"
    assert endpoint.scoring_uri.startswith(emulator.base_url)
    model_id = f"azureml:{model.name}:{model.version}"
    deployment = _deploy(ml, "churn-api", "blue", model_id, _serving_environment(ml))
    assert deployment.provisioning_state == "Succeeded"
    endpoint.traffic = {"blue": 100}
    ml.online_endpoints.begin_create_or_update(endpoint).result()

    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps({"input_data": ROWS}))
    answer = json.loads(ml.online_endpoints.invoke("churn-api", request_file=str(request_file)))

    ml.jobs.download(job.name, output_name="model", download_path=tmp_path / "out")
    local = joblib.load(tmp_path / "out" / "named-outputs" / "model" / "model.joblib")
    assert answer == local.predict(ROWS).tolist()
    logs = ml.online_deployments.get_logs("blue", "churn-api", lines=50)
    assert "serving" in logs


def test_traffic_split_pinning_keys_and_mirroring(
    ml: Any, emulator: AzureMLEmulator, tmp_path: Path
) -> None:
    model = _model(ml, tmp_path)
    environment = _serving_environment(ml)
    endpoint = _endpoint(ml)
    _deploy(ml, "churn-api", "blue", model, environment)
    _deploy(ml, "churn-api", "green", model, environment)
    endpoint = ml.online_endpoints.get("churn-api")
    endpoint.traffic = {"blue": 100, "green": 0}
    endpoint.mirror_traffic = {"green": 50}
    ml.online_endpoints.begin_create_or_update(endpoint).result()
    keys = ml.online_endpoints.get_keys("churn-api")
    url = endpoint.scoring_uri
    served = {_score(emulator, url, keys.primary_key, {"input_data": ROWS})[0] for _ in range(6)}
    assert served == {"blue"}
    pinned, _ = _score(
        emulator,
        url,
        keys.secondary_key,
        {"input_data": ROWS},
        **{"azureml-model-deployment": "green"},
    )
    assert pinned == "green"
    assert emulator.service.families["online"].mirrored_requests("churn-api")["green"] > 0  # type: ignore[attr-defined]

    old = keys.primary_key
    ml.online_endpoints.begin_regenerate_keys("churn-api", key_type="primary").result()
    with pytest.raises(urllib.error.HTTPError) as refused:
        _score(emulator, url, old, {"input_data": ROWS})
    assert refused.value.code == 401


def test_traffic_must_sum_to_100(ml_no_retry: Any, tmp_path: Path) -> None:
    model = _model(ml_no_retry, tmp_path)
    endpoint = _endpoint(ml_no_retry)
    _deploy(ml_no_retry, "churn-api", "blue", model, _serving_environment(ml_no_retry))
    endpoint.traffic = {"blue": 60}
    with pytest.raises(HttpResponseError) as caught:
        ml_no_retry.online_endpoints.begin_create_or_update(endpoint).result()
    assert caught.value.status_code == 400
    assert "sum to 100" in caught.value.message
    assert caught.value.error.target == "properties.traffic"


def test_deployment_with_traffic_cannot_be_deleted_and_endpoint_delete_removes_all(
    ml_no_retry: Any, tmp_path: Path
) -> None:
    ml = ml_no_retry
    model = _model(ml, tmp_path)
    endpoint = _endpoint(ml)
    _deploy(ml, "churn-api", "blue", model, _serving_environment(ml))
    endpoint.traffic = {"blue": 100}
    ml.online_endpoints.begin_create_or_update(endpoint).result()
    with pytest.raises(HttpResponseError) as caught:
        ml.online_deployments.begin_delete("blue", endpoint_name="churn-api").result()
    assert caught.value.status_code == 400
    ml.online_endpoints.begin_delete("churn-api").result()
    with pytest.raises(ResourceNotFoundError):
        ml.online_endpoints.get("churn-api")
    assert list(ml.online_endpoints.list()) == []


def test_unknown_instance_type_and_non_mlflow_model_without_image_are_rejected(
    ml_no_retry: Any, tmp_path: Path
) -> None:
    from azure.ai.ml.entities import Environment, ManagedOnlineDeployment

    ml = ml_no_retry
    model = _model(ml, tmp_path)
    _endpoint(ml)
    with pytest.raises(HttpResponseError) as bad_size:
        ml.online_deployments.begin_create_or_update(
            ManagedOnlineDeployment(
                name="blue",
                endpoint_name="churn-api",
                model=model,
                environment=_serving_environment(ml),
                instance_type="Standard_Imaginary_v9",
            )
        ).result()
    assert bad_size.value.error.target == "properties.instanceType"
    plain = ml.environments.create_or_update(
        Environment(name="plain", version="1", image="python:3.11")
    )
    with pytest.raises(HttpResponseError) as no_script:
        _deploy(ml, "churn-api", "blue", model, plain)
    assert no_script.value.status_code == 400


def test_deployment_on_missing_endpoint_is_not_found(ml_no_retry: Any, tmp_path: Path) -> None:
    model = _model(ml_no_retry, tmp_path)
    with pytest.raises(ResourceNotFoundError):
        _deploy(ml_no_retry, "nowhere", "blue", model, _serving_environment(ml_no_retry))
