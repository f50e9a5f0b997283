"""The model registry on SageMaker: a model package group per model, a model package per version.

A version's model package is stored as ``model.tar.gz`` in S3 (what SageMaker hosting reads) and
its InferenceSpecification names the mlport serving image, so a version deploys as it is and
shows up in SageMaker Studio's model registry. What mlport records about a version (request id,
package sha256, framework, metrics, lineage, stage, baseline) is in its
CustomerMetadataProperties; values too long for SageMaker's 256 characters go to a JSON document
beside the model (``details.json``). The metrics are also ModelMetrics statistics.

Stages: ``production`` is ModelApprovalStatus Approved, ``archived`` Rejected, any other stage
PendingManualApproval; the stage itself is the property ``mlport.stage``. Which version holds an
alias is kept as a tag of the group (``mlport:alias:<alias>`` -> version), so resolving one is a
single call.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlport import package
from mlport.errors import AlreadyExistsError, ConflictError, InvalidSpecError, NotFoundError
from mlport.handles import ModelVersion
from mlport.runtime import MANIFEST_NAME
from mlport.services import Page, RegisterRequest, RegistryService

if TYPE_CHECKING:
    from mlport_sagemaker.provider import SageMakerProvider

__all__ = ["SageMakerRegistry"]

PROP = "mlport."
P_REQUEST = "mlport.request_id"
P_SHA = "mlport.package_sha256"
P_FRAMEWORK = "mlport.framework"
P_STAGE = "mlport.stage"
P_METRICS = "mlport.metrics"
P_BASELINE = "mlport.baseline_uri"
P_DETAILS = "mlport.details_uri"
P_LINEAGE = "mlport.lineage."
ALIAS_TAG = "mlport:alias:"
APPROVAL = {"production": "Approved", "archived": "Rejected"}
STAGE_ORDER = ("production", "staging", "archived")
_MAX_VALUE = 256
_MAX_PROPERTIES = 50
_RECENT = 20


def _loads(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


class SageMakerRegistry(RegistryService):
    """Model package groups and versioned model packages."""

    provider: SageMakerProvider

    @property
    def _sm(self) -> Any:
        return self.provider.sagemaker

    def _arn(self, name: str, version: str) -> str:
        base = f"arn:aws:sagemaker:{self.provider.region}:{self.provider.account}"
        return f"{base}:model-package/{name.lower()}/{version}"

    # --- register --------------------------------------------------------------------------------

    def _register(self, request: RegisterRequest) -> ModelVersion:
        folder = self.provider.s3_uri("models", request.name, request.request_id)
        with tempfile.TemporaryDirectory(prefix="mlport-register-") as scratch:
            staged = Path(scratch) / "model"
            self._stage(request, staged)
            if not (staged / MANIFEST_NAME).is_file() or (
                request.framework and request.framework != package.detect(staged).framework
            ):
                package.build(staged, framework=request.framework)
            manifest = package.verify(staged)
            digest = package.manifest_sha256(staged)
            model_uri = self.provider.storage.put_tarball(staged, f"{folder}/model.tar.gz")
        properties: dict[str, str] = {
            P_REQUEST: request.request_id,
            P_SHA: digest,
            P_STAGE: "none",
        }
        framework = request.framework or manifest.framework
        if framework:
            properties[P_FRAMEWORK] = framework
        if request.baseline_profile is not None:
            properties[P_BASELINE] = self.provider.storage.put_text(
                request.baseline_profile, f"{folder}/baseline-profile.json"
            )
        details: dict[str, Any] = {}
        metrics = json.dumps(request.metrics, sort_keys=True)
        if len(metrics) <= _MAX_VALUE:
            properties[P_METRICS] = metrics
        else:
            details["metrics"] = request.metrics
        for key, value in request.lineage.items():
            text = json.dumps(value, sort_keys=True, default=str)
            name = f"{P_LINEAGE}{key}"[:128]
            if len(text) <= _MAX_VALUE and len(properties) < _MAX_PROPERTIES - 1:
                properties[name] = text
            else:
                details.setdefault("lineage", {})[key] = value
        if details:
            properties[P_DETAILS] = self.provider.storage.put_text(
                json.dumps(details, default=str), f"{folder}/details.json"
            )
        body: dict[str, Any] = {
            "ModelPackageGroupName": request.name,
            "InferenceSpecification": {
                "Containers": [
                    {
                        "Image": self.provider.serving_image,
                        "ModelDataUrl": model_uri,
                        "Framework": (framework or "").upper() or None,
                    }
                ],
                "SupportedContentTypes": ["application/json", "text/csv"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            "ModelApprovalStatus": "PendingManualApproval",
            "CustomerMetadataProperties": properties,
            "ClientToken": request.request_id,
        }
        container = body["InferenceSpecification"]["Containers"][0]
        if container["Framework"] is None:
            del container["Framework"]
        if request.description:
            body["ModelPackageDescription"] = request.description[:1024]
        if request.metrics:
            body["ModelMetrics"] = {
                "ModelQuality": {
                    "Statistics": {
                        "ContentType": "application/json",
                        "S3Uri": self.provider.storage.put_text(
                            json.dumps({"metrics": request.metrics}), f"{folder}/metrics.json"
                        ),
                    }
                }
            }
        if request.tags:
            body["Tags"] = [{"Key": k, "Value": v} for k, v in sorted(request.tags.items())]
        try:
            self._ensure_group(request.name)
            created = self._sm.create_model_package(**body)
        except Exception as exc:
            # Refused: nothing of this version stays in S3. After a retryable error the version
            # may have been made (it is found by its request id), so its files stay.
            if self.provider.failed_for_good(exc):
                with contextlib.suppress(Exception):
                    self.provider.storage.delete(folder)
            raise
        return self._describe(created["ModelPackageArn"])

    def _stage(self, request: RegisterRequest, staged: Path) -> None:
        """Copy the model into ``staged``: from this machine, or from S3 (a tarball or a
        prefix)."""
        if request.local_path is not None:
            shutil.copytree(request.local_path, staged, symlinks=False)
            return
        uri = request.uri or ""
        if not uri.startswith("s3://"):
            raise InvalidSpecError(
                f"cannot register {uri!r} on sagemaker: give a local directory or an s3:// URI; "
                "copy other stores' models first (mlport.storage.copy)",
                resource=request.name,
            )
        if uri.endswith((".tar.gz", ".tgz")):
            self.provider.storage.get_tarball(uri, staged)
        else:
            self.provider.storage.download(uri.rstrip("/"), staged)

    def _ensure_group(self, name: str) -> None:
        try:
            self._sm.describe_model_package_group(ModelPackageGroupName=name)
            return
        except Exception as exc:
            if not isinstance(self.provider.translate_error(exc), NotFoundError):
                raise
        try:
            self._sm.create_model_package_group(
                ModelPackageGroupName=name,
                ModelPackageGroupDescription=f"mlport model {name}",
            )
        except Exception as exc:
            # Another process made it first.
            if not isinstance(self.provider.translate_error(exc), AlreadyExistsError):
                raise

    # --- read ------------------------------------------------------------------------------------

    def _describe(self, arn: str, group: str | None = None) -> ModelVersion:
        """The version at ``arn``; ``group`` is its group's ARN when the caller has it."""
        found = self._sm.describe_model_package(ModelPackageName=arn)
        return self._view(
            found, self._aliases(group or self._group_arn(found["ModelPackageGroupName"]))
        )

    def _aliases(self, group: str) -> dict[str, str]:
        """Alias -> version, from the tags of the group at ARN ``group``."""
        tags = self._sm.list_tags(ResourceArn=group).get("Tags", [])
        return {
            tag["Key"][len(ALIAS_TAG) :]: tag["Value"]
            for tag in tags
            if tag["Key"].startswith(ALIAS_TAG)
        }

    def _group_arn(self, name: str) -> str:
        """The ARN of model ``name``'s group.

        Raises:
            NotFoundError: no such model.
        """
        try:
            found = self._sm.describe_model_package_group(ModelPackageGroupName=name)
        except Exception as exc:
            if isinstance(self.provider.translate_error(exc), NotFoundError):
                raise NotFoundError(
                    f"no model {name!r} in the SageMaker registry", resource=name
                ) from exc
            raise
        return str(found["ModelPackageGroupArn"])

    def _view(self, found: dict[str, Any], aliases: dict[str, str]) -> ModelVersion:
        properties: dict[str, str] = found.get("CustomerMetadataProperties") or {}
        version = str(found.get("ModelPackageVersion", ""))
        mine = sorted(alias for alias, held in aliases.items() if held == version)
        lineage = {
            key[len(P_LINEAGE) :]: _loads(value)
            for key, value in properties.items()
            if key.startswith(P_LINEAGE)
        }
        metrics = _loads(properties.get(P_METRICS)) or {}
        if P_DETAILS in properties:
            with contextlib.suppress(NotFoundError):
                details = json.loads(self.provider.storage.get_text(properties[P_DETAILS]))
                lineage.update(details.get("lineage", {}))
                metrics = details.get("metrics", metrics)
        containers = found.get("InferenceSpecification", {}).get("Containers", [{}])
        created = found.get("CreationTime")
        return ModelVersion(
            name=found["ModelPackageGroupName"],
            version=version,
            uri=containers[0].get("ModelDataUrl", ""),
            stage=next((stage for stage in STAGE_ORDER if stage in mine), None),
            aliases=mine,
            framework=properties.get(P_FRAMEWORK),
            metrics={k: float(v) for k, v in metrics.items()},
            lineage=lineage,
            created_at=created if isinstance(created, datetime) else None,
            package_sha256=properties.get(P_SHA),
            description=found.get("ModelPackageDescription") or None,
            baseline_uri=properties.get(P_BASELINE),
            provider_id=found.get("ModelPackageArn", ""),
        )

    def _packages(
        self, name: str, page_token: str | None, limit: int = 50
    ) -> tuple[list[dict[str, Any]], str | None]:
        kwargs: dict[str, Any] = {
            "ModelPackageGroupName": name,
            "SortBy": "CreationTime",
            "SortOrder": "Descending",
            "MaxResults": limit,
        }
        if page_token:
            kwargs["NextToken"] = page_token
        answer = self._sm.list_model_packages(**kwargs)
        return list(answer.get("ModelPackageSummaryList", [])), answer.get("NextToken")

    def _find_by_request_id(self, name: str, request_id: str) -> ModelVersion | None:
        group = self._group_arn(name)
        summaries, _ = self._packages(name, None, _RECENT)
        for summary in summaries:
            found = self._sm.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
            if (found.get("CustomerMetadataProperties") or {}).get(P_REQUEST) == request_id:
                return self._view(found, self._aliases(group))
        return None

    def _get_version(self, name: str, version: str, group: str | None = None) -> ModelVersion:
        group = group or self._group_arn(name)
        try:
            return self._describe(self._arn(name, version), group)
        except Exception as exc:
            if isinstance(exc, NotFoundError) or isinstance(
                self.provider.translate_error(exc), NotFoundError
            ):
                raise NotFoundError(
                    f"model {name!r} has no version {version}", resource=name
                ) from exc
            raise

    def _latest(self, name: str) -> ModelVersion:
        group = self._group_arn(name)
        summaries, _ = self._packages(name, None, 1)
        if not summaries:
            raise NotFoundError(f"model {name!r} has no versions", resource=name)
        return self._describe(summaries[0]["ModelPackageArn"], group)

    def _resolve_alias(self, name: str, alias: str) -> str:
        found = self._aliases(self._group_arn(name)).get(alias)
        if found is None:
            raise NotFoundError(f"model {name!r} has no version with alias {alias!r}")
        return found

    def _list_models(self, page_token: str | None) -> Page[ModelVersion]:
        kwargs: dict[str, Any] = {"MaxResults": 50, "SortBy": "CreationTime"}
        if page_token:
            kwargs["NextToken"] = page_token
        answer = self._sm.list_model_package_groups(**kwargs)
        versions = []
        for group in answer.get("ModelPackageGroupSummaryList", []):
            with contextlib.suppress(NotFoundError):
                versions.append(self._latest(group["ModelPackageGroupName"]))
        return Page(versions, answer.get("NextToken"))

    def _list_versions(self, name: str, page_token: str | None) -> Page[ModelVersion]:
        group = self._group_arn(name)
        summaries, token = self._packages(name, page_token)
        aliases = self._aliases(group)
        return Page(
            [
                self._view(
                    self._sm.describe_model_package(ModelPackageName=s["ModelPackageArn"]), aliases
                )
                for s in summaries
            ],
            token,
        )

    # --- change ----------------------------------------------------------------------------------

    def _set_stage(self, name: str, version: str, stage: str) -> ModelVersion:
        group = self._group_arn(name)
        target = self._get_version(name, version, group)
        aliases = self._aliases(group)
        if stage == "none":
            held = [alias for alias, v in aliases.items() if v == version]
            if held:
                self._sm.delete_tags(ResourceArn=group, TagKeys=[ALIAS_TAG + a for a in held])
            self._update(target, "none")
            return self._get_version(name, version, group)
        previous = aliases.get(stage)
        self._sm.add_tags(ResourceArn=group, Tags=[{"Key": ALIAS_TAG + stage, "Value": version}])
        if previous and previous != version and stage in STAGE_ORDER:
            with contextlib.suppress(NotFoundError):
                self._update(self._get_version(name, previous, group), "none")
        if stage in STAGE_ORDER:
            self._update(target, stage)
        return self._get_version(name, version, group)

    def _update(self, version: ModelVersion, stage: str) -> None:
        found = self._sm.describe_model_package(ModelPackageName=version.provider_id)
        properties = dict(found.get("CustomerMetadataProperties") or {})
        properties[P_STAGE] = stage
        self._sm.update_model_package(
            ModelPackageArn=version.provider_id,
            ModelApprovalStatus=APPROVAL.get(stage, "PendingManualApproval"),
            ApprovalDescription=f"mlport stage {stage}",
            # Passed whole: UpdateModelPackage replaces the properties it is given.
            CustomerMetadataProperties=properties,
        )

    def _delete_version(self, name: str, version: str) -> None:
        group = self._group_arn(name)
        self._delete_package(self._get_version(name, version, group))
        held = [alias for alias, v in self._aliases(group).items() if v == version]
        if held:
            self._sm.delete_tags(ResourceArn=group, TagKeys=[ALIAS_TAG + a for a in held])

    def _delete_package(self, version: ModelVersion) -> None:
        try:
            self._sm.delete_model_package(ModelPackageName=version.provider_id)
        except Exception as exc:
            if isinstance(self.provider.translate_error(exc), ConflictError):
                raise ConflictError(
                    f"{version.name} version {version.version} is in use ({exc}); delete the "
                    "endpoints serving it first",
                    resource=version.name,
                ) from exc
            raise
        if version.uri.startswith("s3://"):
            self.provider.storage.delete(version.uri.rsplit("/", 1)[0])

    def _delete_model(self, name: str) -> None:
        self._group_arn(name)
        while True:
            summaries, _ = self._packages(name, None)
            if not summaries:
                break
            for summary in summaries:
                found = self._sm.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
                self._delete_package(self._view(found, {}))
        self._sm.delete_model_package_group(ModelPackageGroupName=name)
        self.provider.storage.delete(self.provider.s3_uri("models", name))

    def _download_to(self, name: str, version: str, target: Path) -> None:
        found = self._get_version(name, version)
        self.provider.storage.get_tarball(found.uri, target)
