"""``google.cloud.aiplatform.v1.ModelService``: models, their versions and aliases.

Versioning follows https://cloud.google.com/vertex-ai/docs/model-registry/versioning and the
``Model`` reference (https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.models):
``UploadModel`` with ``parent_model`` adds version ``n+1``; the first version holds the
``default`` alias; a name without ``@`` means the default version, ``model@3`` a version id and
``model@prod`` an alias; an alias is on one version at a time; ``default`` can be moved but not
removed, and the default version cannot be deleted on its own.
"""

from __future__ import annotations

import re
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
from google.cloud.aiplatform_v1.types import model as model_types
from google.cloud.aiplatform_v1.types import model_service as ms
from google.cloud.aiplatform_v1.types import operation as op_types
from google.longrunning import operations_pb2  # type: ignore[import-untyped, unused-ignore]

from mlport_vertex.emulator._rpc import ApiError, RpcRouter, invalid, not_found, proto_plus
from mlport_vertex.emulator.serving import prebuilt_files_problem
from mlport_vertex.emulator.state import EmulatorState, PageToken, labels_ok, now
from mlport_vertex.emulator.storage import split_gs

__all__ = ["ModelService", "split_version"]

SERVICE = "google.cloud.aiplatform.v1.ModelService"
KIND = "models"  # table of {model name: {version id: Model}}

_ALIAS_RE = re.compile(r"^[a-z][a-zA-Z0-9-]{0,126}[a-z0-9-]$")
_MODEL_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def split_version(name: str) -> tuple[str, str | None]:
    """``models/1@2`` -> ``("models/1", "2")``; no ``@`` -> ``(name, None)``."""
    base, at, version = name.partition("@")
    return base, (version if at else None)


class ModelService:
    """UploadModel, GetModel, ListModels, ListModelVersions, UpdateModel, DeleteModel,
    DeleteModelVersion, MergeVersionAliases."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def handler(self, router: RpcRouter) -> grpc.GenericRpcHandler:
        """The gRPC handler of this service."""
        lro = operations_pb2.Operation
        return router.service(
            SERVICE,
            {
                "UploadModel": proto_plus(ms.UploadModelRequest, lro, self.upload),
                "GetModel": proto_plus(ms.GetModelRequest, model_types.Model, self.get),
                "ListModels": proto_plus(ms.ListModelsRequest, ms.ListModelsResponse, self.list_),
                "ListModelVersions": proto_plus(
                    ms.ListModelVersionsRequest, ms.ListModelVersionsResponse, self.list_versions
                ),
                "UpdateModel": proto_plus(ms.UpdateModelRequest, model_types.Model, self.update),
                "DeleteModel": proto_plus(ms.DeleteModelRequest, lro, self.delete),
                "DeleteModelVersion": proto_plus(
                    ms.DeleteModelVersionRequest, lro, self.delete_version
                ),
                "MergeVersionAliases": proto_plus(
                    ms.MergeVersionAliasesRequest, model_types.Model, self.merge_aliases
                ),
            },
        )

    # Lookup --------------------------------------------------------------------------------

    def versions(self, base: str) -> dict[str, model_types.Model]:
        """Every version of the model ``base`` (normalised name), by version id.

        Raises:
            ApiError: NOT_FOUND.
        """
        with self.state.lock:
            found = self.state.table(KIND).get(base)
        if not found:
            raise not_found(base)
        return dict(found)

    def resolve(self, name: str, field: str = "name") -> model_types.Model:
        """The version ``name`` refers to (``model``, ``model@id``, ``model@alias``).

        Raises:
            ApiError: INVALID_ARGUMENT for a malformed name, NOT_FOUND.
        """
        base, version = split_version(name)
        base = self.state.resource_name(base, "models", field)
        versions = self.versions(base)
        wanted = version or "default"
        for model in versions.values():
            if model.version_id == wanted or wanted in model.version_aliases:
                return model
        raise not_found(name)

    def _copy(self, model: model_types.Model) -> model_types.Model:
        copy: model_types.Model = model_types.Model.deserialize(model_types.Model.serialize(model))
        return copy

    def _deployed(self, model: model_types.Model) -> list[str]:
        """Endpoints that serve this version."""
        endpoints = []
        with self.state.lock:
            for endpoint in self.state.table("endpoints").values():
                for deployed in endpoint.deployed_models:
                    if deployed.model == model.name and (
                        deployed.model_version_id == model.version_id
                    ):
                        endpoints.append(endpoint.name)
        return endpoints

    # Methods -------------------------------------------------------------------------------

    def upload(self, request: ms.UploadModelRequest) -> operations_pb2.Operation:
        """Register a model, or a new version of ``parent_model``; an LRO."""
        parent = self.state.parent(request.parent)
        spec = request.model
        if not spec.display_name:
            raise invalid("model.display_name", "The display name of the model is required.")
        if not spec.container_spec.image_uri:
            raise invalid(
                "model.container_spec.image_uri",
                "container_spec.image_uri is required for a custom-trained model.",
            )
        if spec.artifact_uri and not spec.artifact_uri.startswith("gs://"):
            raise invalid(
                "model.artifact_uri",
                f"artifact_uri must be a gs:// URI, got {spec.artifact_uri!r}.",
            )
        labels_ok(spec.labels.items(), "model.labels")
        for alias in spec.version_aliases:
            self._check_alias(alias, "model.version_aliases")
        if spec.artifact_uri and not self.state.gcs.exists(spec.artifact_uri):
            raise invalid("model.artifact_uri", f"No files were found at {spec.artifact_uri}.")
        if spec.artifact_uri:
            prefix = spec.artifact_uri.rstrip("/") + "/"
            names = {
                blob.name.rsplit("/", 1)[-1]
                for blob in self.state.gcs.blobs(prefix)
                if "/" not in blob.name[len(split_gs(prefix)[1]) :]
            }
            problem = prebuilt_files_problem(
                names, spec.artifact_uri, spec.container_spec.image_uri
            )
            if problem is not None:
                # Vertex AI accepts the call and fails its operation.
                return self.state.failed_operation(
                    f"{parent}/models/{request.model_id or self.state.new_id()}",
                    ApiError(grpc.StatusCode.INVALID_ARGUMENT, problem),
                )

        with self.state.lock:
            table = self.state.table(KIND)
            if request.parent_model:
                base = self.state.resource_name(request.parent_model, "models", "parent_model")
                if base not in table:
                    raise not_found(base)
                versions = table[base]
                version_id = str(max(int(v) for v in versions) + 1)
            else:
                model_id = request.model_id or self.state.new_id()
                if request.model_id and not _MODEL_ID_RE.match(request.model_id):
                    raise invalid(
                        "model_id",
                        "model_id must be 1-63 lowercase letters, digits, '_' or '-', starting "
                        "with a letter or a digit.",
                    )
                base = f"{parent}/models/{model_id}"
                if base in table:
                    raise ApiError(grpc.StatusCode.ALREADY_EXISTS, f"Model {base} already exists.")
                versions = {}
                version_id = "1"
            created = now()
            model = model_types.Model.deserialize(model_types.Model.serialize(spec))
            model.name = base
            model.version_id = version_id
            model.create_time = (
                created if not versions else next(iter(versions.values())).create_time
            )
            model.update_time = created
            model.version_create_time = created
            model.version_update_time = created
            model.etag = f"v{version_id}-{created.timestamp()}"
            aliases = [a for a in spec.version_aliases]
            if not versions and "default" not in aliases:
                aliases.insert(0, "default")
            for other in versions.values():
                kept = [a for a in other.version_aliases if a not in aliases]
                if kept != list(other.version_aliases):
                    other.version_aliases = kept
                    other.version_update_time = created
            model.version_aliases = aliases
            model.supported_deployment_resources_types = [
                model_types.Model.DeploymentResourcesType.DEDICATED_RESOURCES
            ]
            versions[version_id] = model
            table[base] = versions

        def work() -> ms.UploadModelResponse:
            return ms.UploadModelResponse(model=base, model_version_id=version_id)

        return self.state.operation(
            base,
            work,
            metadata=ms.UploadModelOperationMetadata(generic_metadata=_generic()),
        )

    def get(self, request: ms.GetModelRequest) -> model_types.Model:
        """A version (the default one when the name has no ``@``)."""
        with self.state.lock:
            return self._copy(self.resolve(request.name))

    def list_(self, request: ms.ListModelsRequest) -> ms.ListModelsResponse:
        """The default version of every model in the location."""
        parent = self.state.parent(request.parent)
        with self.state.lock:
            models = [
                self._copy(m)
                for base, versions in self.state.table(KIND).items()
                if base.startswith(parent + "/")
                for m in versions.values()
                if "default" in m.version_aliases
            ]
        models = _filter(models, request.filter)
        page, token = PageToken.page(models, request.page_size, request.page_token)
        return ms.ListModelsResponse(models=page, next_page_token=token)

    def list_versions(self, request: ms.ListModelVersionsRequest) -> ms.ListModelVersionsResponse:
        """Every version of a model, oldest first."""
        base = self.state.resource_name(split_version(request.name)[0], "models")
        with self.state.lock:
            models = [
                self._copy(m)
                for m in sorted(self.versions(base).values(), key=lambda m: int(m.version_id))
            ]
        models = _filter(models, request.filter)
        page, token = PageToken.page(models, request.page_size, request.page_token)
        return ms.ListModelVersionsResponse(models=page, next_page_token=token)

    def update(self, request: ms.UpdateModelRequest) -> model_types.Model:
        """Change the fields named in ``update_mask``."""
        paths = list(request.update_mask.paths)
        if not paths:
            raise invalid("update_mask", "update_mask is required.")
        allowed = {
            "display_name",
            "description",
            "labels",
            "version_description",
            "version_aliases",
        }
        for path in paths:
            if path not in allowed:
                raise invalid("update_mask", f'Field "{path}" cannot be updated.')
        with self.state.lock:
            model = self.resolve(request.model.name, "model.name")
            changed = now()
            versions = self.versions(model.name)
            for path in paths:
                value = getattr(request.model, path)
                if path == "display_name":
                    if not value:
                        raise invalid("model.display_name", "The display name cannot be empty.")
                    for version in versions.values():
                        version.display_name = value
                        version.update_time = changed
                elif path == "labels":
                    labels_ok(value.items(), "model.labels")
                    model.labels = dict(value)
                elif path == "version_aliases":
                    self._set_aliases(model, list(value), versions)
                else:
                    setattr(model, path, value)
            model.update_time = changed
            model.version_update_time = changed
            return self._copy(model)

    def delete(self, request: ms.DeleteModelRequest) -> operations_pb2.Operation:
        """Delete a model with all its versions; refused while a version is deployed."""
        base = self.state.resource_name(request.name, "models")
        with self.state.lock:
            versions = self.versions(base)
            for model in versions.values():
                endpoints = self._deployed(model)
                if endpoints:
                    raise ApiError(
                        grpc.StatusCode.FAILED_PRECONDITION,
                        f"Model {base} (version {model.version_id}) is deployed to "
                        f"{', '.join(endpoints)}; undeploy it first.",
                    )
            del self.state.table(KIND)[base]
        return self.state.operation(
            base,
            lambda: None,
            metadata=op_types.DeleteOperationMetadata(generic_metadata=_generic()),
        )

    def delete_version(self, request: ms.DeleteModelVersionRequest) -> operations_pb2.Operation:
        """Delete one version; the default version and deployed versions are refused."""
        with self.state.lock:
            if split_version(request.name)[1] is None:
                raise invalid("name", "The name must have a version: model@version.")
            model = self.resolve(request.name)
            if "default" in model.version_aliases:
                raise ApiError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Version {model.version_id} is the default version of {model.name}; move "
                    "the default alias to another version first, or delete the model.",
                )
            endpoints = self._deployed(model)
            if endpoints:
                raise ApiError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Version {model.version_id} of {model.name} is deployed to "
                    f"{', '.join(endpoints)}; undeploy it first.",
                )
            del self.state.table(KIND)[model.name][model.version_id]
        return self.state.operation(
            f"{model.name}@{model.version_id}",
            lambda: None,
            metadata=op_types.DeleteOperationMetadata(generic_metadata=_generic()),
        )

    def merge_aliases(self, request: ms.MergeVersionAliasesRequest) -> model_types.Model:
        """Add aliases (moving them from other versions) and remove ``-alias`` ones."""
        if not request.version_aliases:
            raise invalid("version_aliases", "version_aliases must not be empty.")
        with self.state.lock:
            if split_version(request.name)[1] is None:
                raise invalid("name", "The name must have a version: model@version.")
            model = self.resolve(request.name)
            versions = self.versions(model.name)
            aliases = list(model.version_aliases)
            for entry in request.version_aliases:
                removing = entry.startswith("-")
                alias = entry[1:] if removing else entry
                self._check_alias(alias, "version_aliases")
                if removing:
                    if alias == "default":
                        raise invalid(
                            "version_aliases",
                            "The default alias cannot be removed; add it to another version.",
                        )
                    if alias in aliases:
                        aliases.remove(alias)
                elif alias not in aliases:
                    aliases.append(alias)
            self._set_aliases(model, aliases, versions)
            return self._copy(model)

    # Helpers -------------------------------------------------------------------------------

    def _check_alias(self, alias: str, field: str) -> None:
        if not _ALIAS_RE.match(alias) or alias.isdigit():
            raise invalid(
                field,
                f'Alias "{alias}" must match [a-z][a-zA-Z0-9-]{{0,126}}[a-z0-9-] and must not '
                "be a version id.",
            )

    def _set_aliases(
        self, model: model_types.Model, aliases: list[str], versions: dict[str, Any]
    ) -> None:
        if "default" in model.version_aliases and "default" not in aliases:
            raise invalid(
                "version_aliases",
                "The default alias cannot be removed; add it to another version.",
            )
        changed = now()
        for other in versions.values():
            if other.version_id == model.version_id:
                continue
            kept = [a for a in other.version_aliases if a not in aliases]
            if kept != list(other.version_aliases):
                other.version_aliases = kept
                other.version_update_time = changed
        model.version_aliases = aliases
        model.version_update_time = changed


def _generic() -> op_types.GenericOperationMetadata:
    stamp = now()
    return op_types.GenericOperationMetadata(create_time=stamp, update_time=stamp)


def _filter(models: list[model_types.Model], expression: str) -> list[model_types.Model]:
    """The filters the SDK sends: ``display_name="x"``, ``labels.k="v"`` joined by AND."""
    if not expression.strip():
        return models
    result = models
    for term in re.split(r"\s+AND\s+", expression.strip()):
        match = re.fullmatch(r'\s*([\w.]+)\s*=\s*"?([^"]*)"?\s*', term)
        if not match:
            raise invalid("filter", f"Unsupported filter expression: {term!r}.")
        key, value = match.groups()
        if key in ("display_name", "displayName"):
            result = [m for m in result if m.display_name == value]
        elif key.startswith("labels."):
            label = key.split(".", 1)[1]
            result = [m for m in result if m.labels.get(label) == value]
        else:
            raise invalid("filter", f"Unsupported filter field: {key!r}.")
    return result
