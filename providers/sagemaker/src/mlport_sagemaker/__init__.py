"""The AWS SageMaker provider of mlport.

Training jobs run in SageMaker's framework containers with a small bootstrap that maps SageMaker's
conventions onto the mlport training-script contract; the registry is model package groups;
endpoints are Model + EndpointConfig + Endpoint with one production variant per model version;
monitors keep SageMaker data capture and a monitoring schedule, and compute drift with mlport's own
engine; notebooks are notebook instances; storage is S3. Built on boto3 with botocore's own retries
off (mlport's policy is the only one). Importing this module imports no AWS SDK.

A local SageMaker to test against ships in :mod:`mlport_sagemaker.emulator`.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from mlport.providers import ProviderConfig, ProviderSpec

__all__ = ["SageMakerConfig", "provider"]

_ROLE = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class SageMakerConfig(ProviderConfig):
    """Profile keys of the SageMaker provider."""

    region: str | None = Field(
        None, description="AWS region, e.g. us-east-1; default: the AWS configuration's"
    )
    role: str | None = Field(
        None,
        description="Execution role ARN that SageMaker assumes for jobs, endpoints and notebooks",
    )
    bucket: str | None = Field(
        None, description="S3 bucket for code bundles, staged inputs, models and reports"
    )
    prefix: str = Field("mlport", description="Key prefix under the bucket")
    endpoint_url: str | None = Field(
        None,
        description="One endpoint URL for every AWS API (a local SageMaker, a VPC endpoint)",
    )
    profile_name: str | None = Field(None, description="Named profile in ~/.aws/config")
    serving_image: str | None = Field(
        None,
        description="ECR image of the mlport serving container; default "
        "<account>.dkr.ecr.<region>.amazonaws.com/mlport-serving:<mlport version>",
    )
    monitoring_image: str | None = Field(
        None,
        description="Image of the DataQualityJobDefinition; default SageMaker's model-monitor "
        "analyzer for the region",
    )
    kms_key_id: str | None = Field(
        None, description="KMS key for training output, endpoints and captured data"
    )

    @field_validator("role")
    @classmethod
    def _role_arn(cls, value: str | None) -> str | None:
        if value is not None and not _ROLE.fullmatch(value):
            raise ValueError(
                f"role {value!r} is not an IAM role ARN such as 'arn:aws:iam::123456789012:role/ml'"
            )
        return value

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, value: str | None) -> str | None:
        if value is not None and (not _BUCKET.fullmatch(value) or ".." in value):
            raise ValueError(
                f"bucket {value!r} is not an S3 bucket name (3-63 lowercase letters, digits, "
                "'.' and '-'); give the name alone, without s3://"
            )
        return value

    @field_validator("prefix")
    @classmethod
    def _key_prefix(cls, value: str) -> str:
        return value.strip("/")


provider = ProviderSpec(
    name="sagemaker",
    config_model=SageMakerConfig,
    implementation="mlport_sagemaker.provider:SageMakerProvider",
    distribution="mlport-sagemaker",
    description="AWS SageMaker: training jobs, model packages, endpoints, monitors, notebooks",
    requires=("boto3",),
    unsupported={
        "training.delete": "SageMaker keeps training jobs; they cannot be deleted",
    },
    catalog="sagemaker",
    iam_policy="mlport_sagemaker.iam:policy",
)
