"""Batch endpoints and deployments; invoking one runs a job that writes predictions to Azurite.

An invocation (``POST`` to the endpoint's ``scoringUri``, as ``batch_endpoints.invoke`` sends
it) becomes a job of the workspace: it downloads the deployment's model and the input, predicts
every row with mlport's batch predictor in a child process, and uploads the predictions to the
output location (``azureml://datastores/workspaceblobstore/paths/azureml/<job>/score/`` unless
the request names one). The job is followed with ``jobs.get`` / ``jobs.stream`` like any other.
"""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass
from typing import Any

from mlport_azureml.emulator._arm import PROVIDER, check_name, page, system_data
from mlport_azureml.emulator._http import ApiError, Request, Response, bad_request, not_found
from mlport_azureml.emulator._service import Service
from mlport_azureml.emulator.storage import asset_reference

__all__ = ["BatchEndpoints"]


@dataclass
class _BatchEndpoint:
    resource: dict[str, Any]
    deployments: dict[str, dict[str, Any]]


class BatchEndpoints:
    """Batch endpoints, deployments and invocations."""

    def __init__(self, service: Service) -> None:
        self.service = service
        ep = "{ws}/batchEndpoints/{endpoint}"
        service.route("GET", "{ws}/batchEndpoints", "BatchEndpoints_List", self.list)
        service.route("GET", ep, "BatchEndpoints_Get", self.get)
        service.route("PUT", ep, "BatchEndpoints_CreateOrUpdate", self.put)
        service.route("PATCH", ep, "BatchEndpoints_Update", self.put)
        service.route("DELETE", ep, "BatchEndpoints_Delete", self.delete)
        service.route("POST", ep + "/listkeys", "BatchEndpoints_ListKeys", self.list_keys)
        dep = ep + "/deployments/{deployment}"
        service.route("GET", ep + "/deployments", "BatchDeployments_List", self.list_deployments)
        service.route("GET", dep, "BatchDeployments_Get", self.get_deployment)
        service.route("PUT", dep, "BatchDeployments_CreateOrUpdate", self.put_deployment)
        service.route("DELETE", dep, "BatchDeployments_Delete", self.delete_deployment)
        service.router.add(
            "POST", "/batch/{endpoint}/jobs", "BatchEndpoints_Invoke", self.invoke, arm=False
        )
        service.add_family(self, "batch")

    def reset(self) -> None:
        """Nothing runs here (invocations are jobs)."""

    def close(self) -> None:
        """Nothing runs here."""

    def _endpoints(self) -> dict[str, _BatchEndpoint]:
        return self.service.table("batch")

    def _find(self, name: str) -> _BatchEndpoint:
        with self.service.lock:
            for key, endpoint in self._endpoints().items():
                if key.lower() == name.lower():
                    return endpoint
        raise not_found(f"{PROVIDER}/workspaces/batchEndpoints", name)

    # --- endpoints ---------------------------------------------------------------------------

    def list(self, request: Request) -> Response:
        """BatchEndpoints_List."""
        with self.service.lock:
            items = [e.resource for e in self._endpoints().values()]
        return page(request, sorted(items, key=lambda e: e["name"]))

    def get(self, request: Request) -> Response:
        """BatchEndpoints_Get."""
        return Response(200, self._find(request.params["endpoint"]).resource)

    def put(self, request: Request) -> Response:
        """BatchEndpoints_CreateOrUpdate: a long-running operation."""
        name = request.params["endpoint"]
        check_name("endpoint", name, "endpointName")
        body = request.json_object()
        properties = body.get("properties") or {}
        if not isinstance(properties, dict):
            raise bad_request("properties must be an object.", "properties")
        auth = str(properties.get("authMode") or "AADToken")
        if auth.lower() != "aadtoken":
            raise bad_request(
                f"Batch endpoints support the AADToken authMode only, got {auth!r}.",
                "properties.authMode",
            )
        auth = "AADToken"
        with self.service.lock:
            existing = self._endpoints().get(name)
        deployments = existing.deployments if existing else {}
        default = (properties.get("defaults") or {}).get("deploymentName")
        if default and default not in deployments:
            raise bad_request(
                f"The default deployment {default} does not exist on this endpoint.",
                "properties.defaults.deploymentName",
            )
        if default is None and existing is not None:
            default = existing.resource["properties"]["defaults"].get("deploymentName")
        resource: dict[str, Any] = {
            "id": self.service.arm_id("batchEndpoints", name),
            "name": name,
            "type": f"{PROVIDER}/workspaces/batchEndpoints",
            "location": body.get("location") or self.service.settings.location,
            "tags": body.get("tags") or {},
            "identity": body.get("identity") or {"type": "SystemAssigned"},
            "systemData": system_data(existing.resource["systemData"] if existing else None),
            "properties": {
                "description": properties.get("description"),
                "properties": properties.get("properties") or {},
                "authMode": auth,
                "defaults": {"deploymentName": default},
                "scoringUri": f"{request.base_url}/batch/{name}/jobs",
                "swaggerUri": None,
                "provisioningState": "Creating" if existing is None else "Updating",
            },
        }
        with self.service.lock:
            if existing is None:
                endpoint = _BatchEndpoint(resource, {})
                self._endpoints()[name] = endpoint
            else:
                endpoint = existing
                endpoint.resource = resource

        def work() -> None:
            with self.service.lock:
                endpoint.resource["properties"]["provisioningState"] = "Succeeded"

        operation = self.service.start_operation(work, name=f"batch-endpoint-{name}")
        return Response(
            201 if existing is None else 200,
            resource,
            self.service.lro_headers(request, operation),
        )

    def delete(self, request: Request) -> Response:
        """BatchEndpoints_Delete: the endpoint and its deployments."""
        try:
            endpoint = self._find(request.params["endpoint"])
        except ApiError:
            return Response(204)
        with self.service.lock:
            endpoint.resource["properties"]["provisioningState"] = "Deleting"

        def work() -> None:
            with self.service.lock:
                self._endpoints().pop(endpoint.resource["name"], None)

        operation = self.service.start_operation(work, name="delete-batch-endpoint")
        return Response(202, None, self.service.lro_headers(request, operation))

    def list_keys(self, request: Request) -> Response:
        """BatchEndpoints_ListKeys: batch endpoints use Microsoft Entra tokens, not keys."""
        self._find(request.params["endpoint"])
        raise bad_request(
            "Batch endpoints authenticate with AADToken only; they have no keys.", "authMode"
        )

    # --- deployments -------------------------------------------------------------------------

    def list_deployments(self, request: Request) -> Response:
        """BatchDeployments_List."""
        endpoint = self._find(request.params["endpoint"])
        with self.service.lock:
            items = list(endpoint.deployments.values())
        return page(request, sorted(items, key=lambda d: d["name"]))

    def _deployment(self, endpoint: _BatchEndpoint, name: str) -> dict[str, Any]:
        with self.service.lock:
            found = endpoint.deployments.get(name)
        if found is None:
            raise not_found(
                f"{PROVIDER}/workspaces/batchEndpoints/deployments",
                f"{endpoint.resource['name']}/{name}",
            )
        return found

    def get_deployment(self, request: Request) -> Response:
        """BatchDeployments_Get."""
        endpoint = self._find(request.params["endpoint"])
        return Response(200, self._deployment(endpoint, request.params["deployment"]))

    def put_deployment(self, request: Request) -> Response:
        """BatchDeployments_CreateOrUpdate: a long-running operation."""
        endpoint = self._find(request.params["endpoint"])
        name = request.params["deployment"]
        check_name("endpoint", name, "deploymentName")
        body = request.json_object()
        properties = body.get("properties")
        if not isinstance(properties, dict):
            raise bad_request("The field properties is required.", "properties")
        model = properties.get("model") or {}
        asset = model.get("assetId") if isinstance(model, dict) else None
        if not asset:
            raise bad_request("The field model.assetId is required.", "properties.model")
        reference = asset_reference(str(asset))
        if reference is None or reference[0] not in ("models", ""):
            raise bad_request(f"{asset} is not a model asset id.", "properties.model.assetId")
        from mlport_azureml.emulator.assets import Assets

        assets: Assets = self.service.families["assets"]  # type: ignore[assignment]
        try:
            assets.version("models", reference[1], reference[2])
        except ApiError:
            raise bad_request(
                f"The model {reference[1]}:{reference[2]} does not exist.",
                "properties.model.assetId",
            ) from None
        compute = properties.get("compute")
        if not compute:
            raise bad_request("The field compute is required.", "properties.compute")
        families = self.service.families
        if "compute" in families:
            families["compute"].require_target(  # type: ignore[attr-defined]
                str(compute).rstrip("/").split("/")[-1], target="properties.compute"
            )
        size = properties.get("miniBatchSize", 10)
        if not isinstance(size, int) or size < 1:
            raise bad_request("miniBatchSize must be at least 1.", "properties.miniBatchSize")
        with self.service.lock:
            existing = endpoint.deployments.get(name)
        resource: dict[str, Any] = {
            "id": self.service.arm_id(
                "batchEndpoints", endpoint.resource["name"], "deployments", name
            ),
            "name": name,
            "type": f"{PROVIDER}/workspaces/batchEndpoints/deployments",
            "location": body.get("location") or self.service.settings.location,
            "tags": body.get("tags") or {},
            "systemData": system_data(existing["systemData"] if existing else None),
            "properties": {
                "outputAction": "AppendRow",
                "outputFileName": "predictions.csv",
                "miniBatchSize": 10,
                "errorThreshold": -1,
                "loggingLevel": "Info",
                **{k: v for k, v in properties.items() if v is not None},
                "provisioningState": "Creating" if existing is None else "Updating",
            },
        }
        with self.service.lock:
            endpoint.deployments[name] = resource
            defaults = endpoint.resource["properties"]["defaults"]
            if not defaults.get("deploymentName"):
                defaults["deploymentName"] = name

        def work() -> None:
            with self.service.lock:
                resource["properties"]["provisioningState"] = "Succeeded"

        operation = self.service.start_operation(work, name=f"batch-deployment-{name}")
        return Response(
            201 if existing is None else 200,
            resource,
            self.service.lro_headers(request, operation),
        )

    def delete_deployment(self, request: Request) -> Response:
        """BatchDeployments_Delete: refused for the endpoint's default while others exist."""
        endpoint = self._find(request.params["endpoint"])
        name = request.params["deployment"]
        with self.service.lock:
            if name not in endpoint.deployments:
                return Response(204)
            is_default = endpoint.resource["properties"]["defaults"].get("deploymentName") == name
            others = len(endpoint.deployments) > 1
        if is_default and others:
            raise bad_request(
                f"The deployment {name} is the endpoint's default; make another deployment the "
                "default before deleting it.",
                "deploymentName",
            )

        def work() -> None:
            with self.service.lock:
                endpoint.deployments.pop(name, None)
                defaults = endpoint.resource["properties"]["defaults"]
                if defaults.get("deploymentName") == name:
                    defaults["deploymentName"] = None

        operation = self.service.start_operation(work, name=f"delete-batch-deployment-{name}")
        return Response(202, None, self.service.lro_headers(request, operation))

    # --- invoke ------------------------------------------------------------------------------

    def invoke(self, request: Request) -> Response:
        """Invoke: start a scoring job on the chosen (or default) deployment."""
        endpoint = self._find(request.params["endpoint"])
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer ") or not header[7:].strip():
            raise ApiError(401, "Unauthorized", "Batch endpoints need a Microsoft Entra token.")
        name = request.headers.get("azureml-model-deployment") or endpoint.resource["properties"][
            "defaults"
        ].get("deploymentName")
        if not name:
            raise bad_request("The endpoint has no deployment to invoke.", "deploymentName")
        deployment = self._deployment(endpoint, name)
        body = request.json_object()
        properties = body.get("properties") or {}
        source = _input_uri(properties)
        job_name = str(properties.get("name") or f"batchjob-{uuid.uuid4()}")
        output = _output_uri(properties)
        model = deployment["properties"]["model"]["assetId"]
        from mlport_azureml.emulator.jobs import Jobs

        jobs: Jobs = self.service.families["jobs"]  # type: ignore[assignment]
        job_properties: dict[str, Any] = {
            "jobType": "Command",
            "command": f"{sys.executable} -m mlport_azureml.emulator._batch_runner "
            "${{inputs.model}} ${{inputs.data}} ${{outputs.score}} "
            f"{int(deployment['properties'].get('miniBatchSize') or 10)}",
            "inputs": {
                "model": {"jobInputType": "custom_model", "uri": str(model)},
                "data": {"jobInputType": "uri_folder", "uri": source},
            },
            "outputs": {"score": {"jobOutputType": "uri_folder", "uri": output}},
            "environmentId": deployment["properties"].get("environmentId")
            or "azureml://registries/azureml/environments/mlport-batch/versions/1",
            "computeId": deployment["properties"].get("compute"),
            "experimentName": properties.get("experimentName") or endpoint.resource["name"],
            "displayName": job_name,
            "tags": {
                "azureml.batchEndpoint": endpoint.resource["name"],
                "azureml.batchDeployment": name,
            },
        }
        resource = jobs.submit(job_name, job_properties, request)
        answer = {
            "id": resource["id"],
            "name": job_name,
            "type": "Microsoft.MachineLearningServices/workspaces/batchEndpoints/jobs",
            "systemData": resource["systemData"],
            "properties": {
                **properties,
                "name": job_name,
                "status": resource["properties"]["status"],
                "outputDataset": {"path": output},
            },
        }
        return Response(200, answer)


def _input_uri(properties: dict[str, Any]) -> str:
    for key in ("inputData", "InputData", "input_data"):
        inputs = properties.get(key)
        if isinstance(inputs, dict):
            for value in inputs.values():
                if isinstance(value, dict):
                    uri = value.get("uri") or value.get("Uri") or value.get("path")
                    if uri:
                        return str(uri)
    dataset = properties.get("dataset")
    if isinstance(dataset, dict):
        uri = dataset.get("path") or dataset.get("uri")
        if uri:
            return str(uri)
    raise bad_request("The invocation names no input data.", "properties.inputData")


def _output_uri(properties: dict[str, Any]) -> str:
    name = str(properties.get("name") or "")
    for key in ("outputData", "OutputData"):
        outputs = properties.get(key)
        if isinstance(outputs, dict):
            for value in outputs.values():
                if isinstance(value, dict) and (value.get("uri") or value.get("Uri")):
                    return str(value.get("uri") or value.get("Uri"))
    dataset = properties.get("outputDataset")
    if isinstance(dataset, dict) and dataset.get("path"):
        return f"azureml://datastores/workspaceblobstore/paths/{str(dataset['path']).strip('/')}/"
    suffix = name or str(uuid.uuid4())
    return f"azureml://datastores/workspaceblobstore/paths/azureml/{suffix}/score/"
