"""SageMaker APIs moto lacks or gets wrong that need no process.

Duplicate names on create (moto silently overwrites), DeleteModelPackage,
DeleteModelPackageGroup, CreatePresignedNotebookInstanceUrl, UpdateNotebookInstance,
ListNotebookInstanceLifecycleConfigs.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mlport_sagemaker.emulator._aws import AwsError, Call, Response
from mlport_sagemaker.emulator._training import instance_types, now

if TYPE_CHECKING:
    from mlport_sagemaker.emulator.server import SageMakerEmulator

__all__ = ["Registry", "Tags"]


def arn(region: str, kind: str, name: str) -> str:
    """A SageMaker ARN of the emulator's account."""
    from mlport_sagemaker.emulator.server import ACCOUNT_ID

    return f"arn:aws:sagemaker:{region}:{ACCOUNT_ID}:{kind}/{name}"


class Registry:
    """Models, model packages and groups, notebook extras."""

    def __init__(self, emulator: SageMakerEmulator) -> None:
        self._emu = emulator
        self._lock = threading.Lock()
        emulator.register(
            "sagemaker",
            {
                "CreateModel": self.create_model,
                "CreateModelPackageGroup": self.create_group,
                "CreateDataQualityJobDefinition": self.create_data_quality,
                "DeleteModelPackage": self.delete_package,
                "DeleteModelPackageGroup": self.delete_group,
                "CreatePresignedNotebookInstanceUrl": self.presigned_url,
                "UpdateNotebookInstance": self.update_notebook,
                "ListNotebookInstanceLifecycleConfigs": self.list_lifecycle_configs,
            },
        )

    def shutdown(self) -> None:
        """Nothing runs."""

    def clear(self) -> None:
        """No state of its own."""

    def create_model(self, call: Call) -> Response:
        """CreateModel: an existing name is refused, as SageMaker does."""
        name = call.params().get("ModelName", "")
        if name in self._emu.backend(call.region)._models:
            raise AwsError(
                "ValidationException",
                f'Cannot create already existing model "{arn(call.region, "model", name)}".',
            )
        return self._emu.forward(call)

    def create_group(self, call: Call) -> Response:
        """CreateModelPackageGroup: an existing name is refused."""
        name = call.params().get("ModelPackageGroupName", "")
        if name in self._emu.backend(call.region).model_package_groups:
            raise AwsError(
                "ValidationException",
                "Model Package Group already exists: "
                f"{arn(call.region, 'model-package-group', name)}",
            )
        return self._emu.forward(call)

    def create_data_quality(self, call: Call) -> Response:
        """CreateDataQualityJobDefinition: an existing name is refused (ResourceInUse)."""
        name = call.params().get("JobDefinitionName", "")
        if name in self._emu.backend(call.region).data_quality_job_definitions:
            raise AwsError(
                "ResourceInUse",
                f"Job definition {arn(call.region, 'data-quality-job-definition', name)} "
                "already exists.",
            )
        return self._emu.forward(call)

    def delete_package(self, call: Call) -> Response:
        """DeleteModelPackage: by name or ARN (a versioned package by its ARN)."""
        wanted = call.params().get("ModelPackageName", "")
        backend = self._emu.backend(call.region)
        with self._emu.lock:
            key = backend.model_package_name_mapping.get(wanted, wanted)
            package = backend.model_packages.get(key)
            if package is None:
                raise AwsError("ValidationException", f"Model package {wanted} not found")
            del backend.model_packages[key]
            for name, target in list(backend.model_package_name_mapping.items()):
                if target == key:
                    del backend.model_package_name_mapping[name]
            group = getattr(package, "model_package_group_name", None)
            if group:
                remaining = [
                    p
                    for p in backend.model_packages.values()
                    if p.model_package_group_name == group
                ]
                if remaining:
                    latest = max(remaining, key=lambda p: p.model_package_version or 0)
                    backend.model_package_name_mapping[group] = latest.arn
        return Response.json({})

    def delete_group(self, call: Call) -> Response:
        """DeleteModelPackageGroup: only an empty group (ConflictException otherwise)."""
        name = call.params().get("ModelPackageGroupName", "")
        backend = self._emu.backend(call.region)
        with self._emu.lock:
            if name not in backend.model_package_groups:
                raise AwsError(
                    "ValidationException",
                    f"Model Package Group {arn(call.region, 'model-package-group', name)} does "
                    "not exist.",
                )
            if any(p.model_package_group_name == name for p in backend.model_packages.values()):
                raise AwsError(
                    "ConflictException",
                    f"Model Package Group {name} cannot be deleted because it contains model "
                    "packages; delete them first.",
                )
            del backend.model_package_groups[name]
        return Response.json({})

    def _notebook(self, region: str, name: str) -> Any:
        notebook = self._emu.backend(region).notebook_instances.get(name)
        if notebook is None:
            raise AwsError("ValidationException", "RecordNotFound")
        return notebook

    def presigned_url(self, call: Call) -> Response:
        """CreatePresignedNotebookInstanceUrl: a URL with a one-time token."""
        params = call.params()
        name = params.get("NotebookInstanceName", "")
        seconds = int(params.get("SessionExpirationDurationInSeconds", 43200))
        if not 1800 <= seconds <= 43200:
            raise AwsError(
                "ValidationException",
                f"1 validation error detected: Value '{seconds}' at "
                "'sessionExpirationDurationInSeconds' failed to satisfy constraint: Member must "
                "have value between 1800 and 43200",
            )
        with self._emu.lock:
            notebook = self._notebook(call.region, name)
            url = f"https://{notebook.url}?authToken={secrets.token_urlsafe(32)}"
        return Response.json({"AuthorizedUrl": url})

    def update_notebook(self, call: Call) -> Response:
        """UpdateNotebookInstance: only a stopped instance; type, role, volume, lifecycle."""
        params = call.params()
        name = params.get("NotebookInstanceName", "")
        backend = self._emu.backend(call.region)
        with self._emu.lock:
            notebook = self._notebook(call.region, name)
            if notebook.status != "Stopped":
                raise AwsError(
                    "ValidationException",
                    f"Status ({notebook.status}) not in ([Stopped]). Unable to transition to "
                    f"(Updating) for Notebook Instance ({notebook.arn}).",
                )
            kind = params.get("InstanceType")
            if kind is not None:
                allowed = instance_types("InstanceType")
                if kind not in allowed:
                    from mlport_sagemaker.emulator._training import enum_error

                    raise enum_error(kind, "instanceType", allowed)
                notebook.instance_type = kind
            lifecycle = params.get("LifecycleConfigName")
            if lifecycle is not None:
                if lifecycle not in backend.notebook_instance_lifecycle_configurations:
                    raise AwsError(
                        "ValidationException",
                        f"Unable to describe Notebook Instance Lifecycle Config "
                        f"'{arn(call.region, 'notebook-instance-lifecycle-config', lifecycle)}'.",
                    )
                notebook.lifecycle_config_name = lifecycle
            if params.get("DisassociateLifecycleConfig"):
                notebook.lifecycle_config_name = None
            if params.get("RoleArn"):
                notebook.role_arn = params["RoleArn"]
            if params.get("VolumeSizeInGB"):
                notebook.volume_size_in_gb = int(params["VolumeSizeInGB"])
            notebook.last_modified_time = now()
        return Response.json({})

    def list_lifecycle_configs(self, call: Call) -> Response:
        """ListNotebookInstanceLifecycleConfigs (NameContains)."""
        params = call.params()
        contains = params.get("NameContains")
        backend = self._emu.backend(call.region)
        with self._emu.lock:
            configs = [
                {
                    "NotebookInstanceLifecycleConfigName": c.notebook_instance_lifecycle_config_name,
                    "NotebookInstanceLifecycleConfigArn": c.arn,
                    "CreationTime": c.creation_time,
                    "LastModifiedTime": c.last_modified_time,
                }
                for c in backend.notebook_instance_lifecycle_configurations.values()
                if not contains or contains in c.notebook_instance_lifecycle_config_name
            ]
        return Response.json({"NotebookInstanceLifecycleConfigs": configs})


class Tags:
    """AddTags / ListTags / DeleteTags on every resource the emulator keeps.

    moto's own answer fails (HTTP 500) for notebook instances, model packages, resources it
    does not know and the emulator's monitoring schedules.
    """

    def __init__(self, emulator: SageMakerEmulator, extra: Callable[[str, str, str], Any]) -> None:
        self._emu = emulator
        self._extra = extra
        emulator.register(
            "sagemaker",
            {"AddTags": self.add, "ListTags": self.list, "DeleteTags": self.delete},
        )

    def shutdown(self) -> None:
        """Nothing runs."""

    def clear(self) -> None:
        """No state of its own."""

    def _resource(self, region: str, resource_arn: str) -> Any:
        parts = resource_arn.split(":", 5)
        if len(parts) != 6 or parts[2] != "sagemaker" or "/" not in parts[5]:
            raise AwsError("ValidationException", f"{resource_arn!r} is not a SageMaker ARN")
        kind, name = parts[5].split("/", 1)
        found = self._extra(region, kind, name)
        if found is None:
            backend = self._emu.backend(parts[3] or region)
            tables: dict[str, dict[str, Any]] = {
                "model": backend._models,
                "endpoint": backend.endpoints,
                "endpoint-config": backend.endpoint_configs,
                "training-job": backend.training_jobs,
                "transform-job": backend.transform_jobs,
                "notebook-instance": backend.notebook_instances,
                "model-package-group": backend.model_package_groups,
                "data-quality-job-definition": backend.data_quality_job_definitions,
                "model-quality-job-definition": backend.model_quality_job_definitions,
                "processing-job": backend.processing_jobs,
            }
            if kind == "model-package":
                found = backend.model_packages.get(resource_arn)
            else:
                found = tables.get(kind, {}).get(name)
        if found is None or not hasattr(found, "tags"):
            raise AwsError("ValidationException", f"Could not find resource {resource_arn}.")
        if found.tags is None:
            found.tags = []
        return found

    def add(self, call: Call) -> Response:
        """AddTags: a key given again replaces its value."""
        params = call.params()
        new = list(params.get("Tags") or [])
        with self._emu.lock:
            resource = self._resource(call.region, params.get("ResourceArn", ""))
            keys = {tag["Key"] for tag in new}
            resource.tags = [t for t in resource.tags if t["Key"] not in keys] + new
            tags = list(resource.tags)
        return Response.json({"Tags": tags})

    def list(self, call: Call) -> Response:
        """ListTags, paged with MaxResults / NextToken."""
        params = call.params()
        with self._emu.lock:
            tags = list(self._resource(call.region, params.get("ResourceArn", "")).tags)
        start = int(params.get("NextToken") or 0)
        size = int(params.get("MaxResults") or 50)
        answer: dict[str, Any] = {"Tags": tags[start : start + size]}
        if start + size < len(tags):
            answer["NextToken"] = str(start + size)
        return Response.json(answer)

    def delete(self, call: Call) -> Response:
        """DeleteTags."""
        params = call.params()
        keys = set(params.get("TagKeys") or [])
        with self._emu.lock:
            resource = self._resource(call.region, params.get("ResourceArn", ""))
            resource.tags = [t for t in resource.tags if t["Key"] not in keys]
        return Response.json({})
