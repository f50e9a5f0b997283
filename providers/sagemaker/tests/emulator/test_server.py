"""The emulator as a server: the Emulator contract, fault injection, reset, the command line."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from mlport_sagemaker.emulator import DROP_RESPONSE_AFTER_COMMIT, EMULATOR_ROLE, SageMakerEmulator

from mlport.errors import InvalidSpecError, ThrottledError
from mlport.processes import spawn, stop
from mlport.testing.emulator import Emulator

ROLE = EMULATOR_ROLE


def test_the_emulator_satisfies_the_contract(sagemaker: SageMakerEmulator) -> None:
    assert isinstance(sagemaker, Emulator)
    assert sagemaker.provider == "sagemaker"
    assert sagemaker.endpoint_url.startswith("http://127.0.0.1:")
    assert sagemaker.env["AWS_ENDPOINT_URL"] == sagemaker.endpoint_url
    assert sagemaker.env["AWS_DEFAULT_REGION"] == sagemaker.region
    assert dict(sagemaker.connect_kwargs) == {
        "region": sagemaker.region,
        "endpoint_url": sagemaker.endpoint_url,
        "bucket": sagemaker.bucket,
        "role": ROLE,
    }


def test_every_service_answers_on_the_one_address(sagemaker: SageMakerEmulator, kit: Any) -> None:
    client = kit.client
    s3 = client(sagemaker, "s3")
    assert sagemaker.bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert client(sagemaker, "sagemaker").list_training_jobs()["TrainingJobSummaries"] == []
    assert client(sagemaker, "logs").describe_log_groups()["logGroups"] == []
    scaling = client(sagemaker, "application-autoscaling")
    assert scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"] == []


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ThrottlingException", 400),
        ("ValidationException", 400),
        ("ResourceNotFound", 400),
        ("ResourceInUse", 400),
        ("ResourceLimitExceeded", 400),
        ("AccessDeniedException", 400),
        ("InternalFailure", 500),
        ("ServiceUnavailable", 503),
    ],
)
def test_an_injected_error_reaches_boto3_with_its_code(
    sagemaker: SageMakerEmulator, sm: Any, code: str, status: int
) -> None:
    sagemaker.inject("CreateModel", code)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        sm.create_model(ModelName="m", PrimaryContainer={"Image": "i"}, ExecutionRoleArn=ROLE)
    assert caught.value.response["Error"]["Code"] == code
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    # the fault was used up and the failed call had no effect
    assert sm.list_models()["Models"] == []
    sm.create_model(ModelName="m", PrimaryContainer={"Image": "i"}, ExecutionRoleArn=ROLE)


def test_faults_queue_up_and_exceptions_map_to_codes(sagemaker: SageMakerEmulator, sm: Any) -> None:
    sagemaker.inject("ListModels", "ServiceUnavailable", times=2)
    sagemaker.inject("ListModels", ThrottledError("slow down"))
    codes = []
    for _ in range(3):
        with pytest.raises(botocore.exceptions.ClientError) as caught:
            sm.list_models()
        codes.append(caught.value.response["Error"]["Code"])
    assert codes == ["ServiceUnavailable", "ServiceUnavailable", "ThrottlingException"]
    assert sm.list_models()["Models"] == []


def test_s3_and_runtime_faults_use_their_protocols(
    sagemaker: SageMakerEmulator, s3: Any, runtime: Any
) -> None:
    sagemaker.inject("PutObject", "SlowDown")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        s3.put_object(Bucket=sagemaker.bucket, Key="k", Body=b"x")
    assert caught.value.response["Error"]["Code"] == "SlowDown"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    sagemaker.inject("InvokeEndpoint", "ModelNotReadyException")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        runtime.invoke_endpoint(EndpointName="e", Body=b"1", ContentType="text/csv")
    assert caught.value.response["Error"]["Code"] == "ModelNotReadyException"


def test_a_dropped_answer_still_takes_effect(
    sagemaker: SageMakerEmulator, sm: Any, s3: Any
) -> None:
    sagemaker.inject("CreateModel", DROP_RESPONSE_AFTER_COMMIT)
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        sm.create_model(ModelName="m", PrimaryContainer={"Image": "i"}, ExecutionRoleArn=ROLE)
    assert [m["ModelName"] for m in sm.list_models()["Models"]] == ["m"]
    # a retry of the create meets the model it made
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        sm.create_model(ModelName="m", PrimaryContainer={"Image": "i"}, ExecutionRoleArn=ROLE)
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert "already existing model" in caught.value.response["Error"]["Message"]
    sagemaker.inject("PutObject", DROP_RESPONSE_AFTER_COMMIT)
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        s3.put_object(Bucket=sagemaker.bucket, Key="k", Body=b"kept")
    assert s3.get_object(Bucket=sagemaker.bucket, Key="k")["Body"].read() == b"kept"


def test_inject_refuses_what_no_service_answers(sagemaker: SageMakerEmulator) -> None:
    with pytest.raises(InvalidSpecError, match="not an error code"):
        sagemaker.inject("CreateModel", "NoSuchThing")
    with pytest.raises(InvalidSpecError):
        sagemaker.inject("CreateModel", "ThrottlingException", times=0)
    with pytest.raises(InvalidSpecError):
        sagemaker.inject("", "ThrottlingException")


def test_reset_forgets_resources_and_faults_and_keeps_the_bucket(
    sagemaker: SageMakerEmulator, sm: Any, s3: Any
) -> None:
    sm.create_model(ModelName="m", PrimaryContainer={"Image": "i"}, ExecutionRoleArn=ROLE)
    s3.put_object(Bucket=sagemaker.bucket, Key="k", Body=b"x")
    sagemaker.inject("ListModels", "InternalFailure")
    sagemaker.reset()
    assert sm.list_models()["Models"] == []
    assert s3.list_objects_v2(Bucket=sagemaker.bucket).get("Contents") is None


def test_the_command_line_prints_its_address_and_stops_on_sigterm(tmp_path: Path) -> None:
    popen, record = spawn(
        [sys.executable, "-m", "mlport_sagemaker.emulator", "--host", "127.0.0.1", "--port", "0"],
        name="emulator",
        log_dir=tmp_path,
    )
    try:
        out = Path(record.stdout_path)
        deadline = time.monotonic() + 30
        while not out.read_text().strip() and time.monotonic() < deadline:
            assert popen.poll() is None, Path(record.stderr_path).read_text()
            time.sleep(0.05)
        line = out.read_text().strip()
        assert line.startswith("mlport SageMaker emulator on http://127.0.0.1:")
        url = line.split(" on ", 1)[1].split()[0]
        emulator_s3 = _s3_at(url)
        assert "mlport-emulator" in [b["Name"] for b in emulator_s3.list_buckets()["Buckets"]]
        popen.send_signal(signal.SIGTERM)
        assert popen.wait(timeout=20) == 0
        assert len(out.read_text().strip().splitlines()) == 1
    finally:
        stop(record)
        if popen.poll() is None:
            popen.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=5)


def _s3_at(url: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="a",
        aws_secret_access_key="b",
        config=Config(retries={"total_max_attempts": 1}),
    )
