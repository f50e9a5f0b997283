"""The least-privilege IAM policy of the identity that runs mlport against SageMaker.

``mlport providers show sagemaker --iam-policy`` prints it. It lists exactly the API calls the
provider makes, on resources scoped to the profile's bucket and prefix where AWS allows it. The
execution role (``role``) is a separate identity: SageMaker assumes it to read and write the
bucket and write logs inside jobs and endpoints; AWS's AmazonSageMakerFullAccess or a policy
giving it the same bucket access serves.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ACTIONS", "policy"]

ACTIONS: dict[str, list[str]] = {
    "training": [
        "sagemaker:CreateTrainingJob",
        "sagemaker:DescribeTrainingJob",
        "sagemaker:ListTrainingJobs",
        "sagemaker:StopTrainingJob",
    ],
    "registry": [
        "sagemaker:CreateModelPackageGroup",
        "sagemaker:DescribeModelPackageGroup",
        "sagemaker:ListModelPackageGroups",
        "sagemaker:DeleteModelPackageGroup",
        "sagemaker:CreateModelPackage",
        "sagemaker:DescribeModelPackage",
        "sagemaker:ListModelPackages",
        "sagemaker:UpdateModelPackage",
        "sagemaker:DeleteModelPackage",
    ],
    "endpoints": [
        "sagemaker:CreateModel",
        "sagemaker:DescribeModel",
        "sagemaker:ListModels",
        "sagemaker:DeleteModel",
        "sagemaker:CreateEndpointConfig",
        "sagemaker:DescribeEndpointConfig",
        "sagemaker:ListEndpointConfigs",
        "sagemaker:DeleteEndpointConfig",
        "sagemaker:CreateEndpoint",
        "sagemaker:DescribeEndpoint",
        "sagemaker:ListEndpoints",
        "sagemaker:UpdateEndpoint",
        "sagemaker:UpdateEndpointWeightsAndCapacities",
        "sagemaker:DeleteEndpoint",
        "sagemaker:InvokeEndpoint",
        "sagemaker:CreateTransformJob",
        "sagemaker:DescribeTransformJob",
        "sagemaker:ListTransformJobs",
        "sagemaker:StopTransformJob",
    ],
    "monitoring": [
        "sagemaker:CreateDataQualityJobDefinition",
        "sagemaker:DeleteDataQualityJobDefinition",
        "sagemaker:CreateMonitoringSchedule",
        "sagemaker:DeleteMonitoringSchedule",
    ],
    "notebooks": [
        "sagemaker:CreateNotebookInstance",
        "sagemaker:DescribeNotebookInstance",
        "sagemaker:ListNotebookInstances",
        "sagemaker:StartNotebookInstance",
        "sagemaker:StopNotebookInstance",
        "sagemaker:DeleteNotebookInstance",
        "sagemaker:CreatePresignedNotebookInstanceUrl",
        "sagemaker:CreateNotebookInstanceLifecycleConfig",
        "sagemaker:DeleteNotebookInstanceLifecycleConfig",
    ],
    "tags": ["sagemaker:AddTags", "sagemaker:DeleteTags", "sagemaker:ListTags"],
}
"""SageMaker actions the provider calls, by service."""


def policy(
    bucket: str | None = None, prefix: str = "mlport", role: str | None = None
) -> dict[str, Any]:
    """The IAM policy document (a dict ready for ``json.dumps``).

    Args:
        bucket: The profile's bucket; ``*`` scopes S3 to every bucket.
        prefix: The profile's key prefix.
        role: The execution role ARN that may be passed to SageMaker.
    """
    name = bucket or "*"
    objects = f"arn:aws:s3:::{name}/{prefix.strip('/')}/*" if prefix else f"arn:aws:s3:::{name}/*"
    statements: list[dict[str, Any]] = [
        {
            "Sid": "SageMaker",
            "Effect": "Allow",
            "Action": sorted({a for actions in ACTIONS.values() for a in actions}),
            "Resource": "*",
        },
        {
            "Sid": "Objects",
            "Effect": "Allow",
            "Action": [
                "s3:GetObject",
                "s3:PutObject",
                "s3:DeleteObject",
                "s3:AbortMultipartUpload",
            ],
            "Resource": objects,
        },
        {
            "Sid": "Bucket",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": f"arn:aws:s3:::{name}",
        },
        {
            "Sid": "Logs",
            "Effect": "Allow",
            "Action": ["logs:DescribeLogStreams", "logs:GetLogEvents"],
            "Resource": [
                "arn:aws:logs:*:*:log-group:/aws/sagemaker/TrainingJobs:*",
                "arn:aws:logs:*:*:log-group:/aws/sagemaker/TransformJobs:*",
                "arn:aws:logs:*:*:log-group:/aws/sagemaker/Endpoints/*",
            ],
        },
        {
            "Sid": "Autoscaling",
            "Effect": "Allow",
            "Action": [
                "application-autoscaling:RegisterScalableTarget",
                "application-autoscaling:DeregisterScalableTarget",
                "application-autoscaling:DescribeScalableTargets",
                "application-autoscaling:PutScalingPolicy",
                "application-autoscaling:DescribeScalingPolicies",
                "application-autoscaling:DeleteScalingPolicy",
            ],
            "Resource": "*",
        },
        {
            "Sid": "PassExecutionRole",
            "Effect": "Allow",
            "Action": ["iam:PassRole"],
            "Resource": role or "arn:aws:iam::*:role/*",
            "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        },
    ]
    return {"Version": "2012-10-17", "Statement": statements}
