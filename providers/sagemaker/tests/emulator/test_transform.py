"""Batch transform jobs predict every record with the real model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest
from mlport_sagemaker.emulator import SageMakerEmulator

from mlport.package import manifest_sha256


def _job(sm: Any, bucket: str, name: str, model: str, source: str = "batch", **extra: Any) -> None:
    sm.create_transform_job(
        TransformJobName=name,
        ModelName=model,
        BatchStrategy=extra.pop("strategy", "MultiRecord"),
        TransformInput={
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/{source}/in/"}
            },
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={
            "S3OutputPath": f"s3://{bucket}/{source}/out",
            "AssembleWith": "Line",
            "Accept": "text/csv",
        },
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
        **extra,
    )


def test_transform_jobs_predict_every_file_fail_with_the_models_complaint_and_stop(
    sagemaker: SageMakerEmulator, sm: Any, s3: Any, kit: Any, model_package: tuple[Path, list[int]]
) -> None:
    package, expected = model_package
    bucket = sagemaker.bucket
    s3.put_object(Bucket=bucket, Key="models/m/model.tar.gz", Body=kit.tar_dir(package))
    sm.create_model(
        ModelName="m",
        ExecutionRoleArn=kit.ROLE,
        PrimaryContainer={
            "Image": "mlport-serving",
            "ModelDataUrl": f"s3://{bucket}/models/m/model.tar.gz",
            "Environment": {"MLPORT_MANIFEST_SHA256": manifest_sha256(package)},
        },
    )
    rows = "".join(",".join(str(v) for v in row) + "\n" for row in kit.ROWS)
    s3.put_object(Bucket=bucket, Key="batch/in/a.csv", Body=rows.encode())
    s3.put_object(Bucket=bucket, Key="batch/in/part/b.csv", Body=rows.encode())
    s3.put_object(Bucket=bucket, Key="wide/in/a.csv", Body=b"1,2,3\n")
    # both jobs run at once, as on SageMaker
    _job(sm, bucket, "score-1", "m", strategy="SingleRecord")
    _job(sm, bucket, "wrong-width", "m", source="wide")

    job = kit.wait_for(
        lambda: sm.describe_transform_job(TransformJobName="score-1"),
        "TransformJobStatus",
        {"InProgress"},
    )
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert job["TransformStartTime"] <= job["TransformEndTime"]
    for key in ("batch/out/a.csv.out", "batch/out/part/b.csv.out"):
        lines = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()
        # SingleRecord: one request, and one answer line, per record
        assert [_value(line) for line in lines] == expected

    job = kit.wait_for(
        lambda: sm.describe_transform_job(TransformJobName="wrong-width"),
        "TransformJobStatus",
        {"InProgress"},
    )
    assert job["TransformJobStatus"] == "Failed"
    assert "a.csv" in job["FailureReason"] and "3 values" in job["FailureReason"]

    _job(sm, bucket, "stopped", "m")
    sm.stop_transform_job(TransformJobName="stopped")
    job = kit.wait_for(
        lambda: sm.describe_transform_job(TransformJobName="stopped"),
        "TransformJobStatus",
        {"InProgress", "Stopping"},
    )
    assert job["TransformJobStatus"] == "Stopped"

    with pytest.raises(botocore.exceptions.ClientError) as caught:
        _job(sm, bucket, "score-1", "m")
    assert caught.value.response["Error"]["Code"] == "ResourceInUse"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        _job(sm, bucket, "score-2", "no-such-model")
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        sm.stop_transform_job(TransformJobName="nothing")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFound"


def _value(line: str) -> Any:
    text = line.strip()
    return json.loads(text) if text.startswith(("[", "{")) else int(float(text))
