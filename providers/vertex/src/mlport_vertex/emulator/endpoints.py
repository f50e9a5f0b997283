"""``google.cloud.aiplatform.v1.EndpointService``: endpoints, deployed models, traffic splits.

Rules from https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.endpoints
and its methods (deployModel, undeployModel, mutateDeployedModel, delete):

- ``traffic_split`` maps deployed model ids to percentages that sum to 100, or is empty when the
  endpoint has no deployed model; every key must name a deployed model. In ``DeployModel`` the
  key ``"0"`` means the model being deployed; an empty split leaves the endpoint's split as it is
  (the first model deployed gets 100).
- A deployed model with traffic cannot be undeployed unless the request's ``traffic_split`` takes
  its traffic away (the last one always can).
- An endpoint with deployed models cannot be deleted (FAILED_PRECONDITION).
- A custom-trained model needs ``dedicated_resources`` with a machine type and
  ``min_replica_count`` >= 1, ``max_replica_count`` >= ``min_replica_count``.
"""

from __future__ import annotations

import re
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]
from google.cloud.aiplatform_v1.types import endpoint as endpoint_types
from google.cloud.aiplatform_v1.types import endpoint_service as es
from google.cloud.aiplatform_v1.types import operation as op_types
from google.longrunning import operations_pb2  # type: ignore[import-untyped, unused-ignore]

from mlport_vertex.emulator._rpc import ApiError, RpcRouter, invalid, not_found, proto_plus
from mlport_vertex.emulator.models import ModelService
from mlport_vertex.emulator.serving import ModelRuntime
from mlport_vertex.emulator.state import EmulatorState, PageToken, labels_ok, now
from mlport_vertex.emulator.validation import check_machine_spec

__all__ = ["EndpointService", "server_key"]

SERVICE = "google.cloud.aiplatform.v1.EndpointService"
KIND = "endpoints"

_ENDPOINT_ID_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def server_key(endpoint: str, deployed_model_id: str) -> str:
    """The worker key of a deployed model's server."""
    return f"endpoint-{endpoint.rsplit('/', 1)[-1]}-{deployed_model_id}"


def _copy(endpoint: endpoint_types.Endpoint) -> endpoint_types.Endpoint:
    copy: endpoint_types.Endpoint = endpoint_types.Endpoint.deserialize(
        endpoint_types.Endpoint.serialize(endpoint)
    )
    return copy


def _generic() -> op_types.GenericOperationMetadata:
    stamp = now()
    return op_types.GenericOperationMetadata(create_time=stamp, update_time=stamp)


class EndpointService:
    """Create/Get/List/Update/Delete Endpoint, DeployModel, UndeployModel, MutateDeployedModel."""

    def __init__(self, state: EmulatorState, models: ModelService, runtime: ModelRuntime) -> None:
        self.state = state
        self.models = models
        self.runtime = runtime

    def handler(self, router: RpcRouter) -> grpc.GenericRpcHandler:
        """The gRPC handler of this service."""
        lro = operations_pb2.Operation
        ep = endpoint_types.Endpoint
        return router.service(
            SERVICE,
            {
                "CreateEndpoint": proto_plus(es.CreateEndpointRequest, lro, self.create),
                "GetEndpoint": proto_plus(es.GetEndpointRequest, ep, self.get),
                "ListEndpoints": proto_plus(
                    es.ListEndpointsRequest, es.ListEndpointsResponse, self.list_
                ),
                "UpdateEndpoint": proto_plus(es.UpdateEndpointRequest, ep, self.update),
                "DeleteEndpoint": proto_plus(es.DeleteEndpointRequest, lro, self.delete),
                "DeployModel": proto_plus(es.DeployModelRequest, lro, self.deploy),
                "UndeployModel": proto_plus(es.UndeployModelRequest, lro, self.undeploy),
                "MutateDeployedModel": proto_plus(es.MutateDeployedModelRequest, lro, self.mutate),
            },
        )

    def find(self, name: str, field: str = "name") -> endpoint_types.Endpoint:
        """The stored endpoint ``name`` (not a copy).

        Raises:
            ApiError: INVALID_ARGUMENT, NOT_FOUND.
        """
        full = self.state.resource_name(name, "endpoints", field)
        found: endpoint_types.Endpoint = self.state.get(KIND, full)
        return found

    def create(self, request: es.CreateEndpointRequest) -> operations_pb2.Operation:
        """Create an empty endpoint; an LRO."""
        parent = self.state.parent(request.parent)
        spec = request.endpoint
        if not spec.display_name:
            raise invalid("endpoint.display_name", "The display name of the endpoint is required.")
        if len(spec.display_name) > 128:
            raise invalid("endpoint.display_name", "The display name may have 128 characters.")
        labels_ok(spec.labels.items(), "endpoint.labels")
        if spec.deployed_models or spec.traffic_split:
            raise invalid(
                "endpoint.deployed_models",
                "An endpoint is created empty; deploy models with DeployModel.",
            )
        if request.endpoint_id and not _ENDPOINT_ID_RE.match(request.endpoint_id):
            raise invalid(
                "endpoint_id",
                "endpoint_id must be 1-63 lowercase letters, digits or '-', starting and ending "
                "with a letter or a digit.",
            )
        name = f"{parent}/endpoints/{request.endpoint_id or self.state.new_id()}"
        with self.state.lock:
            table = self.state.table(KIND)
            if name in table:
                raise ApiError(grpc.StatusCode.ALREADY_EXISTS, f"Endpoint {name} already exists.")
            endpoint = _copy(spec)
            endpoint.name = name
            stamp = now()
            endpoint.create_time = stamp
            endpoint.update_time = stamp
            endpoint.etag = str(stamp.timestamp())
            table[name] = endpoint
            snapshot = _copy(endpoint)
        return self.state.operation(
            name,
            lambda: snapshot,
            metadata=es.CreateEndpointOperationMetadata(generic_metadata=_generic()),
        )

    def get(self, request: es.GetEndpointRequest) -> endpoint_types.Endpoint:
        """One endpoint."""
        with self.state.lock:
            return _copy(self.find(request.name))

    def list_(self, request: es.ListEndpointsRequest) -> es.ListEndpointsResponse:
        """Endpoints of the location, oldest first."""
        parent = self.state.parent(request.parent)
        items = [_copy(e) for e in self.state.listed(KIND, parent)]
        match = re.fullmatch(r'\s*display_name\s*=\s*"([^"]*)"\s*', request.filter or "")
        if request.filter and not match:
            raise invalid("filter", f"Unsupported filter expression: {request.filter!r}.")
        if match:
            items = [e for e in items if e.display_name == match.group(1)]
        page, token = PageToken.page(items, request.page_size, request.page_token)
        return es.ListEndpointsResponse(endpoints=page, next_page_token=token)

    def update(self, request: es.UpdateEndpointRequest) -> endpoint_types.Endpoint:
        """Change display name, description, labels or the traffic split."""
        paths = list(request.update_mask.paths)
        if not paths:
            raise invalid("update_mask", "update_mask is required.")
        with self.state.lock:
            endpoint = self.find(request.endpoint.name, "endpoint.name")
            for path in paths:
                if path == "traffic_split":
                    split = dict(request.endpoint.traffic_split)
                    _check_split(
                        split, {d.id for d in endpoint.deployed_models}, "endpoint.traffic_split"
                    )
                    endpoint.traffic_split = split
                elif path == "display_name":
                    if not request.endpoint.display_name:
                        raise invalid("endpoint.display_name", "The display name cannot be empty.")
                    endpoint.display_name = request.endpoint.display_name
                elif path == "labels":
                    labels_ok(request.endpoint.labels.items(), "endpoint.labels")
                    endpoint.labels = dict(request.endpoint.labels)
                elif path == "description":
                    endpoint.description = request.endpoint.description
                else:
                    raise invalid("update_mask", f'Field "{path}" cannot be updated.')
            endpoint.update_time = now()
            return _copy(endpoint)

    def delete(self, request: es.DeleteEndpointRequest) -> operations_pb2.Operation:
        """Delete an endpoint that has no deployed model."""
        with self.state.lock:
            endpoint = self.find(request.name)
            if endpoint.deployed_models:
                ids = ", ".join(d.id for d in endpoint.deployed_models)
                raise ApiError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Endpoint {endpoint.name} has deployed models ({ids}); undeploy them "
                    "before deleting the endpoint.",
                )
            del self.state.table(KIND)[endpoint.name]
        return self.state.operation(
            endpoint.name,
            lambda: None,
            metadata=op_types.DeleteOperationMetadata(generic_metadata=_generic()),
        )

    def deploy(self, request: es.DeployModelRequest) -> operations_pb2.Operation:
        """Deploy a model version: its server is started before the operation is done."""
        with self.state.lock:
            endpoint = self.find(request.endpoint, "endpoint")
            name = endpoint.name
            spec = request.deployed_model
            if not spec.model:
                raise invalid("deployed_model.model", "deployed_model.model is required.")
            model = self.models.resolve(spec.model, "deployed_model.model")
            resources = spec.dedicated_resources
            if "dedicated_resources" not in spec:
                raise invalid(
                    "deployed_model.dedicated_resources",
                    "A custom-trained model is deployed with dedicated_resources.",
                )
            check_machine_spec(
                resources.machine_spec,
                "deployed_model.dedicated_resources.machine_spec",
                purpose="prediction",
            )
            if resources.min_replica_count < 1:
                raise invalid(
                    "deployed_model.dedicated_resources.min_replica_count",
                    "min_replica_count must be at least 1.",
                )
            if resources.max_replica_count and (
                resources.max_replica_count < resources.min_replica_count
            ):
                raise invalid(
                    "deployed_model.dedicated_resources.max_replica_count",
                    "max_replica_count must not be less than min_replica_count.",
                )
            existing = {d.id for d in endpoint.deployed_models}
            deployed_id = spec.id or self.state.new_id()
            if deployed_id in existing:
                raise ApiError(
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"Deployed model {deployed_id} already exists on {name}.",
                )
            split = dict(request.traffic_split)
            if split:
                if "0" in split:
                    split[deployed_id] = split.pop("0")
                _check_split(split, existing | {deployed_id}, "traffic_split")
            elif not existing:
                split = {deployed_id: 100}
            else:
                split = dict(endpoint.traffic_split)
            self.runtime.check_servable(model)

        key = server_key(name, deployed_id)
        try:
            self.runtime.start(key, model)
        except ApiError as exc:
            return self.state.failed_operation(name, exc)

        with self.state.lock:
            current = self.state.table(KIND).get(name)
            if current is not None:
                deployed = endpoint_types.DeployedModel.deserialize(
                    endpoint_types.DeployedModel.serialize(spec)
                )
                deployed.id = deployed_id
                deployed.model = model.name
                deployed.model_version_id = model.version_id
                deployed.create_time = now()
                if not deployed.display_name:
                    deployed.display_name = model.display_name
                if not deployed.dedicated_resources.max_replica_count:
                    deployed.dedicated_resources.max_replica_count = (
                        deployed.dedicated_resources.min_replica_count
                    )
                current.deployed_models.append(deployed)
                current.traffic_split = split
                current.update_time = now()
                result = endpoint_types.DeployedModel.deserialize(
                    endpoint_types.DeployedModel.serialize(deployed)
                )
        if current is None:
            # Deleted (or the emulator reset) while the server was starting.
            self.state.workers.stop(key)
            raise not_found(name)
        return self.state.operation(
            name,
            lambda: es.DeployModelResponse(deployed_model=result),
            metadata=es.DeployModelOperationMetadata(generic_metadata=_generic()),
        )

    def undeploy(self, request: es.UndeployModelRequest) -> operations_pb2.Operation:
        """Undeploy a model (its server is stopped)."""
        with self.state.lock:
            endpoint = self.find(request.endpoint, "endpoint")
            ids = [d.id for d in endpoint.deployed_models]
            if request.deployed_model_id not in ids:
                raise ApiError(
                    grpc.StatusCode.NOT_FOUND,
                    f"Deployed model {request.deployed_model_id} not found on {endpoint.name}.",
                )
            remaining = {i for i in ids if i != request.deployed_model_id}
            split = dict(request.traffic_split)
            if not remaining:
                split = {}
            elif split:
                _check_split(split, remaining, "traffic_split")
            else:
                if endpoint.traffic_split.get(request.deployed_model_id, 0) > 0:
                    raise ApiError(
                        grpc.StatusCode.FAILED_PRECONDITION,
                        f"Deployed model {request.deployed_model_id} has traffic on "
                        f"{endpoint.name}; give a traffic_split that takes its traffic away.",
                    )
                split = {k: v for k, v in endpoint.traffic_split.items() if k in remaining}
            kept = [d for d in endpoint.deployed_models if d.id != request.deployed_model_id]
            del endpoint.deployed_models[:]
            endpoint.deployed_models.extend(kept)
            endpoint.traffic_split = split
            endpoint.update_time = now()
            name = endpoint.name
        self.state.workers.stop(server_key(name, request.deployed_model_id))
        return self.state.operation(
            name,
            es.UndeployModelResponse,
            metadata=es.UndeployModelOperationMetadata(generic_metadata=_generic()),
        )

    def mutate(self, request: es.MutateDeployedModelRequest) -> operations_pb2.Operation:
        """Change replica counts, autoscaling targets or the display name of a deployed model."""
        paths = list(request.update_mask.paths)
        if not paths:
            raise invalid("update_mask", "update_mask is required.")
        allowed = {
            "min_replica_count": "dedicated_resources.min_replica_count",
            "max_replica_count": "dedicated_resources.max_replica_count",
            "autoscaling_metric_specs": "dedicated_resources.autoscaling_metric_specs",
            "disable_container_logging": "disable_container_logging",
            "enable_access_logging": "enable_access_logging",
        }
        with self.state.lock:
            endpoint = self.find(request.endpoint, "endpoint")
            wanted = request.deployed_model
            target = next((d for d in endpoint.deployed_models if d.id == wanted.id), None)
            if target is None:
                raise ApiError(
                    grpc.StatusCode.NOT_FOUND,
                    f"Deployed model {wanted.id!r} not found on {endpoint.name}.",
                )
            for path in paths:
                short = path.rsplit(".", 1)[-1]
                if short not in allowed:
                    raise invalid("update_mask", f'Field "{path}" cannot be mutated.')
                if short in ("min_replica_count", "max_replica_count", "autoscaling_metric_specs"):
                    value: Any = getattr(wanted.dedicated_resources, short)
                    setattr(target.dedicated_resources, short, value)
                else:
                    setattr(target, short, getattr(wanted, short))
            resources = target.dedicated_resources
            if resources.min_replica_count < 1:
                raise invalid(
                    "deployed_model.dedicated_resources.min_replica_count",
                    "min_replica_count must be at least 1.",
                )
            if resources.max_replica_count < resources.min_replica_count:
                raise invalid(
                    "deployed_model.dedicated_resources.max_replica_count",
                    "max_replica_count must not be less than min_replica_count.",
                )
            endpoint.update_time = now()
            result = endpoint_types.DeployedModel.deserialize(
                endpoint_types.DeployedModel.serialize(target)
            )
        return self.state.operation(
            endpoint.name,
            lambda: es.MutateDeployedModelResponse(deployed_model=result),
            metadata=es.MutateDeployedModelOperationMetadata(generic_metadata=_generic()),
        )


def _check_split(split: dict[str, int], deployed: set[str], field: str) -> None:
    unknown = sorted(set(split) - deployed)
    if unknown:
        raise invalid(
            field,
            f"traffic_split names deployed models that are not on the endpoint: "
            f"{', '.join(unknown)}.",
        )
    if any(v < 0 or v > 100 for v in split.values()):
        raise invalid(field, "Every traffic_split value must be between 0 and 100.")
    total = sum(split.values())
    if deployed and total != 100:
        raise invalid(field, f"The traffic_split values must sum to 100, got {total}.")
    if not deployed and split:
        raise invalid(field, "An endpoint without deployed models has an empty traffic_split.")
