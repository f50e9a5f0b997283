"""SageMaker-specific behaviour against the local SageMaker: errors over HTTP, polling, the
quickstart script unmodified, and the hybrid on-prem-train / SageMaker-serve profile."""

from __future__ import annotations

import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mlport_sagemaker.emulator import EMULATOR_ROLE, SageMakerEmulator

import mlport
from mlport import Code, TrainingJob
from mlport.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidSpecError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    ThrottledError,
    TransientError,
)
from mlport.status import JobStatus

QUICKSTART = Path(__file__).resolve().parents[3] / "examples" / "quickstart"
ROWS = [[3.0, 99.0, 6, 1], [60.0, 25.0, 0, 24], [24.0, 70.0, 2, 12], [1.0, 110.0, 8, 1]]


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("ValidationException", InvalidSpecError),
        ("ResourceNotFound", NotFoundError),
        ("ResourceInUse", ConflictError),
        ("ResourceLimitExceeded", QuotaExceededError),
        ("ThrottlingException", ThrottledError),
        ("AccessDeniedException", PermissionDeniedError),
        ("InternalFailure", TransientError),
        ("ServiceUnavailable", TransientError),
    ],
)
def test_each_aws_error_maps_to_the_common_hierarchy(
    sagemaker: SageMakerEmulator, connect: Callable[..., Any], code: str, expected: type[Exception]
) -> None:
    ml = connect(retry_attempts=1)
    sagemaker.inject("ListTrainingJobs", code)
    with pytest.raises(expected, match=code) as caught:
        list(ml.training.list())
    assert caught.value.provider == "sagemaker"  # type: ignore[attr-defined]


def test_a_taken_name_on_create_is_already_exists(
    sagemaker: SageMakerEmulator, connect: Callable[..., Any]
) -> None:
    ml = connect(retry_attempts=1)
    sagemaker.inject("CreateModelPackageGroup", "ResourceInUse")
    provider = ml.registry.provider  # type: ignore[attr-defined]
    with pytest.raises(AlreadyExistsError):
        ml.registry._call(  # type: ignore[attr-defined]
            "create", provider.sagemaker.create_model_package_group, ModelPackageGroupName="g"
        )


def test_throttling_is_retried_by_the_core_policy(
    ml: mlport.Connection, sagemaker: SageMakerEmulator, tmp_path: Path
) -> None:
    (tmp_path / "train.py").write_text("print('ok')\n")
    sagemaker.inject("CreateTrainingJob", "ThrottlingException", times=2)
    job = ml.training.submit(TrainingJob(name="throttled", code=Code(source_dir=str(tmp_path))))
    assert job.name == "throttled"
    assert [j.name for j in ml.training.list()] == ["throttled"]


def test_waiting_polls_describe_with_backoff(connect: Callable[..., Any], tmp_path: Path) -> None:
    ml = connect(poll_interval=0.1, max_poll_interval=1.6)
    (tmp_path / "train.py").write_text("import time\ntime.sleep(4)\n")
    job = ml.training.submit(TrainingJob(name="slow", code=Code(source_dir=str(tmp_path))))
    calls: list[str] = []
    client = ml.training.provider.sagemaker  # type: ignore[attr-defined]
    client.meta.events.register(
        "before-call.sagemaker.DescribeTrainingJob", lambda **_: calls.append("describe")
    )
    job.wait(60, progress=False)
    assert job.status is JobStatus.SUCCEEDED
    # Fixed 0.1 s polls would make about 40 calls in 4 s; backoff doubling to 1.6 s makes few.
    assert 2 <= len(calls) <= 12, calls


def _onprem(folder: Path) -> mlport.Connection:
    return mlport.connect(
        "onprem", root=str(folder / ".mlport"), poll_interval=0.05, max_poll_interval=0.5
    )


def test_quickstart_unmodified_serves_the_same_predictions_as_onprem(
    connect: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(QUICKSTART))
    quickstart = __import__("run")
    data = quickstart.make_data(tmp_path / "data" / "churn.csv")
    spec = TrainingJob(
        name="quickstart",
        code=Code(source_dir=str(QUICKSTART), entry_point="train.py"),
        inputs={"train": str(data)},
        hyperparameters={"n_estimators": 40, "max_depth": 4},
    )
    cloud = connect()
    local = _onprem(tmp_path)
    try:
        on_cloud = cloud.training.submit(spec).wait(120, progress=False)
        on_prem = local.training.submit(spec).wait(120, progress=False)
        assert on_cloud.metrics == pytest.approx(on_prem.metrics)
        cloud_endpoint = cloud.endpoints.deploy(
            "churn", cloud.registry.register("churn", on_cloud), timeout=120
        )
        local_endpoint = local.endpoints.deploy(
            "churn", local.registry.register("churn", on_prem), timeout=120
        )
        assert cloud_endpoint.predict(ROWS) == local_endpoint.predict(ROWS)
        cloud.endpoints.delete("churn")
    finally:
        local.down()
        local.close()
        sys.modules.pop("run", None)


HYBRID_TOML = textwrap.dedent(
    """
    default_profile = "local"

    [profiles.local]
    provider = "onprem"
    root = ".mlport"
    poll_interval = 0.05
    max_poll_interval = 0.5

    [profiles.hybrid]
    provider = "sagemaker"
    region = "{region}"
    role = "{role}"
    bucket = "{bucket}"
    endpoint_url = "{url}"
    poll_interval = 0.05
    max_poll_interval = 0.5
    services = {{ training = "local" }}
    """
)


def test_hybrid_trains_onprem_and_serves_on_sagemaker_with_lineage(
    sagemaker: SageMakerEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLPORT_PROFILE", raising=False)
    (tmp_path / "mlport.toml").write_text(
        HYBRID_TOML.format(
            region=sagemaker.region,
            role=EMULATOR_ROLE,
            bucket=sagemaker.bucket,
            url=sagemaker.endpoint_url,
        )
    )
    monkeypatch.setenv("MLPORT_CONFIG", str(tmp_path / "mlport.toml"))
    monkeypatch.syspath_prepend(str(QUICKSTART))
    data = __import__("run").make_data(tmp_path / "data" / "churn.csv")
    ml = mlport.connect(profile="hybrid")
    try:
        job = ml.training.submit(
            TrainingJob(
                name="hybrid",
                code=Code(source_dir=str(QUICKSTART), entry_point="train.py"),
                inputs={"train": str(data)},
                hyperparameters={"n_estimators": 40},
            )
        ).wait(120, progress=False)
        assert job.provider == "onprem"
        version = ml.registry.register("churn", job, baseline=data)
        assert version.provider == "sagemaker"
        assert version.uri.startswith(f"s3://{sagemaker.bucket}/")
        assert version.lineage["job"] == "hybrid"
        assert version.lineage["job_provider"] == "onprem"
        assert version.lineage["code_sha256"] == job.lineage["code_sha256"]
        endpoint = ml.endpoints.deploy("churn-hybrid", version, capture_percent=100, timeout=120)
        ml.monitoring.enable("churn-hybrid", schedule=None)
        assert len(endpoint.predict(ROWS)) == len(ROWS)
        time.sleep(sagemaker.capture_flush_seconds + 1)  # the capture files reach S3
        report = ml.monitoring.run("churn-hybrid")
        assert report.current_size == len(ROWS)
        assert {f.feature for f in report.features} == {
            "tenure",
            "monthly_charges",
            "support_calls",
            "contract_months",
        }
        ml.endpoints.delete("churn-hybrid")
    finally:
        ml.down()
        ml.close()
        sys.modules.pop("run", None)


def test_the_iam_policy_allows_every_sagemaker_call_the_provider_makes() -> None:
    import json
    import re
    import subprocess

    import mlport_sagemaker
    from mlport_sagemaker.iam import ACTIONS

    source = Path(mlport_sagemaker.__file__).parent
    called = set()
    for path in source.glob("*.py"):
        for method in re.findall(r"self\._sm\.([a-z_]+)\b", path.read_text()):
            called.add("sagemaker:" + "".join(part.title() for part in method.split("_")))
    allowed = {action for actions in ACTIONS.values() for action in actions}
    assert called, "no SageMaker call found"
    assert called <= allowed, sorted(called - allowed)

    printed = subprocess.run(
        [sys.executable, "-m", "mlport", "providers", "show", "sagemaker", "--iam-policy"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    document = json.loads(printed)
    assert document["Version"] == "2012-10-17"
    assert set(document["Statement"][0]["Action"]) == allowed


def _aws(sagemaker: SageMakerEmulator, service: str) -> Any:
    import boto3

    return boto3.client(
        service,
        endpoint_url=sagemaker.endpoint_url,
        region_name=sagemaker.region,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def _keys(sagemaker: SageMakerEmulator, prefix: str) -> list[str]:
    listed = _aws(sagemaker, "s3").list_objects_v2(Bucket=sagemaker.bucket, Prefix=prefix)
    return [item["Key"] for item in listed.get("Contents", [])]


def _package(folder: Path, *, broken: bool = False) -> Path:
    import joblib
    from sklearn.linear_model import LogisticRegression

    from mlport import package

    folder.mkdir(parents=True)
    if broken:
        (folder / "model.joblib").write_bytes(b"not a model")
    else:
        model = LogisticRegression().fit(
            [[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]], [0, 1, 1, 0]
        )
        joblib.dump(model, folder / "model.joblib")
    package.build(folder, framework="sklearn")
    return folder


def test_a_refused_job_leaves_no_staged_files(
    ml: mlport.Connection, sagemaker: SageMakerEmulator, tmp_path: Path
) -> None:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text("print('ok')\n")
    (tmp_path / "data.csv").write_text("a\n1\n")
    sagemaker.inject("CreateTrainingJob", "ValidationException")
    with pytest.raises(InvalidSpecError):
        ml.training.submit(
            TrainingJob(
                name="refused",
                code=Code(source_dir=str(tmp_path / "code")),
                inputs={"train": str(tmp_path / "data.csv")},
            )
        )
    assert _keys(sagemaker, "mlport/jobs/refused/") == []


def test_a_refused_version_leaves_no_files(
    ml: mlport.Connection, sagemaker: SageMakerEmulator, tmp_path: Path
) -> None:
    sagemaker.inject("CreateModelPackage", "ValidationException")
    with pytest.raises(InvalidSpecError):
        ml.registry.register("refused", _package(tmp_path / "pkg"))
    assert _keys(sagemaker, "mlport/models/refused/") == []


def test_a_refused_endpoint_leaves_no_model_or_config(
    ml: mlport.Connection, sagemaker: SageMakerEmulator, tmp_path: Path
) -> None:
    version = ml.registry.register("served", _package(tmp_path / "pkg"))
    sagemaker.inject("CreateEndpoint", "ValidationException")
    with pytest.raises(InvalidSpecError):
        ml.endpoints.deploy("refused", version)
    client = _aws(sagemaker, "sagemaker")
    assert client.list_models(NameContains="refused")["Models"] == []
    assert client.list_endpoint_configs(NameContains="refused")["EndpointConfigs"] == []


def test_a_failed_update_rolls_back_and_cleans_up(
    ml: mlport.Connection, sagemaker: SageMakerEmulator, tmp_path: Path
) -> None:
    from mlport.errors import DeploymentFailedError

    good = ml.registry.register("flaky", _package(tmp_path / "good"))
    broken = ml.registry.register("flaky", _package(tmp_path / "broken", broken=True))
    endpoint = ml.endpoints.deploy("flaky", good, timeout=60)
    before = endpoint.predict([[1.0, 1.0]])
    with pytest.raises(DeploymentFailedError, match="rolled back"):
        ml.endpoints.deploy("flaky", broken, timeout=60)
    after = ml.endpoints.get("flaky")
    assert after.variants == {good.version: 100}
    assert after.predict([[1.0, 1.0]]) == before
    client = _aws(sagemaker, "sagemaker")
    assert len(client.list_models(NameContains="flaky")["Models"]) == 1
    assert len(client.list_endpoint_configs(NameContains="flaky")["EndpointConfigs"]) == 1
    ml.endpoints.delete("flaky")
    assert client.list_models(NameContains="flaky")["Models"] == []
    assert client.list_endpoint_configs(NameContains="flaky")["EndpointConfigs"] == []


def test_replicas_register_autoscaling_and_delete_removes_it(
    ml: mlport.Connection, sagemaker: SageMakerEmulator, tmp_path: Path
) -> None:
    version = ml.registry.register("scaled", _package(tmp_path / "pkg"))
    endpoint = ml.endpoints.deploy(
        "scaled", version, min_replicas=1, max_replicas=3, capture_percent=25, timeout=60
    )
    assert endpoint.capture_percent == 25
    scaling = _aws(sagemaker, "application-autoscaling")
    targets = scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert [(t["ResourceId"], t["MinCapacity"], t["MaxCapacity"]) for t in targets] == [
        (f"endpoint/scaled/variant/v{version.version}", 1, 3)
    ]
    policies = scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    assert policies[0]["PolicyType"] == "TargetTrackingScaling"
    ml.endpoints.delete("scaled")
    assert scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"] == []


def test_a_deploy_whose_answer_was_lost_makes_one_endpoint(
    ml: mlport.Connection, sagemaker: SageMakerEmulator, tmp_path: Path
) -> None:
    from mlport.testing.emulator import DROP_RESPONSE_AFTER_COMMIT

    version = ml.registry.register("lost", _package(tmp_path / "pkg"))
    sagemaker.inject("CreateEndpoint", DROP_RESPONSE_AFTER_COMMIT)
    endpoint = ml.endpoints.deploy("lost", version, timeout=60)
    assert endpoint.variants == {version.version: 100}
    client = _aws(sagemaker, "sagemaker")
    assert [e["EndpointName"] for e in client.list_endpoints()["Endpoints"]] == ["lost"]
    assert len(client.list_models(NameContains="lost")["Models"]) == 1
    assert len(client.list_endpoint_configs(NameContains="lost")["EndpointConfigs"]) == 1
    ml.endpoints.delete("lost")
