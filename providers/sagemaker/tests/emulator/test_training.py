"""Training jobs really run their script the way SageMaker's training toolkit does."""

from __future__ import annotations

import io
import json
import tarfile
from typing import Any

import botocore.exceptions
import pytest
from mlport_sagemaker.emulator import SageMakerEmulator

SCRIPT = b"""
import argparse, json, os, sys, time
parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int)
parser.add_argument("--mode")
args = parser.parse_args()
train = os.environ["SM_CHANNEL_TRAIN"]
rows = open(os.path.join(train, "data.csv")).read().split()
print("rows", len(rows), "argv", sys.argv[1:])
for epoch in range(args.epochs):
    print(f"epoch={epoch} loss={1.0 / (epoch + 1):.3f}")
env = {k: os.environ[k] for k in os.environ if k.startswith("SM_") or k == "TRAINING_JOB_NAME"}
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.joblib"), "w") as f:
    f.write(json.dumps({"rows": len(rows)}))
with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "env.json"), "w") as f:
    json.dump(env, f)
if args.mode == "fail":
    print("something broke", file=sys.stderr)
    sys.exit(3)
if args.mode == "failure-file":
    open(os.path.join(os.environ["SM_OUTPUT_DIR"], "failure"), "w").write("bad input: column x")
    sys.exit(1)
if args.mode == "sleep":
    print("sleeping", flush=True)
    time.sleep(60)
"""


def _start(
    emulator: SageMakerEmulator, sm: Any, s3: Any, kit: Any, name: str, mode: str, **extra: Any
) -> None:
    bucket = emulator.bucket
    s3.put_object(
        Bucket=bucket, Key="code/sourcedir.tar.gz", Body=kit.tar_bytes({"train.py": SCRIPT})
    )
    s3.put_object(Bucket=bucket, Key="data/train/data.csv", Body=b"1\n2\n3\n")
    sm.create_training_job(
        TrainingJobName=name,
        RoleArn=kit.ROLE,
        AlgorithmSpecification={
            "TrainingImage": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3",
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "loss", "Regex": r"loss=([0-9.]+)"}],
        },
        HyperParameters={
            "sagemaker_program": kit.hp("train.py"),
            "sagemaker_submit_directory": kit.hp(f"s3://{bucket}/code/sourcedir.tar.gz"),
            "epochs": kit.hp(3),
            "mode": kit.hp(mode),
        },
        InputDataConfig=[
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/data/train"}
                },
            }
        ],
        OutputDataConfig={"S3OutputPath": f"s3://{bucket}/jobs"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": extra.pop("max_runtime", 600)},
        **extra,
    )


def _finished(sm: Any, kit: Any, name: str) -> dict[str, Any]:
    return kit.wait_for(
        lambda: sm.describe_training_job(TrainingJobName=name),
        "TrainingJobStatus",
        {"InProgress", "Stopping"},
    )


def _untar(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_a_job_runs_its_script_and_uploads_the_model(
    sagemaker: SageMakerEmulator, sm: Any, s3: Any, logs: Any, kit: Any
) -> None:
    _start(sagemaker, sm, s3, kit, "churn-1", "ok", Environment={"MY_SETTING": "on"})
    job = _finished(sm, kit, "churn-1")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["SecondaryStatus"] == "Completed"
    assert [t["Status"] for t in job["SecondaryStatusTransitions"]] == [
        "Starting",
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    assert job["TrainingStartTime"] <= job["TrainingEndTime"]
    uri = job["ModelArtifacts"]["S3ModelArtifacts"]
    assert uri == f"s3://{sagemaker.bucket}/jobs/churn-1/output/model.tar.gz"
    model = _untar(
        s3.get_object(Bucket=sagemaker.bucket, Key="jobs/churn-1/output/model.tar.gz")[
            "Body"
        ].read()
    )
    assert json.loads(model["model.joblib"]) == {"rows": 3}
    output = _untar(
        s3.get_object(Bucket=sagemaker.bucket, Key="jobs/churn-1/output/output.tar.gz")[
            "Body"
        ].read()
    )
    env = json.loads(output["env.json"])
    assert json.loads(env["SM_HPS"]) == {"epochs": 3, "mode": "ok"}
    assert env["SM_HP_EPOCHS"] == "3"
    assert json.loads(env["SM_CHANNELS"]) == ["train"]
    assert env["SM_CURRENT_HOST"] == "algo-1"
    assert json.loads(env["SM_HOSTS"]) == ["algo-1"]
    assert json.loads(env["SM_USER_ARGS"]) == ["--epochs", "3", "--mode", "ok"]
    assert env["SM_MODULE_DIR"] == f"s3://{sagemaker.bucket}/code/sourcedir.tar.gz"
    assert env["TRAINING_JOB_NAME"] == "churn-1"
    assert json.loads(env["SM_TRAINING_ENV"])["job_name"] == "churn-1"
    for key in (
        "SM_MODEL_DIR",
        "SM_OUTPUT_DATA_DIR",
        "SM_OUTPUT_DIR",
        "SM_INPUT_DIR",
        "SM_INPUT_CONFIG_DIR",
        "SM_NUM_CPUS",
        "SM_NUM_GPUS",
        "SM_LOG_LEVEL",
    ):
        assert env[key]
    assert [m["MetricName"] for m in job["FinalMetricDataList"]] == ["loss"]
    assert job["FinalMetricDataList"][0]["Value"] == pytest.approx(0.333)
    streams = logs.describe_log_streams(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix="churn-1/"
    )["logStreams"]
    assert len(streams) == 1 and streams[0]["logStreamName"].startswith("churn-1/algo-1-")
    messages = [
        e["message"]
        for e in logs.get_log_events(
            logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=streams[0]["logStreamName"]
        )["events"]
    ]
    assert "rows 3 argv ['--epochs', '3', '--mode', 'ok']" in messages
    assert "epoch=2 loss=0.333" in messages


def test_a_failing_script_fails_the_job_with_its_stderr(
    sagemaker: SageMakerEmulator, sm: Any, s3: Any, kit: Any
) -> None:
    _start(sagemaker, sm, s3, kit, "broken", "fail")
    job = _finished(sm, kit, "broken")
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("AlgorithmError: ")
    assert "something broke" in job["FailureReason"]
    assert "exit code: 3" in job["FailureReason"]
    assert "ModelArtifacts" not in job or not s3.list_objects_v2(
        Bucket=sagemaker.bucket, Prefix="jobs/broken/"
    ).get("Contents")


def test_the_failure_file_is_the_failure_reason(
    sagemaker: SageMakerEmulator, sm: Any, s3: Any, kit: Any
) -> None:
    _start(sagemaker, sm, s3, kit, "bad-input", "failure-file")
    job = _finished(sm, kit, "bad-input")
    assert (job["TrainingJobStatus"], job["FailureReason"]) == ("Failed", "bad input: column x")


def test_stop_training_job_stops_the_script(
    sagemaker: SageMakerEmulator, sm: Any, s3: Any, logs: Any, kit: Any
) -> None:
    _start(sagemaker, sm, s3, kit, "long", "sleep")
    kit.wait_for(
        lambda: sm.describe_training_job(TrainingJobName="long"),
        "SecondaryStatus",
        {"Starting", "Downloading"},
    )
    sm.stop_training_job(TrainingJobName="long")
    assert sm.describe_training_job(TrainingJobName="long")["TrainingJobStatus"] in {
        "Stopping",
        "Stopped",
    }
    job = _finished(sm, kit, "long")
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Stopped", "Stopped")
    assert "Stopping" in [t["Status"] for t in job["SecondaryStatusTransitions"]]
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        sm.stop_training_job(TrainingJobName="long")
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        sm.stop_training_job(TrainingJobName="never-was")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFound"


def test_max_runtime_stops_the_job(
    sagemaker: SageMakerEmulator, sm: Any, s3: Any, kit: Any
) -> None:
    _start(sagemaker, sm, s3, kit, "slow", "sleep", max_runtime=1)
    job = _finished(sm, kit, "slow")
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Stopped", "MaxRuntimeExceeded")


def test_names_are_unique_and_instance_types_checked(
    sagemaker: SageMakerEmulator, sm: Any, s3: Any, kit: Any
) -> None:
    _start(sagemaker, sm, s3, kit, "once", "ok")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        _start(sagemaker, sm, s3, kit, "once", "ok")
    assert caught.value.response["Error"]["Code"] == "ResourceInUse"
    assert (
        "Training job names must be unique within an AWS account and region"
        in caught.value.response["Error"]["Message"]
    )
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        sm.create_training_job(
            TrainingJobName="odd",
            RoleArn=kit.ROLE,
            AlgorithmSpecification={"TrainingImage": "i", "TrainingInputMode": "File"},
            OutputDataConfig={"S3OutputPath": f"s3://{sagemaker.bucket}/jobs"},
            ResourceConfig={
                "InstanceType": "ml.bogus.large",
                "InstanceCount": 1,
                "VolumeSizeInGB": 5,
            },
            StoppingCondition={"MaxRuntimeInSeconds": 60},
        )
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert "ml.bogus.large" in caught.value.response["Error"]["Message"]
    assert "ml.m5.large" in caught.value.response["Error"]["Message"]
    _finished(sm, kit, "once")


def test_an_image_without_a_script_fails_clearly(
    sagemaker: SageMakerEmulator, sm: Any, kit: Any
) -> None:
    sm.create_training_job(
        TrainingJobName="custom-image",
        RoleArn=kit.ROLE,
        AlgorithmSpecification={
            "TrainingImage": "123.dkr.ecr.us-east-1.amazonaws.com/mine:1",
            "TrainingInputMode": "File",
        },
        OutputDataConfig={"S3OutputPath": f"s3://{sagemaker.bucket}/jobs"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 60},
    )
    job = _finished(sm, kit, "custom-image")
    assert job["TrainingJobStatus"] == "Failed"
    assert "cannot run the training image" in job["FailureReason"]


CHECKPOINT_SCRIPT = b"""
import os
folder = os.environ["MLPORT_SM_CHECKPOINT_DIR"]
previous = sorted(os.listdir(folder))
print("restored", previous)
with open(os.path.join(folder, f"step-{len(previous)}.ckpt"), "w") as f:
    f.write("state")
open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w").write("m")
"""


def test_checkpoints_are_restored_and_saved_for_spot_jobs(
    sagemaker: SageMakerEmulator, sm: Any, s3: Any, logs: Any, kit: Any
) -> None:
    bucket = sagemaker.bucket
    s3.put_object(
        Bucket=bucket, Key="code/ckpt.tar.gz", Body=kit.tar_bytes({"train.py": CHECKPOINT_SCRIPT})
    )
    s3.put_object(Bucket=bucket, Key="checkpoints/spot/step-0.ckpt", Body=b"earlier attempt")
    request = {
        "RoleArn": kit.ROLE,
        "AlgorithmSpecification": {"TrainingImage": "sklearn", "TrainingInputMode": "File"},
        "HyperParameters": {
            "sagemaker_program": kit.hp("train.py"),
            "sagemaker_submit_directory": kit.hp(f"s3://{bucket}/code/ckpt.tar.gz"),
        },
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/jobs"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "EnableManagedSpotTraining": True,
        "CheckpointConfig": {"S3Uri": f"s3://{bucket}/checkpoints/spot"},
    }
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        sm.create_training_job(
            TrainingJobName="spot", StoppingCondition={"MaxRuntimeInSeconds": 60}, **request
        )
    assert "MaxWaitTimeInSeconds" in caught.value.response["Error"]["Message"]
    sm.create_training_job(
        TrainingJobName="spot",
        StoppingCondition={"MaxRuntimeInSeconds": 60, "MaxWaitTimeInSeconds": 120},
        **request,
    )
    job = _finished(sm, kit, "spot")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    keys = [
        o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="checkpoints/spot/")["Contents"]
    ]
    assert sorted(keys) == ["checkpoints/spot/step-0.ckpt", "checkpoints/spot/step-1.ckpt"]
    messages = [
        e["message"]
        for e in logs.filter_log_events(
            logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix="spot/"
        )["events"]
    ]
    assert "restored ['step-0.ckpt']" in messages


def test_a_delay_makes_each_state_last(
    sagemaker: SageMakerEmulator, sm: Any, s3: Any, kit: Any
) -> None:
    sagemaker.delay = 0.4
    try:
        _start(sagemaker, sm, s3, kit, "paced", "ok")
        assert sm.describe_training_job(TrainingJobName="paced")["SecondaryStatus"] == "Starting"
        job = _finished(sm, kit, "paced")
    finally:
        sagemaker.delay = 0.0
    assert job["TrainingJobStatus"] == "Completed"
    starting, downloading = job["SecondaryStatusTransitions"][:2]
    assert (starting["EndTime"] - starting["StartTime"]).total_seconds() >= 0.35
    assert (downloading["EndTime"] - downloading["StartTime"]).total_seconds() >= 0.35


def test_a_create_whose_answer_was_lost_still_runs_once(
    sagemaker: SageMakerEmulator, sm: Any, s3: Any, kit: Any
) -> None:
    sagemaker.inject("CreateTrainingJob", "drop_response_after_commit")
    with pytest.raises(botocore.exceptions.ConnectionClosedError):
        _start(sagemaker, sm, s3, kit, "lost-answer", "ok")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        _start(sagemaker, sm, s3, kit, "lost-answer", "ok")
    assert caught.value.response["Error"]["Code"] == "ResourceInUse"
    assert _finished(sm, kit, "lost-answer")["TrainingJobStatus"] == "Completed"
    names = [j["TrainingJobName"] for j in sm.list_training_jobs()["TrainingJobSummaries"]]
    assert names == ["lost-answer"]
