"""The SageMaker APIs the emulator adds to moto: registry deletes, monitoring, notebooks."""

from __future__ import annotations

from typing import Any

import botocore.exceptions
import pytest
from mlport_sagemaker.emulator import SageMakerEmulator


def _code(call: Any) -> str:
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    return str(caught.value.response["Error"]["Code"])


def test_model_packages_and_groups_can_be_deleted(sm: Any) -> None:
    sm.create_model_package_group(ModelPackageGroupName="churn")
    assert (
        _code(lambda: sm.create_model_package_group(ModelPackageGroupName="churn"))
        == "ValidationException"
    )
    container = {"Image": "img", "ModelDataUrl": "s3://b/model.tar.gz"}
    spec = {
        "Containers": [container],
        "SupportedContentTypes": ["text/csv"],
        "SupportedResponseMIMETypes": ["application/json"],
    }
    first = sm.create_model_package(ModelPackageGroupName="churn", InferenceSpecification=spec)[
        "ModelPackageArn"
    ]
    second = sm.create_model_package(ModelPackageGroupName="churn", InferenceSpecification=spec)[
        "ModelPackageArn"
    ]
    assert (
        _code(lambda: sm.delete_model_package_group(ModelPackageGroupName="churn"))
        == "ConflictException"
    )
    sm.add_tags(ResourceArn=second, Tags=[{"Key": "stage", "Value": "staging"}])
    assert sm.list_tags(ResourceArn=second)["Tags"] == [{"Key": "stage", "Value": "staging"}]
    sm.delete_model_package(ModelPackageName=second)
    listed = sm.list_model_packages(ModelPackageGroupName="churn")["ModelPackageSummaryList"]
    assert [p["ModelPackageArn"] for p in listed] == [first]
    assert (
        _code(lambda: sm.describe_model_package(ModelPackageName=second)) == "ValidationException"
    )
    sm.delete_model_package(ModelPackageName=first)
    sm.delete_model_package_group(ModelPackageGroupName="churn")
    assert sm.list_model_package_groups()["ModelPackageGroupSummaryList"] == []
    assert (
        _code(lambda: sm.delete_model_package_group(ModelPackageGroupName="churn"))
        == "ValidationException"
    )
    assert _code(lambda: sm.delete_model_package(ModelPackageName=first)) == "ValidationException"


def _definition(sm: Any, kit: Any, bucket: str) -> None:
    sm.create_data_quality_job_definition(
        JobDefinitionName="churn-dq",
        DataQualityAppSpecification={
            "ImageUri": "159807026194.dkr.ecr.us-east-1.amazonaws.com/sagemaker-model-monitor-analyzer"
        },
        DataQualityJobInput={
            "EndpointInput": {"EndpointName": "churn-api", "LocalPath": "/opt/ml/processing/input"}
        },
        DataQualityJobOutputConfig={
            "MonitoringOutputs": [
                {
                    "S3Output": {
                        "S3Uri": f"s3://{bucket}/reports",
                        "LocalPath": "/opt/ml/processing/output",
                    }
                }
            ]
        },
        JobResources={
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "VolumeSizeInGB": 20,
            }
        },
        RoleArn=kit.ROLE,
    )


def test_monitoring_schedules_have_their_lifecycle(
    sagemaker: SageMakerEmulator, sm: Any, kit: Any
) -> None:
    _definition(sm, kit, sagemaker.bucket)
    assert _code(lambda: _definition(sm, kit, sagemaker.bucket)) == "ResourceInUse"
    config = {
        "ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"},
        "MonitoringJobDefinitionName": "churn-dq",
        "MonitoringType": "DataQuality",
    }
    created = sm.create_monitoring_schedule(
        MonitoringScheduleName="churn-hourly",
        MonitoringScheduleConfig=config,
        Tags=[{"Key": "mlport:endpoint", "Value": "churn-api"}],
    )
    schedule_arn = created["MonitoringScheduleArn"]
    sm.add_tags(ResourceArn=schedule_arn, Tags=[{"Key": "team", "Value": "ml"}])
    assert sm.list_tags(ResourceArn=schedule_arn)["Tags"] == [
        {"Key": "mlport:endpoint", "Value": "churn-api"},
        {"Key": "team", "Value": "ml"},
    ]
    sm.delete_tags(ResourceArn=schedule_arn, TagKeys=["team"])
    assert [t["Key"] for t in sm.list_tags(ResourceArn=schedule_arn)["Tags"]] == ["mlport:endpoint"]
    assert (
        _code(lambda: sm.list_tags(ResourceArn=schedule_arn.replace("churn-hourly", "nope")))
        == "ValidationException"
    )
    assert created["MonitoringScheduleArn"].endswith(":monitoring-schedule/churn-hourly")
    assert (
        _code(
            lambda: sm.create_monitoring_schedule(
                MonitoringScheduleName="churn-hourly", MonitoringScheduleConfig=config
            )
        )
        == "ResourceInUse"
    )
    described = sm.describe_monitoring_schedule(MonitoringScheduleName="churn-hourly")
    assert described["MonitoringScheduleStatus"] == "Scheduled"
    assert described["EndpointName"] == "churn-api"
    assert (
        described["MonitoringScheduleConfig"]["ScheduleConfig"]["ScheduleExpression"]
        == "cron(0 * ? * * *)"
    )
    listed = sm.list_monitoring_schedules(EndpointName="churn-api")["MonitoringScheduleSummaries"]
    assert [s["MonitoringScheduleName"] for s in listed] == ["churn-hourly"]
    assert sm.list_monitoring_schedules(EndpointName="other")["MonitoringScheduleSummaries"] == []
    sm.stop_monitoring_schedule(MonitoringScheduleName="churn-hourly")
    assert (
        sm.describe_monitoring_schedule(MonitoringScheduleName="churn-hourly")[
            "MonitoringScheduleStatus"
        ]
        == "Stopped"
    )
    sm.start_monitoring_schedule(MonitoringScheduleName="churn-hourly")
    assert (
        sm.describe_monitoring_schedule(MonitoringScheduleName="churn-hourly")[
            "MonitoringScheduleStatus"
        ]
        == "Scheduled"
    )
    assert (
        sm.list_monitoring_executions(MonitoringScheduleName="churn-hourly")[
            "MonitoringExecutionSummaries"
        ]
        == []
    )
    bad = {**config, "ScheduleConfig": {"ScheduleExpression": "every hour"}}
    assert (
        _code(
            lambda: sm.create_monitoring_schedule(
                MonitoringScheduleName="bad", MonitoringScheduleConfig=bad
            )
        )
        == "ValidationException"
    )
    missing = {**config, "MonitoringJobDefinitionName": "nope"}
    assert (
        _code(
            lambda: sm.create_monitoring_schedule(
                MonitoringScheduleName="bad", MonitoringScheduleConfig=missing
            )
        )
        == "ResourceNotFound"
    )
    sm.delete_monitoring_schedule(MonitoringScheduleName="churn-hourly")
    assert (
        _code(lambda: sm.describe_monitoring_schedule(MonitoringScheduleName="churn-hourly"))
        == "ResourceNotFound"
    )
    assert (
        _code(lambda: sm.delete_monitoring_schedule(MonitoringScheduleName="churn-hourly"))
        == "ResourceNotFound"
    )


def test_notebooks_get_a_presigned_url_and_lifecycle_configs(sm: Any, kit: Any) -> None:
    sm.create_notebook_instance_lifecycle_config(
        NotebookInstanceLifecycleConfigName="idle-stop", OnStart=[{"Content": "IyEvYmluL2Jhc2g="}]
    )
    assert [
        c["NotebookInstanceLifecycleConfigName"]
        for c in sm.list_notebook_instance_lifecycle_configs()["NotebookInstanceLifecycleConfigs"]
    ] == ["idle-stop"]
    sm.create_notebook_instance(
        NotebookInstanceName="dev",
        InstanceType="ml.t3.medium",
        RoleArn=kit.ROLE,
        LifecycleConfigName="idle-stop",
    )
    url = sm.create_presigned_notebook_instance_url(NotebookInstanceName="dev")["AuthorizedUrl"]
    assert url.startswith("https://dev.notebook.") and "authToken=" in url
    assert (
        _code(lambda: sm.create_presigned_notebook_instance_url(NotebookInstanceName="ghost"))
        == "ValidationException"
    )
    assert (
        _code(
            lambda: sm.update_notebook_instance(
                NotebookInstanceName="dev", InstanceType="ml.t3.large"
            )
        )
        == "ValidationException"
    )
    sm.stop_notebook_instance(NotebookInstanceName="dev")
    sm.update_notebook_instance(NotebookInstanceName="dev", InstanceType="ml.t3.large")
    assert (
        sm.describe_notebook_instance(NotebookInstanceName="dev")["InstanceType"] == "ml.t3.large"
    )
    assert (
        _code(
            lambda: sm.create_notebook_instance(
                NotebookInstanceName="odd", InstanceType="ml.nope", RoleArn=kit.ROLE
            )
        )
        == "ValidationException"
    )


def test_autoscaling_of_a_variant_is_recorded(sagemaker: SageMakerEmulator, kit: Any) -> None:
    scaling = kit.client(sagemaker, "application-autoscaling")
    resource = "endpoint/churn-api/variant/AllTraffic"
    scaling.register_scalable_target(
        ServiceNamespace="sagemaker",
        ResourceId=resource,
        ScalableDimension="sagemaker:variant:DesiredInstanceCount",
        MinCapacity=1,
        MaxCapacity=3,
    )
    scaling.put_scaling_policy(
        PolicyName="invocations",
        ServiceNamespace="sagemaker",
        ResourceId=resource,
        ScalableDimension="sagemaker:variant:DesiredInstanceCount",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 100.0,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
            },
        },
    )
    (target,) = scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 3)
    assert [
        p["PolicyName"]
        for p in scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    ] == ["invocations"]
