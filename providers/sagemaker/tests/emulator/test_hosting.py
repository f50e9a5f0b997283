"""Endpoints serve the model's real predictions through the portable model server."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from mlport_sagemaker.emulator import SageMakerEmulator

from mlport.package import manifest_sha256


def _model(
    emulator: SageMakerEmulator,
    sm: Any,
    s3: Any,
    kit: Any,
    name: str,
    archive: bytes,
    digest: str | None,
) -> None:
    key = f"models/{name}/model.tar.gz"
    s3.put_object(Bucket=emulator.bucket, Key=key, Body=archive)
    environment = {"MLPORT_MANIFEST_SHA256": digest} if digest else {}
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=kit.ROLE,
        PrimaryContainer={
            "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/mlport-serving:1",
            "ModelDataUrl": f"s3://{emulator.bucket}/{key}",
            "Environment": environment,
        },
    )


def _packaged(
    emulator: SageMakerEmulator, sm: Any, s3: Any, kit: Any, package: Path, name: str
) -> None:
    _model(emulator, sm, s3, kit, name, kit.tar_dir(package), manifest_sha256(package))


def _config(
    sm: Any, name: str, variants: list[tuple[str, str, float]], capture: str | None = None
) -> None:
    extra: dict[str, Any] = {}
    if capture:
        extra["DataCaptureConfig"] = {
            "EnableCapture": True,
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": capture,
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {
                "CsvContentTypes": ["text/csv"],
                "JsonContentTypes": ["application/json"],
            },
        }
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": variant,
                "ModelName": model,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": weight,
            }
            for variant, model, weight in variants
        ],
        **extra,
    )


def _settled(sm: Any, kit: Any, name: str) -> dict[str, Any]:
    return kit.wait_for(
        lambda: sm.describe_endpoint(EndpointName=name),
        "EndpointStatus",
        {"Creating", "Updating"},
        timeout=90,
    )


def _csv(rows: list[list[float]]) -> bytes:
    return "".join(",".join(str(v) for v in row) + "\n" for row in rows).encode()


def test_an_endpoint_answers_with_the_models_predictions_and_captures_them(
    sagemaker: SageMakerEmulator,
    sm: Any,
    s3: Any,
    runtime: Any,
    kit: Any,
    model_package: tuple[Path, list[int]],
) -> None:
    package, expected = model_package
    _packaged(sagemaker, sm, s3, kit, package, "churn-1")
    _config(
        sm,
        "churn-config-1",
        [("AllTraffic", "churn-1", 1.0)],
        capture=f"s3://{sagemaker.bucket}/capture",
    )
    sm.create_endpoint(EndpointName="churn-api", EndpointConfigName="churn-config-1")
    assert sm.describe_endpoint(EndpointName="churn-api")["EndpointStatus"] == "Creating"
    endpoint = _settled(sm, kit, "churn-api")
    assert endpoint["EndpointStatus"] == "InService", endpoint.get("FailureReason")
    (variant,) = endpoint["ProductionVariants"]
    assert (variant["VariantName"], variant["CurrentWeight"], variant["CurrentInstanceCount"]) == (
        "AllTraffic",
        1.0,
        1,
    )

    answer = runtime.invoke_endpoint(
        EndpointName="churn-api", Body=_csv(kit.ROWS), ContentType="text/csv"
    )
    assert json.loads(answer["Body"].read())["predictions"] == expected
    assert answer["InvokedProductionVariant"] == "AllTraffic"
    answer = runtime.invoke_endpoint(
        EndpointName="churn-api",
        Body=json.dumps({"instances": kit.ROWS}),
        ContentType="application/json",
        Accept="application/json",
    )
    assert answer["ContentType"].startswith("application/json")
    assert json.loads(answer["Body"].read())["predictions"] == expected

    with pytest.raises(botocore.exceptions.ClientError) as caught:
        runtime.invoke_endpoint(EndpointName="churn-api", Body=b"1,2,3\n", ContentType="text/csv")
    error = caught.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (
        "ModelError",
        424,
    )
    assert "Received client error" in error["Error"]["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        runtime.invoke_endpoint(EndpointName="nowhere", Body=b"1,2\n", ContentType="text/csv")
    assert caught.value.response["Error"]["Code"] == "ValidationError"
    assert (
        caught.value.response["Error"]["Message"]
        == "Endpoint nowhere of account 123456789012 not found."
    )

    records = _captured(s3, sagemaker.bucket, "capture/churn-api/AllTraffic/", count=2)
    first = records[0]
    assert first["eventVersion"] == "0"
    assert set(first["eventMetadata"]) >= {"eventId", "inferenceTime"}
    assert first["captureData"]["endpointInput"] == {
        "observedContentType": "text/csv",
        "mode": "INPUT",
        "data": _csv(kit.ROWS).decode(),
        "encoding": "CSV",
    }
    assert first["captureData"]["endpointOutput"]["mode"] == "OUTPUT"
    assert first["captureData"]["endpointOutput"]["encoding"] == "JSON"
    assert json.loads(first["captureData"]["endpointOutput"]["data"])["predictions"] == expected
    assert records[1]["captureData"]["endpointInput"]["encoding"] == "JSON"

    logs = kit.client(sagemaker, "logs")
    deadline = time.monotonic() + 10
    events: list[dict[str, Any]] = []
    while not events and time.monotonic() < deadline:
        # The log group appears with the first lines the flusher forwards.
        with contextlib.suppress(logs.exceptions.ResourceNotFoundException):
            events = logs.filter_log_events(logGroupName="/aws/sagemaker/Endpoints/churn-api")[
                "events"
            ]
        time.sleep(0.2)
    assert events and all(e["logStreamName"].startswith("AllTraffic/") for e in events)

    sm.delete_endpoint(EndpointName="churn-api")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        runtime.invoke_endpoint(
            EndpointName="churn-api", Body=_csv(kit.ROWS), ContentType="text/csv"
        )
    assert caught.value.response["Error"]["Code"] == "ValidationError"


def _captured(s3: Any, bucket: str, prefix: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15
    while True:
        keys = sorted(
            o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        )
        lines = [
            line
            for key in keys
            for line in s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()
        ]
        if len(lines) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for key in keys:
        parts = key[len(prefix) :].split("/")
        assert len(parts) == 5 and parts[-1].endswith(".jsonl"), key  # yyyy/mm/dd/hh/file
    return [json.loads(line) for line in lines]


def test_update_endpoint_switches_versions_and_rolls_back_a_broken_one(
    sagemaker: SageMakerEmulator,
    sm: Any,
    s3: Any,
    runtime: Any,
    kit: Any,
    model_package: tuple[Path, list[int]],
) -> None:
    package, expected = model_package
    _packaged(sagemaker, sm, s3, kit, package, "v1")
    _packaged(sagemaker, sm, s3, kit, package, "v2")
    _model(sagemaker, sm, s3, kit, "broken", kit.tar_bytes({"README.txt": b"no model here"}), None)
    _config(sm, "one", [("v1", "v1", 1.0)])
    _config(sm, "two", [("v1", "v1", 1.0), ("v2", "v2", 0.0)])
    _config(sm, "bad", [("broken", "broken", 1.0)])
    sm.create_endpoint(EndpointName="api", EndpointConfigName="one")
    assert _settled(sm, kit, "api")["EndpointStatus"] == "InService"

    sm.update_endpoint(EndpointName="api", EndpointConfigName="two")
    assert sm.describe_endpoint(EndpointName="api")["EndpointStatus"] == "Updating"
    endpoint = _settled(sm, kit, "api")
    assert (endpoint["EndpointStatus"], endpoint["EndpointConfigName"]) == ("InService", "two")
    weights = {v["VariantName"]: v["CurrentWeight"] for v in endpoint["ProductionVariants"]}
    assert weights == {"v1": 1.0, "v2": 0.0}
    for _ in range(5):
        answer = runtime.invoke_endpoint(
            EndpointName="api", Body=_csv(kit.ROWS), ContentType="text/csv"
        )
        assert answer["InvokedProductionVariant"] == "v1"
    pinned = runtime.invoke_endpoint(
        EndpointName="api", Body=_csv(kit.ROWS), ContentType="text/csv", TargetVariant="v2"
    )
    assert pinned["InvokedProductionVariant"] == "v2"
    assert json.loads(pinned["Body"].read())["predictions"] == expected

    sm.update_endpoint_weights_and_capacities(
        EndpointName="api",
        DesiredWeightsAndCapacities=[
            {"VariantName": "v1", "DesiredWeight": 0.0},
            {"VariantName": "v2", "DesiredWeight": 1.0},
        ],
    )
    endpoint = _settled(sm, kit, "api")
    assert {v["VariantName"]: v["CurrentWeight"] for v in endpoint["ProductionVariants"]} == {
        "v1": 0.0,
        "v2": 1.0,
    }
    answer = runtime.invoke_endpoint(
        EndpointName="api", Body=_csv(kit.ROWS), ContentType="text/csv"
    )
    assert answer["InvokedProductionVariant"] == "v2"

    sm.update_endpoint(EndpointName="api", EndpointConfigName="bad")
    endpoint = _settled(sm, kit, "api")
    assert (endpoint["EndpointStatus"], endpoint["EndpointConfigName"]) == ("InService", "two")
    assert "broken" in endpoint["FailureReason"]
    answer = runtime.invoke_endpoint(
        EndpointName="api", Body=_csv(kit.ROWS), ContentType="text/csv"
    )
    assert json.loads(answer["Body"].read())["predictions"] == expected

    sm.create_endpoint(EndpointName="never", EndpointConfigName="bad")
    endpoint = _settled(sm, kit, "never")
    assert endpoint["EndpointStatus"] == "Failed"
    assert "did not pass the ping health check" in endpoint["FailureReason"]


def test_endpoint_requests_are_checked(
    sagemaker: SageMakerEmulator, sm: Any, s3: Any, kit: Any
) -> None:
    _model(sagemaker, sm, s3, kit, "m", kit.tar_bytes({"model.joblib": b"x"}), None)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        sm.create_endpoint_config(
            EndpointConfigName="c",
            ProductionVariants=[
                {
                    "VariantName": "a",
                    "ModelName": "m",
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.tiny.nothing",
                }
            ],
        )
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    _config(sm, "c", [("a", "m", 1.0)])
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        _config(sm, "c", [("a", "m", 1.0)])
    assert "already existing endpoint configuration" in caught.value.response["Error"]["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        sm.create_endpoint(EndpointName="e", EndpointConfigName="missing")
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        sm.update_endpoint(EndpointName="missing", EndpointConfigName="c")
    assert caught.value.response["Error"]["Code"] == "ValidationException"
