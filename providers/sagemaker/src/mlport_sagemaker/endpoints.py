"""SageMaker endpoints: Model + EndpointConfig + Endpoint, one production variant per version.

- A variant is named ``v<version>`` and serves a SageMaker Model made from the version's
  ``model.tar.gz`` and the mlport serving image (its environment carries the manifest's
  registered sha256, which the server checks before loading).
- ``deploy`` on a new endpoint creates the three; on an existing one it makes a new endpoint
  config (the new version alone, or beside the current ones as a canary) and calls
  UpdateEndpoint. SageMaker updates blue/green and rolls back when the new fleet fails: the
  endpoint is then InService on its old config, which ``deploy`` reports as
  DeploymentFailedError, deleting the model and config it made.
- ``set_traffic`` is UpdateEndpointWeightsAndCapacities.
- ``capture_percent`` is DataCaptureConfig (input and output, to
  ``s3://<bucket>/<prefix>/capture/``); ``max_replicas`` above ``min_replicas`` registers the
  variant with Application Auto Scaling and a target-tracking policy on invocations per instance.
- ``predict`` is sagemaker-runtime InvokeEndpoint. ``delete`` removes the endpoint, its configs,
  models and scaling targets; it is idempotent and finishes a delete that was interrupted.
- Batch prediction is a transform job (CreateTransformJob).

Every model and endpoint config mlport makes carries the tag ``mlport:endpoint`` = endpoint name.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlport.errors import (
    AlreadyExistsError,
    DeploymentFailedError,
    InvalidSpecError,
    NotFoundError,
)
from mlport.handles import Endpoint, Job, ModelVersion
from mlport.services import BatchRequest, DeployRequest, EndpointService, LogChunk, Page
from mlport_sagemaker._status import ENDPOINT_STATES, JOB_STATES
from mlport_sagemaker.training import merge_options, read_log_streams

if TYPE_CHECKING:
    from mlport_sagemaker.provider import SageMakerProvider

__all__ = ["SageMakerEndpoints", "variant_name", "version_of"]

ENDPOINT_TAG = "mlport:endpoint"
MODEL_TAG = "mlport:model"
SCALING_TAG = "mlport:autoscaling"
LOCAL_OUTPUT_TAG = "mlport:local-output"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
DEFAULT_INVOCATIONS_PER_INSTANCE = 70.0
DEFAULT_INSTANCE = "ml.m5.large"
_PAGE = 50


def variant_name(version: str) -> str:
    """The production variant serving ``version``."""
    return f"v{version}"


def version_of(variant: str) -> str:
    """The version a variant serves (``v3`` -> ``3``)."""
    return variant[1:] if variant.startswith("v") and variant[1:].isdigit() else variant


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S") + secrets.token_hex(2)


def _resource_name(endpoint: str, suffix: str) -> str:
    """``<endpoint>-<suffix>`` within SageMaker's 63 characters."""
    return f"{endpoint[: 62 - len(suffix)].rstrip('-')}-{suffix}"


class SageMakerEndpoints(EndpointService):
    """Real-time endpoints and transform jobs on SageMaker."""

    provider: SageMakerProvider

    @property
    def _sm(self) -> Any:
        return self.provider.sagemaker

    # --- deploy ----------------------------------------------------------------------------------

    def deploy(self, name: str, version: ModelVersion, **kwargs: Any) -> Endpoint:
        """Create or update endpoint ``name`` (see :meth:`EndpointService.deploy`).

        An update that SageMaker rolls back raises DeploymentFailedError with SageMaker's reason;
        the endpoint keeps serving what it served before, and the model and config made for the
        update are deleted.
        """
        endpoint = super().deploy(name, version, **kwargs)
        if kwargs.get("wait", True):
            if version.version not in endpoint.variants:
                self._forget_unused(name)
                raise DeploymentFailedError(
                    f"endpoint {name!r} rolled back to {sorted(endpoint.variants)}: "
                    f"{endpoint.failure_reason or 'the new version did not become healthy'}",
                    provider=self.provider.name,
                    resource=name,
                )
            self._call("autoscaling", self._apply_scaling, name)
            self._call("cleanup", self._forget_unused, name)
        return endpoint

    def _deploy(self, request: DeployRequest) -> Endpoint:
        options = request.options
        if options.min_replicas < 1:
            raise InvalidSpecError(
                "min_replicas must be at least 1 on SageMaker real-time endpoints",
                resource=request.name,
            )
        if request.version.package_sha256 is None:
            raise InvalidSpecError(
                f"{request.version.name} version {request.version.version} has no recorded "
                "package sha256; register it with mlport first",
                resource=request.name,
            )
        name = request.name
        model = self._create_model(name, request.version)
        try:
            variants = [self._variant(request, model, 100.0)]
            if request.existing is not None and options.traffic_percent is not None:
                share = options.traffic_percent
                current = self._current_variants(name)
                total = sum(v.get("InitialVariantWeight", 0.0) for v in current) or 1.0
                kept = [
                    {
                        **v,
                        "InitialVariantWeight": v.get("InitialVariantWeight", 0.0)
                        / total
                        * (100.0 - share),
                    }
                    for v in current
                    if v["VariantName"] != variant_name(request.version.version)
                ]
                variants = [*kept, self._variant(request, model, share)]
            self._create_and_apply(request, model, variants)
        except Exception as exc:
            # A refused create or update leaves no model or config behind (without the
            # endpoint, every model and config made for it is unused).
            if self.provider.failed_for_good(exc):
                with contextlib.suppress(Exception):
                    self._forget_unused(name)
            raise
        return self._get(name)

    def _create_and_apply(
        self, request: DeployRequest, model: str, variants: list[dict[str, Any]]
    ) -> None:
        name = request.name
        options = request.options
        config = self._create_config(name, variants, options.capture_percent, request)
        scaling = None
        if options.max_replicas and options.max_replicas > options.min_replicas:
            scaling = f"{options.min_replicas}-{options.max_replicas}"
        if request.existing is None:
            tags = [
                {"Key": ENDPOINT_TAG, "Value": name},
                {"Key": MODEL_TAG, "Value": request.version.name},
            ]
            if scaling:
                tags.append({"Key": SCALING_TAG, "Value": scaling})
            try:
                self._sm.create_endpoint(EndpointName=name, EndpointConfigName=config, Tags=tags)
            except Exception as exc:
                if not (
                    isinstance(self.provider.translate_error(exc), AlreadyExistsError)
                    and self._made_by_earlier_attempt(name, request.version)
                ):
                    raise
        else:
            arn = self._sm.describe_endpoint(EndpointName=name)["EndpointArn"]
            tags = [{"Key": MODEL_TAG, "Value": request.version.name}]
            if scaling:
                tags.append({"Key": SCALING_TAG, "Value": scaling})
            self._sm.add_tags(ResourceArn=arn, Tags=tags)
            self._sm.update_endpoint(EndpointName=name, EndpointConfigName=config)

    def _made_by_earlier_attempt(self, name: str, version: ModelVersion) -> bool:
        """True if endpoint ``name`` is ours for ``version``: a create whose answer was lost and
        that the retry finds done (its extra model and config are removed after the wait)."""
        tags = self._tags(self._sm.describe_endpoint(EndpointName=name)["EndpointArn"])
        if tags.get(ENDPOINT_TAG) != name or tags.get(MODEL_TAG) != version.name:
            return False
        current = self._current_variants(name)
        return [v["VariantName"] for v in current] == [variant_name(version.version)]

    def _create_model(self, endpoint: str, version: ModelVersion) -> str:
        model = _resource_name(endpoint, f"v{version.version}-{_stamp()}")
        environment = {
            "MLPORT_HOSTING": "sagemaker",
            "MLPORT_MANIFEST_SHA256": version.package_sha256 or "",
            "MLPORT_MODEL_NAME": version.name,
            "MLPORT_MODEL_VERSION": version.version,
        }
        self._sm.create_model(
            ModelName=model,
            PrimaryContainer={
                "Image": self.provider.serving_image,
                "ModelDataUrl": version.uri,
                "Environment": environment,
            },
            ExecutionRoleArn=self.provider.role,
            Tags=[{"Key": ENDPOINT_TAG, "Value": endpoint}],
        )
        return model

    @staticmethod
    def _variant(request: DeployRequest, model: str, weight: float) -> dict[str, Any]:
        return {
            "VariantName": variant_name(request.version.version),
            "ModelName": model,
            "InitialInstanceCount": request.options.min_replicas,
            "InstanceType": request.compute.instance_type or DEFAULT_INSTANCE,
            "InitialVariantWeight": weight,
        }

    def _current_variants(self, name: str) -> list[dict[str, Any]]:
        found = self._sm.describe_endpoint(EndpointName=name)
        config = self._sm.describe_endpoint_config(EndpointConfigName=found["EndpointConfigName"])
        weights = {
            v["VariantName"]: v.get("CurrentWeight", v.get("DesiredWeight"))
            for v in found.get("ProductionVariants") or []
        }
        variants = []
        for variant in config.get("ProductionVariants", []):
            kept = {
                key: variant[key]
                for key in (
                    "VariantName",
                    "ModelName",
                    "InitialInstanceCount",
                    "InstanceType",
                    "InitialVariantWeight",
                )
                if key in variant
            }
            if weights.get(variant["VariantName"]) is not None:
                kept["InitialVariantWeight"] = float(weights[variant["VariantName"]])
            variants.append(kept)
        return variants

    def _create_config(
        self,
        name: str,
        variants: list[dict[str, Any]],
        capture_percent: float,
        request: DeployRequest,
    ) -> str:
        config = _resource_name(name, _stamp())
        body: dict[str, Any] = {
            "EndpointConfigName": config,
            "ProductionVariants": variants,
            "Tags": [{"Key": ENDPOINT_TAG, "Value": name}],
        }
        if capture_percent:
            body["DataCaptureConfig"] = {
                "EnableCapture": True,
                "InitialSamplingPercentage": max(1, round(capture_percent)),
                "DestinationS3Uri": self.capture_uri(),
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                "CaptureContentTypeHeader": {
                    "JsonContentTypes": ["application/json"],
                    "CsvContentTypes": ["text/csv"],
                },
            }
        if self.provider.config.kms_key_id:
            body["KmsKeyId"] = self.provider.config.kms_key_id
        body = merge_options(body, request.options.provider_options.get("sagemaker", {}))
        self._sm.create_endpoint_config(**body)
        return config

    def capture_uri(self) -> str:
        """Where endpoints capture requests: ``s3://<bucket>/<prefix>/capture``."""
        return self.provider.s3_uri("capture")

    def _apply_scaling(self, name: str) -> None:
        """Register the endpoint's variants with Application Auto Scaling, if asked for."""
        found = self._sm.describe_endpoint(EndpointName=name)
        wanted = self._tags(found["EndpointArn"]).get(SCALING_TAG)
        if not wanted:
            return
        low, high = (int(part) for part in wanted.split("-"))
        scaling = self.provider.client("application-autoscaling")
        for variant in found.get("ProductionVariants", []):
            resource = f"endpoint/{name}/variant/{variant['VariantName']}"
            scaling.register_scalable_target(
                ServiceNamespace="sagemaker",
                ResourceId=resource,
                ScalableDimension=SCALABLE_DIMENSION,
                MinCapacity=low,
                MaxCapacity=high,
            )
            scaling.put_scaling_policy(
                PolicyName=f"mlport-{name}-{variant['VariantName']}"[:256],
                ServiceNamespace="sagemaker",
                ResourceId=resource,
                ScalableDimension=SCALABLE_DIMENSION,
                PolicyType="TargetTrackingScaling",
                TargetTrackingScalingPolicyConfiguration={
                    "TargetValue": DEFAULT_INVOCATIONS_PER_INSTANCE,
                    "PredefinedMetricSpecification": {
                        "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
                    },
                    "ScaleInCooldown": 300,
                    "ScaleOutCooldown": 60,
                },
            )

    def scaling_targets(self, name: str) -> list[dict[str, Any]]:
        """The endpoint's scalable targets in Application Auto Scaling."""
        scaling = self.provider.client("application-autoscaling")
        answer = scaling.describe_scalable_targets(ServiceNamespace="sagemaker")
        prefix = f"endpoint/{name}/variant/"
        return [t for t in answer.get("ScalableTargets", []) if t["ResourceId"].startswith(prefix)]

    def _tags(self, arn: str) -> dict[str, str]:
        """The tags of the resource at ``arn``."""
        return {t["Key"]: t["Value"] for t in self._sm.list_tags(ResourceArn=arn).get("Tags", [])}

    # --- read ------------------------------------------------------------------------------------

    def _get(self, name: str) -> Endpoint:
        found = self._sm.describe_endpoint(EndpointName=name)
        return self._view(found, self._tags(found["EndpointArn"]))

    def _view(self, found: dict[str, Any], tags: dict[str, str]) -> Endpoint:
        variants = found.get("ProductionVariants") or []
        if not variants and found.get("EndpointConfigName"):
            config = self._sm.describe_endpoint_config(
                EndpointConfigName=found["EndpointConfigName"]
            )
            variants = [
                {**v, "CurrentWeight": v.get("InitialVariantWeight", 1.0)}
                for v in config.get("ProductionVariants", [])
            ]
        weights = {
            version_of(v["VariantName"]): float(v.get("CurrentWeight", v.get("DesiredWeight", 0)))
            for v in variants
        }
        total = sum(weights.values())
        shares = {k: round(w / total * 100, 6) if total else 0.0 for k, w in weights.items()}
        capture = found.get("DataCaptureConfig") or {}
        name = found["EndpointName"]
        created = found.get("CreationTime")
        base = self.provider.config.endpoint_url or (
            f"https://runtime.sagemaker.{self.provider.region}.amazonaws.com"
        )
        status = ENDPOINT_STATES[found.get("EndpointStatus", "")]
        return Endpoint(
            name=name,
            status=status,
            url=f"{base.rstrip('/')}/endpoints/{name}/invocations",
            variants=shares,
            model=tags.get(MODEL_TAG),
            capture_percent=float(capture.get("CurrentSamplingPercentage", 0))
            if capture.get("EnableCapture")
            else 0.0,
            failure_reason=found.get("FailureReason") or None,
            message=found.get("EndpointStatus", ""),
            created_at=created if isinstance(created, datetime) else None,
            provider_id=found.get("EndpointArn", ""),
        )

    def _list(self, page_token: str | None) -> Page[Endpoint]:
        kwargs: dict[str, Any] = {"MaxResults": _PAGE, "SortBy": "CreationTime"}
        if page_token:
            kwargs["NextToken"] = page_token
        answer = self._sm.list_endpoints(**kwargs)
        items = []
        for item in answer.get("Endpoints", []):
            with contextlib.suppress(NotFoundError):
                items.append(self._get(item["EndpointName"]))
        return Page(items, answer.get("NextToken"))

    # --- traffic, predict, logs ------------------------------------------------------------------

    def _set_traffic(self, name: str, split: dict[str, float]) -> Endpoint:
        self._sm.update_endpoint_weights_and_capacities(
            EndpointName=name,
            DesiredWeightsAndCapacities=[
                {"VariantName": variant_name(version), "DesiredWeight": weight}
                for version, weight in sorted(split.items())
            ],
        )
        endpoint = self._bind(self._get(name))
        endpoint.wait(progress=False)
        return endpoint

    def _predict(self, name: str, rows: list[Any], variant: str | None) -> list[Any]:
        kwargs: dict[str, Any] = {
            "EndpointName": name,
            "ContentType": "application/json",
            "Accept": "application/json",
            "Body": json.dumps({"instances": rows}).encode(),
        }
        if variant is not None:
            kwargs["TargetVariant"] = variant_name(str(variant))
        # An unknown endpoint is ValidationError "Endpoint <name> of account ... not found.",
        # which the error table maps to NotFoundError.
        answer = self.provider.client("sagemaker-runtime").invoke_endpoint(**kwargs)
        body = json.loads(answer["Body"].read())
        predictions = body.get("predictions") if isinstance(body, dict) else body
        if not isinstance(predictions, list):
            raise InvalidSpecError(f"endpoint {name!r} answered without predictions: {body!r}")
        return predictions

    def _endpoint_logs(self, name: str) -> list[str]:
        chunk = read_log_streams(
            self.provider.client("logs"), f"/aws/sagemaker/Endpoints/{name}", "", None
        )
        return chunk.lines

    # --- delete ----------------------------------------------------------------------------------

    def _delete(self, name: str) -> None:
        try:
            found = self._sm.describe_endpoint(EndpointName=name)
        except Exception as exc:
            if isinstance(self.provider.translate_error(exc), NotFoundError):
                # Finish an interrupted delete: configs and models left behind go too.
                self._forget_unused(name)
            raise
        self._remove_scaling(name)
        if found.get("EndpointStatus") != "Deleting":
            self._sm.delete_endpoint(EndpointName=name)
        self._await_gone(name)
        self._forget_unused(name)

    def _await_gone(self, name: str) -> None:
        delays = self.provider.poll_policy.delays()
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                self._sm.describe_endpoint(EndpointName=name)
            except Exception as exc:
                if isinstance(self.provider.translate_error(exc), NotFoundError):
                    return
                raise
            time.sleep(next(delays))

    def _remove_scaling(self, name: str) -> None:
        scaling = self.provider.client("application-autoscaling")
        for target in self.scaling_targets(name):
            policies = scaling.describe_scaling_policies(
                ServiceNamespace="sagemaker", ResourceId=target["ResourceId"]
            ).get("ScalingPolicies", [])
            for policy in policies:
                scaling.delete_scaling_policy(
                    PolicyName=policy["PolicyName"],
                    ServiceNamespace="sagemaker",
                    ResourceId=target["ResourceId"],
                    ScalableDimension=SCALABLE_DIMENSION,
                )
            scaling.deregister_scalable_target(
                ServiceNamespace="sagemaker",
                ResourceId=target["ResourceId"],
                ScalableDimension=SCALABLE_DIMENSION,
            )

    def _forget_unused(self, name: str) -> None:
        """Delete the endpoint's configs and models that its current config does not use."""
        in_use: set[str] = set()
        current: str | None = None
        try:
            found = self._sm.describe_endpoint(EndpointName=name)
            current = found.get("EndpointConfigName")
            if found.get("EndpointStatus") in {"Updating", "Creating", "SystemUpdating"}:
                return  # an update in flight may still need its config
        except Exception as exc:
            if not isinstance(self.provider.translate_error(exc), NotFoundError):
                raise
        if current:
            config = self._sm.describe_endpoint_config(EndpointConfigName=current)
            in_use = {v["ModelName"] for v in config.get("ProductionVariants", [])}
        prefix = name[:40]
        for config_name, arn in self._named("endpoint_configs", prefix):
            if config_name != current and self._owned(arn, name):
                with contextlib.suppress(NotFoundError):
                    self._call(
                        "delete", self._sm.delete_endpoint_config, EndpointConfigName=config_name
                    )
        for model_name, arn in self._named("models", prefix):
            if model_name not in in_use and self._owned(arn, name):
                with contextlib.suppress(NotFoundError):
                    self._call("delete", self._sm.delete_model, ModelName=model_name)

    def _named(self, kind: str, prefix: str) -> list[tuple[str, str]]:
        method = getattr(self._sm, f"list_{kind}")
        key = {"endpoint_configs": "EndpointConfigs", "models": "Models"}[kind]
        field = {"endpoint_configs": "EndpointConfig", "models": "Model"}[kind]
        found: list[tuple[str, str]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"NameContains": prefix, "MaxResults": 100}
            if token:
                kwargs["NextToken"] = token
            answer = method(**kwargs)
            found += [(item[f"{field}Name"], item[f"{field}Arn"]) for item in answer.get(key, [])]
            token = answer.get("NextToken")
            if not token:
                return found

    def _owned(self, arn: str, endpoint: str) -> bool:
        return self._tags(arn).get(ENDPOINT_TAG) == endpoint

    # --- batch -----------------------------------------------------------------------------------

    def _batch_predict(self, request: BatchRequest) -> Job:
        name = request.name
        root = self.provider.s3_uri("batch", name)
        source = request.input
        if not source.startswith("s3://"):
            source = self._stage_input(Path(source), f"{root}/input")
        output = request.output if request.output.startswith("s3://") else f"{root}/output"
        model = self._create_model(name, request.version)
        body: dict[str, Any] = {
            "TransformJobName": name,
            "ModelName": model,
            "BatchStrategy": "MultiRecord",
            "MaxPayloadInMB": 6,
            "TransformInput": {
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": source}},
                "ContentType": "text/csv",
                "SplitType": "Line",
            },
            "TransformOutput": {
                "S3OutputPath": output,
                "AssembleWith": "Line",
                "Accept": "text/csv",
            },
            "TransformResources": {
                "InstanceType": request.compute.instance_type or DEFAULT_INSTANCE,
                "InstanceCount": request.compute.count,
            },
            "Tags": [{"Key": ENDPOINT_TAG, "Value": name}],
        }
        if not request.output.startswith("s3://"):
            body["Tags"].append({"Key": LOCAL_OUTPUT_TAG, "Value": request.output[-256:]})
        body = merge_options(body, request.options.provider_options.get("sagemaker", {}))
        try:
            self._sm.create_transform_job(**body)
        except BaseException:
            with contextlib.suppress(Exception):
                self._sm.delete_model(ModelName=model)
            raise
        return self._get_batch(name)

    def _stage_input(self, path: Path, prefix: str) -> str:
        """Upload a local batch input as CSV files (a header line where the input names its
        columns, then one row per line), which SageMaker splits by line."""
        import csv
        import tempfile

        from mlport.serving import batch as portable

        with tempfile.TemporaryDirectory(prefix="mlport-batch-") as scratch:
            for item in portable.input_files(path):
                columns, rows = portable.read_table(item)
                target = Path(scratch) / f"{item.stem}.csv"
                with target.open("w", encoding="utf-8", newline="") as handle:
                    writer = csv.writer(handle)
                    if columns:
                        writer.writerow(columns)
                    writer.writerows(rows)
                self.provider.storage.upload(target, f"{prefix}/{target.name}")
        return prefix

    def _get_batch(self, name: str) -> Job:
        found = self._sm.describe_transform_job(TransformJobName=name)
        output = found.get("TransformOutput", {}).get("S3OutputPath")
        created = found.get("CreationTime")
        return Job(
            name=name,
            kind="batch",
            status=JOB_STATES[found.get("TransformJobStatus", "")],
            provider_id=found.get("TransformJobArn", ""),
            failure_reason=found.get("FailureReason") or None,
            output_uri=output,
            message=found.get("TransformJobStatus", ""),
            created_at=created if isinstance(created, datetime) else None,
            started_at=found.get("TransformStartTime"),
            ended_at=found.get("TransformEndTime"),
        )

    def _list_batch(self, page_token: str | None) -> Page[Job]:
        kwargs: dict[str, Any] = {
            "MaxResults": _PAGE,
            "SortBy": "CreationTime",
            "SortOrder": "Descending",
        }
        if page_token:
            kwargs["NextToken"] = page_token
        answer = self._sm.list_transform_jobs(**kwargs)
        return Page(
            [
                Job(
                    name=item["TransformJobName"],
                    kind="batch",
                    status=JOB_STATES[item.get("TransformJobStatus", "")],
                    provider_id=item.get("TransformJobArn", ""),
                )
                for item in answer.get("TransformJobSummaries", [])
            ],
            answer.get("NextToken"),
        )

    def _read_batch_logs(self, name: str, cursor: str | None) -> LogChunk:
        return read_log_streams(
            self.provider.client("logs"), "/aws/sagemaker/TransformJobs", f"{name}/", cursor
        )

    def _cancel_batch(self, name: str) -> None:
        self._sm.stop_transform_job(TransformJobName=name)
