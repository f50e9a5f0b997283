"""Online endpoints and deployments; scoring through mlport's portable model server.

Each deployment that provisions runs ``python -m mlport.serving`` on a port of 127.0.0.1 with its
model downloaded from Azurite. The endpoint's ``scoringUri`` is on the emulator itself, which
checks the endpoint's key (or token), picks a deployment by the ``azureml-model-deployment``
header or by the traffic split, copies the configured share of requests to a mirror deployment,
and forwards the request to that deployment's server.
"""

from __future__ import annotations

import contextlib
import functools
import json
import random
import secrets
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlport.processes import spawn, stop, wait_for_ready_file
from mlport_azureml.emulator._arm import PROVIDER, check_name, page, system_data
from mlport_azureml.emulator._http import (
    ApiError,
    Request,
    Response,
    bad_request,
    not_found,
)
from mlport_azureml.emulator._service import Service
from mlport_azureml.emulator.jobs import known_instance_type
from mlport_azureml.emulator.storage import asset_reference, locate

__all__ = ["SERVING_IMAGE_NAME", "ModelServer", "OnlineEndpoints", "is_serving_image"]

SERVING_IMAGE_NAME = "mlport-serving"
"""Repository name of mlport's serving image: an environment with an image
``<registry>/mlport-serving[:tag]`` is recognised and run locally as the portable server."""

_AUTH_MODES = ("Key", "AMLToken", "AADToken")
_SERVER_START_SECONDS = 90.0
_FORWARD_TIMEOUT = 120.0


def is_serving_image(image: str | None) -> bool:
    """Whether an environment image is mlport's serving image."""
    if not image:
        return False
    repository = image.split("@")[0].rsplit("/", 1)[-1].split(":")[0]
    return repository == SERVING_IMAGE_NAME


class ModelServer:
    """One portable model server process serving a model folder."""

    def __init__(self, name: str, model_dir: Path, work_dir: Path, timeout: float = 60.0) -> None:
        """Start it. Blocks until it is ready to answer.

        Raises:
            ProcessExitedError: The server exited during start-up (its stderr is quoted).
            WaitTimeoutError: It did not become ready in time.
        """
        work_dir.mkdir(parents=True, exist_ok=True)
        self.token = secrets.token_urlsafe(24)
        token_file = work_dir / "token"
        token_file.write_text(self.token)
        token_file.chmod(0o600)
        ready = work_dir / "ready.json"
        ready.unlink(missing_ok=True)
        config = {
            "endpoint": "score",
            "port": 0,
            "token_file": str(token_file),
            "workers": 1,
            "variants": {"model": {"path": str(model_dir), "trust": True}},
            "ready_file": str(ready),
            "hosting": "none",
            "graceful_seconds": 1.0,
            "predict_timeout_seconds": timeout,
        }
        config_file = work_dir / "server.json"
        config_file.write_text(json.dumps(config))
        import sys

        self.log_dir = work_dir / "logs"
        popen, self.record = spawn(
            [sys.executable, "-m", "mlport.serving", "--config", str(config_file)],
            name=name,
            log_dir=self.log_dir,
            cwd=work_dir,
            detach=False,
        )
        try:
            content = wait_for_ready_file(ready, timeout=_SERVER_START_SECONDS, process=popen)
        except BaseException:
            stop(self.record, grace=1.0)
            raise
        self.port = int(json.loads(content)["port"])

    def logs(self, tail: int | None) -> str:
        """The end of the server's log."""
        text = ""
        for suffix in (".err", ".out"):
            path = Path(self.record.stderr_path).with_suffix(suffix)
            with contextlib.suppress(OSError):
                text += path.read_text(errors="replace")
        lines = text.splitlines()
        return "\n".join(lines[-tail:] if tail else lines)

    def forward(self, body: bytes, content_type: str) -> tuple[int, bytes, str]:
        """POST ``body`` to the server's Azure ML route ``/score``."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/score",
            data=body,
            method="POST",
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": content_type},
        )
        try:
            with urllib.request.urlopen(request, timeout=_FORWARD_TIMEOUT) as answer:
                return answer.status, answer.read(), answer.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), exc.headers.get("Content-Type", "")

    def stop(self) -> None:
        """Stop the server. Blocks."""
        stop(self.record, grace=2.0)


@dataclass
class _Deployment:
    resource: dict[str, Any]
    server: ModelServer | None = None
    error: str | None = None


@dataclass
class _Endpoint:
    resource: dict[str, Any]
    keys: dict[str, str]
    deployments: dict[str, _Deployment]
    tokens: set[str]
    mirrored: dict[str, int] = field(default_factory=dict)


class OnlineEndpoints:
    """Online endpoints, their deployments, keys, logs and scoring."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self._lock = threading.Lock()
        ep = "{ws}/onlineEndpoints/{endpoint}"
        service.route("GET", "{ws}/onlineEndpoints", "OnlineEndpoints_List", self.list)
        service.route("GET", ep, "OnlineEndpoints_Get", self.get)
        service.route("PUT", ep, "OnlineEndpoints_CreateOrUpdate", self.put)
        service.route("PATCH", ep, "OnlineEndpoints_Update", self.patch)
        service.route("DELETE", ep, "OnlineEndpoints_Delete", self.delete)
        service.route("POST", ep + "/listKeys", "OnlineEndpoints_ListKeys", self.list_keys)
        service.route(
            "POST", ep + "/regenerateKeys", "OnlineEndpoints_RegenerateKeys", self.regenerate_keys
        )
        service.route("POST", ep + "/token", "OnlineEndpoints_GetToken", self.get_token)
        dep = ep + "/deployments/{deployment}"
        service.route("GET", ep + "/deployments", "OnlineDeployments_List", self.list_deployments)
        service.route("GET", dep, "OnlineDeployments_Get", self.get_deployment)
        service.route("PUT", dep, "OnlineDeployments_CreateOrUpdate", self.put_deployment)
        service.route("PATCH", dep, "OnlineDeployments_Update", self.put_deployment)
        service.route("DELETE", dep, "OnlineDeployments_Delete", self.delete_deployment)
        service.route("POST", dep + "/getLogs", "OnlineDeployments_GetLogs", self.get_logs)
        service.router.add(
            "POST", "/online/{endpoint}/score", "OnlineEndpoints_Score", self.score, arm=False
        )
        service.add_family(self, "online")

    # --- lifecycle ---------------------------------------------------------------------------

    def _endpoints(self) -> dict[str, _Endpoint]:
        return self.service.table("online")

    def reset(self) -> None:
        """Stop every model server."""
        self._stop_all()

    def close(self) -> None:
        """Stop every model server."""
        self._stop_all()

    def _stop_all(self) -> None:
        with self.service.lock:
            servers = [
                d.server
                for e in self._endpoints().values()
                for d in e.deployments.values()
                if d.server is not None
            ]
        for server in servers:
            server.stop()

    # --- endpoints ---------------------------------------------------------------------------

    def _find(self, name: str) -> _Endpoint:
        with self.service.lock:
            for key, endpoint in self._endpoints().items():
                if key.lower() == name.lower():
                    return endpoint
        raise not_found(f"{PROVIDER}/workspaces/onlineEndpoints", name)

    def list(self, request: Request) -> Response:
        """OnlineEndpoints_List."""
        with self.service.lock:
            items = [e.resource for e in self._endpoints().values()]
        return page(request, sorted(items, key=lambda e: e["name"]))

    def get(self, request: Request) -> Response:
        """OnlineEndpoints_Get."""
        return Response(200, self._find(request.params["endpoint"]).resource)

    def put(self, request: Request) -> Response:
        """OnlineEndpoints_CreateOrUpdate: a long-running operation."""
        name = request.params["endpoint"]
        check_name("endpoint", name, "endpointName")
        body = request.json_object()
        properties = body.get("properties")
        if not isinstance(properties, dict):
            raise bad_request("The field properties is required.", "properties")
        auth = properties.get("authMode") or "Key"
        if auth not in _AUTH_MODES:
            raise bad_request(
                f"authMode must be one of {', '.join(_AUTH_MODES)}, got {auth!r}.",
                "properties.authMode",
            )
        with self.service.lock:
            existing = self._endpoints().get(name)
        if existing is not None and existing.resource["properties"]["authMode"] != auth:
            raise bad_request(
                "The authMode of an existing endpoint cannot be changed.", "properties.authMode"
            )
        deployments = existing.deployments if existing else {}
        traffic = self._check_traffic(properties.get("traffic") or {}, deployments, "traffic")
        mirror = self._check_traffic(
            properties.get("mirrorTraffic") or {}, deployments, "mirrorTraffic"
        )
        self._check_split(traffic, mirror)
        resource: dict[str, Any] = {
            "id": self.service.arm_id("onlineEndpoints", name),
            "name": name,
            "type": f"{PROVIDER}/workspaces/onlineEndpoints",
            "location": body.get("location") or self.service.settings.location,
            "kind": body.get("kind") or "Managed",
            "identity": body.get("identity") or {"type": "SystemAssigned"},
            "tags": body.get("tags") or {},
            "systemData": system_data(existing.resource["systemData"] if existing else None),
            "properties": {
                "description": properties.get("description"),
                "properties": properties.get("properties") or {},
                "authMode": auth,
                "traffic": traffic,
                "mirrorTraffic": mirror,
                "publicNetworkAccess": properties.get("publicNetworkAccess") or "Enabled",
                "scoringUri": f"{request.base_url}/online/{name}/score",
                "swaggerUri": f"{request.base_url}/online/{name}/swagger.json",
                "provisioningState": "Creating" if existing is None else "Updating",
            },
        }
        with self.service.lock:
            if existing is None:
                endpoint = _Endpoint(resource, self._new_keys(), {}, set())
                self._endpoints()[name] = endpoint
            else:
                endpoint = existing
                previous_state = existing.resource["properties"]["provisioningState"]
                endpoint.resource = resource
                if previous_state == "Failed":
                    resource["properties"]["provisioningState"] = "Updating"

        def work() -> None:
            with self.service.lock:
                endpoint.resource["properties"]["provisioningState"] = "Succeeded"

        operation = self.service.start_operation(work, name=f"endpoint-{name}")
        return Response(
            201 if existing is None else 200, resource, self.service.lro_headers(request, operation)
        )

    def patch(self, request: Request) -> Response:
        """OnlineEndpoints_Update: tags, traffic and mirror traffic."""
        endpoint = self._find(request.params["endpoint"])
        body = request.json_object()
        properties = body.get("properties") or {}
        with self.service.lock:
            current = endpoint.resource["properties"]
            traffic = self._check_traffic(
                properties.get("traffic", current["traffic"]), endpoint.deployments, "traffic"
            )
            mirror = self._check_traffic(
                properties.get("mirrorTraffic", current["mirrorTraffic"]),
                endpoint.deployments,
                "mirrorTraffic",
            )
            self._check_split(traffic, mirror)
            current["traffic"], current["mirrorTraffic"] = traffic, mirror
            if "tags" in body:
                endpoint.resource["tags"] = body["tags"] or {}
            endpoint.resource["systemData"] = system_data(endpoint.resource["systemData"])
        operation = self.service.start_operation(lambda: None, name="endpoint-update")
        return Response(202, None, self.service.lro_headers(request, operation))

    def _check_traffic(
        self, traffic: Any, deployments: dict[str, _Deployment], kind: str
    ) -> dict[str, int]:
        field = kind
        target = f"properties.{kind}"
        if not isinstance(traffic, dict):
            raise bad_request(f"{field} must map deployment names to percentages.", target)
        checked: dict[str, int] = {}
        for name, value in traffic.items():
            if name not in deployments:
                raise bad_request(
                    f"{field} names the deployment {name}, which does not exist on this endpoint.",
                    target,
                )
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100:
                raise bad_request(
                    f"{field} for {name} must be a whole percentage from 0 to 100.", target
                )
            checked[name] = value
        total = sum(checked.values())
        if field == "traffic" and checked and total not in (0, 100):
            raise bad_request(f"Traffic values need to sum to 100; they sum to {total}.", target)
        if field == "mirrorTraffic" and total > 50:
            raise bad_request(
                f"Mirror traffic values need to sum to at most 50; they sum to {total}.", target
            )
        return checked

    def _check_split(self, traffic: dict[str, int], mirror: dict[str, int]) -> None:
        mirrored = [name for name, value in mirror.items() if value > 0]
        if len(mirrored) > 1:
            raise bad_request(
                "Traffic can be mirrored to one deployment only.", "properties.mirrorTraffic"
            )
        for name in mirrored:
            if traffic.get(name, 0) > 0:
                raise bad_request(
                    f"The deployment {name} cannot receive live traffic and mirrored traffic "
                    "at once.",
                    "properties.mirrorTraffic",
                )

    def delete(self, request: Request) -> Response:
        """OnlineEndpoints_Delete: the endpoint and every deployment under it."""
        name = request.params["endpoint"]
        try:
            endpoint = self._find(name)
        except ApiError:
            return Response(204)
        with self.service.lock:
            endpoint.resource["properties"]["provisioningState"] = "Deleting"

        def work() -> None:
            for deployment in list(endpoint.deployments.values()):
                if deployment.server is not None:
                    deployment.server.stop()
            with self.service.lock:
                self._endpoints().pop(endpoint.resource["name"], None)

        operation = self.service.start_operation(work, name=f"delete-endpoint-{name}")
        return Response(202, None, self.service.lro_headers(request, operation))

    # --- keys --------------------------------------------------------------------------------

    def _new_keys(self) -> dict[str, str]:
        return {"primaryKey": secrets.token_urlsafe(32), "secondaryKey": secrets.token_urlsafe(32)}

    def list_keys(self, request: Request) -> Response:
        """OnlineEndpoints_ListKeys (key-auth endpoints only)."""
        endpoint = self._find(request.params["endpoint"])
        if endpoint.resource["properties"]["authMode"] != "Key":
            raise bad_request(
                "Keys are listed for endpoints whose authMode is Key only.", "authMode"
            )
        return Response(200, dict(endpoint.keys))

    def regenerate_keys(self, request: Request) -> Response:
        """OnlineEndpoints_RegenerateKeys: a long-running operation."""
        endpoint = self._find(request.params["endpoint"])
        body = request.json_object()
        kind = body.get("keyType")
        if kind not in ("Primary", "Secondary"):
            raise bad_request("keyType must be Primary or Secondary.", "keyType")
        if endpoint.resource["properties"]["authMode"] != "Key":
            raise bad_request(
                "Keys are regenerated for endpoints whose authMode is Key only.", "authMode"
            )
        slot = "primaryKey" if kind == "Primary" else "secondaryKey"
        value = body.get("keyValue")
        # azure-ai-ml sends the current key as keyValue; setting a key to itself would make
        # regenerate a no-op, so only a new value is taken as given.
        if not value or value == endpoint.keys[slot]:
            value = secrets.token_urlsafe(32)

        def work() -> None:
            with self.service.lock:
                endpoint.keys[slot] = value

        operation = self.service.start_operation(work, name="regenerate-keys")
        return Response(202, None, self.service.lro_headers(request, operation))

    def get_token(self, request: Request) -> Response:
        """OnlineEndpoints_GetToken (AMLToken endpoints)."""
        endpoint = self._find(request.params["endpoint"])
        if endpoint.resource["properties"]["authMode"] != "AMLToken":
            raise bad_request("Tokens are issued for AMLToken endpoints only.", "authMode")
        import time

        token = secrets.token_urlsafe(32)
        with self.service.lock:
            endpoint.tokens.add(token)
        now = int(time.time())
        return Response(
            200,
            {
                "accessToken": token,
                "tokenType": "Bearer",
                "expiryTimeUtc": now + 3600,
                "refreshAfterTimeUtc": now + 1800,
            },
        )

    # --- deployments -------------------------------------------------------------------------

    def has_deployment(self, endpoint: str, deployment: str) -> bool:
        """Whether the online endpoint ``endpoint`` has a deployment named ``deployment``."""
        try:
            found = self._find(endpoint)
        except ApiError:
            return False
        with self.service.lock:
            return deployment in found.deployments

    def _deployment(self, endpoint: _Endpoint, name: str) -> _Deployment:
        with self.service.lock:
            found = endpoint.deployments.get(name)
        if found is None:
            raise not_found(
                f"{PROVIDER}/workspaces/onlineEndpoints/deployments",
                f"{endpoint.resource['name']}/{name}",
            )
        return found

    def list_deployments(self, request: Request) -> Response:
        """OnlineDeployments_List."""
        endpoint = self._find(request.params["endpoint"])
        with self.service.lock:
            items = [d.resource for d in endpoint.deployments.values()]
        return page(request, sorted(items, key=lambda d: d["name"]))

    def get_deployment(self, request: Request) -> Response:
        """OnlineDeployments_Get."""
        endpoint = self._find(request.params["endpoint"])
        return Response(200, self._deployment(endpoint, request.params["deployment"]).resource)

    def put_deployment(self, request: Request) -> Response:
        """OnlineDeployments_CreateOrUpdate: provisions a model server (long-running)."""
        endpoint = self._find(request.params["endpoint"])
        name = request.params["deployment"]
        check_name("endpoint", name, "deploymentName")
        body = request.json_object()
        properties = body.get("properties")
        if not isinstance(properties, dict):
            raise bad_request("The field properties is required.", "properties")
        with self.service.lock:
            existing = endpoint.deployments.get(name)
        if request.method == "PATCH":
            if existing is None:
                raise not_found(f"{PROVIDER}/workspaces/onlineEndpoints/deployments", name)
            properties = {**existing.resource["properties"], **properties}
            body = {**existing.resource, **{k: v for k, v in body.items() if k != "properties"}}
        model_dir_source = self._validate_deployment(properties, body)
        state = "Creating" if existing is None else "Updating"
        sku = body.get("sku") or {"name": "Default", "capacity": 1}
        resource: dict[str, Any] = {
            "id": self.service.arm_id(
                "onlineEndpoints", endpoint.resource["name"], "deployments", name
            ),
            "name": name,
            "type": f"{PROVIDER}/workspaces/onlineEndpoints/deployments",
            "location": body.get("location") or self.service.settings.location,
            "kind": body.get("kind") or "Managed",
            "tags": body.get("tags") or {},
            "sku": sku,
            "systemData": system_data(existing.resource["systemData"] if existing else None),
            "properties": {
                "endpointComputeType": "Managed",
                "scaleSettings": {"scaleType": "Default"},
                "requestSettings": {
                    "requestTimeout": "PT5S",
                    "maxConcurrentRequestsPerInstance": 1,
                },
                "appInsightsEnabled": False,
                "egressPublicNetworkAccess": "Enabled",
                **{k: v for k, v in properties.items() if v is not None},
                "provisioningState": state,
            },
        }
        with self.service.lock:
            if existing is None:
                deployment = _Deployment(resource)
                endpoint.deployments[name] = deployment
            else:
                deployment = existing
                deployment.resource = resource
        generation = self.service.generation
        workdir = self.service.work_dir / "online" / endpoint.resource["name"] / name

        def work() -> None:
            try:
                server = self._provision(model_dir_source, workdir, name, properties)
            except ApiError:
                with self.service.lock:
                    deployment.resource["properties"]["provisioningState"] = "Failed"
                raise
            if generation != self.service.generation:
                server.stop()
                return
            with self.service.lock:
                previous, deployment.server = deployment.server, server
                deployment.resource["properties"]["provisioningState"] = "Succeeded"
            if previous is not None:
                previous.stop()

        operation = self.service.start_operation(work, name=f"deployment-{name}")
        return Response(
            201 if existing is None else 200, resource, self.service.lro_headers(request, operation)
        )

    def _validate_deployment(self, properties: dict[str, Any], body: dict[str, Any]) -> str:
        """Check a deployment's fields; return the model's URI."""
        compute_type = properties.get("endpointComputeType") or "Managed"
        if compute_type not in ("Managed", "Kubernetes"):
            raise bad_request(
                f"endpointComputeType {compute_type!r} is not supported for online deployments.",
                "properties.endpointComputeType",
            )
        size = properties.get("instanceType")
        if compute_type == "Managed":
            if not size:
                raise bad_request(
                    "The field instanceType is required for managed deployments.",
                    "properties.instanceType",
                )
            if not known_instance_type(str(size)):
                raise bad_request(
                    f"The instance type {size} is not a VM size managed online endpoints offer.",
                    "properties.instanceType",
                )
        capacity = (body.get("sku") or {}).get("capacity", 1)
        if not isinstance(capacity, int) or capacity < 1:
            raise bad_request("sku.capacity (instance count) must be at least 1.", "sku.capacity")
        model = properties.get("model")
        if not model:
            raise bad_request("The field model is required.", "properties.model")
        reference = asset_reference(str(model))
        if reference is None or reference[0] not in ("models", ""):
            raise bad_request(f"model {model} is not a model asset id.", "properties.model")
        from mlport_azureml.emulator.assets import Assets

        assets: Assets = self.service.families["assets"]  # type: ignore[assignment]
        try:
            version = assets.version("models", reference[1], reference[2])
        except ApiError:
            raise bad_request(
                f"The model {reference[1]}:{reference[2]} does not exist.", "properties.model"
            ) from None
        image = self._environment_image(properties.get("environmentId"))
        model_type = version["properties"].get("modelType") or "custom_model"
        code = properties.get("codeConfiguration")
        if code:
            return str(model)
        if model_type != "mlflow_model" and not is_serving_image(image):
            raise bad_request(
                "A deployment of a model that is not an MLflow model needs an environment and a "
                "scoring script (codeConfiguration), or mlport's serving image.",
                "properties.codeConfiguration",
            )
        return str(model)

    def _environment_image(self, environment: Any) -> str | None:
        if not environment:
            return None
        text = str(environment)
        if text.startswith("azureml://registries/"):
            return None
        reference = asset_reference(text)
        if reference is None:
            raise bad_request(
                f"environmentId {text} is not an environment id.", "properties.environmentId"
            )
        from mlport_azureml.emulator.assets import Assets

        assets: Assets = self.service.families["assets"]  # type: ignore[assignment]
        try:
            version = assets.version("environments", reference[1], reference[2])
        except ApiError:
            raise bad_request(
                f"The environment {reference[1]}:{reference[2]} does not exist.",
                "properties.environmentId",
            ) from None
        image = version["properties"].get("image")
        return str(image) if image else None

    def _provision(
        self, model: str, workdir: Path, name: str, properties: dict[str, Any]
    ) -> ModelServer:
        if properties.get("codeConfiguration"):
            raise ApiError(
                400,
                "UserError",
                "The emulator does not run scoring scripts (codeConfiguration); it serves MLflow "
                "models and mlport model folders with mlport's portable model server. Deploy an "
                "MLflow model, or use mlport's serving image as the environment.",
                target="properties.codeConfiguration",
            )
        where = locate(self.service, model, field="properties.model", kind_hint="models")
        model_dir = workdir / "model"
        import shutil

        shutil.rmtree(model_dir, ignore_errors=True)
        if self.service.azurite.download_prefix(where.container, where.prefix, model_dir) == 0:
            raise ApiError(400, "UserError", f"No model files are stored for {model}.")
        from mlport.errors import MlportError

        try:
            return ModelServer(name, model_dir, workdir)
        except MlportError as exc:
            raise ApiError(
                400,
                "DeploymentFailed",
                f"The model server of deployment {name} did not start: {exc}",
            ) from None

    def delete_deployment(self, request: Request) -> Response:
        """OnlineDeployments_Delete: refused while the deployment receives traffic."""
        endpoint = self._find(request.params["endpoint"])
        name = request.params["deployment"]
        with self.service.lock:
            deployment = endpoint.deployments.get(name)
            if deployment is None:
                return Response(204)
            share = endpoint.resource["properties"]["traffic"].get(name, 0)
            mirrored = endpoint.resource["properties"]["mirrorTraffic"].get(name, 0)
        if share > 0 or mirrored > 0:
            raise bad_request(
                f"The deployment {name} receives {share or mirrored}% of the endpoint's "
                f"{'traffic' if share else 'mirrored traffic'}; set it to 0 before deleting it.",
                "deploymentName",
            )
        with self.service.lock:
            deployment.resource["properties"]["provisioningState"] = "Deleting"

        def work() -> None:
            if deployment.server is not None:
                deployment.server.stop()
            with self.service.lock:
                endpoint.deployments.pop(name, None)
                endpoint.resource["properties"]["traffic"].pop(name, None)
                endpoint.resource["properties"]["mirrorTraffic"].pop(name, None)

        operation = self.service.start_operation(work, name=f"delete-deployment-{name}")
        return Response(202, None, self.service.lro_headers(request, operation))

    def get_logs(self, request: Request) -> Response:
        """OnlineDeployments_GetLogs: the model server's log."""
        endpoint = self._find(request.params["endpoint"])
        deployment = self._deployment(endpoint, request.params["deployment"])
        body = request.json_object()
        container = body.get("containerType") or "InferenceServer"
        if container not in ("InferenceServer", "StorageInitializer"):
            raise bad_request(
                "containerType must be InferenceServer or StorageInitializer.", "containerType"
            )
        tail = body.get("tail")
        if tail is not None and (not isinstance(tail, int) or tail < 0):
            raise bad_request("tail must be a non-negative number of lines.", "tail")
        if container == "StorageInitializer":
            content = "Model downloaded from the workspace's datastore.\n"
        elif deployment.server is None:
            content = ""
        else:
            content = deployment.server.logs(tail)
        return Response(200, {"content": content})

    # --- scoring -----------------------------------------------------------------------------

    def score(self, request: Request) -> Response:
        """Score: authenticate, route by header or traffic, mirror, forward to the server."""
        endpoint = self._find(request.params["endpoint"])
        self._authorize(endpoint, request)
        properties = endpoint.resource["properties"]
        pinned = request.headers.get("azureml-model-deployment")
        with self.service.lock:
            traffic = dict(properties["traffic"])
            mirror = dict(properties["mirrorTraffic"])
        if pinned:
            if pinned not in endpoint.deployments:
                raise ApiError(
                    404,
                    "DeploymentNotFound",
                    f"The deployment {pinned} does not exist on endpoint "
                    f"{endpoint.resource['name']}.",
                )
            chosen = pinned
        else:
            live = [(name, share) for name, share in traffic.items() if share > 0]
            if not live:
                raise ApiError(
                    404,
                    "NoValidDeployments",
                    "No valid deployments to route to. Please check that the endpoint has at "
                    "least one deployment with positive weight values or use a deployment "
                    "specific header to route.",
                )
            chosen = random.choices([n for n, _ in live], weights=[s for _, s in live])[0]
        deployment = self._deployment(endpoint, chosen)
        server = deployment.server
        if server is None:
            raise ApiError(
                503,
                "DeploymentNotReady",
                f"The deployment {chosen} is {deployment.resource['properties']['provisioningState']}.",
                headers={"Retry-After": "1"},
            )
        content_type = request.headers.get("content-type", "application/json")
        if not pinned:
            self._mirror(endpoint, mirror, request.body, content_type)
        status, body, answer_type = server.forward(request.body, content_type)
        return Response(
            status,
            body,
            {"azureml-model-deployment": chosen},
            content_type=answer_type or "application/json",
        )

    def _mirror(
        self, endpoint: _Endpoint, mirror: dict[str, int], body: bytes, content_type: str
    ) -> None:
        for name, share in mirror.items():
            if share <= 0 or random.uniform(0, 100) >= share:
                continue
            deployment = endpoint.deployments.get(name)
            server = deployment.server if deployment else None
            if server is None:
                continue
            self.service.run_background(
                functools.partial(server.forward, body, content_type), f"mirror-{name}"
            )
            with self.service.lock:
                endpoint.mirrored[name] = endpoint.mirrored.get(name, 0) + 1

    def mirrored_requests(self, endpoint: str) -> dict[str, int]:
        """How many requests were copied to each mirror deployment (for tests)."""
        found = self._find(endpoint)
        with self.service.lock:
            return dict(found.mirrored)

    def _authorize(self, endpoint: _Endpoint, request: Request) -> None:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        mode = endpoint.resource["properties"]["authMode"]
        if mode == "Key":
            ok = bool(token) and any(
                secrets.compare_digest(token, key) for key in endpoint.keys.values()
            )
        elif mode == "AMLToken":
            ok = token in endpoint.tokens
        else:
            ok = bool(token)
        if not ok:
            raise ApiError(
                401,
                "Unauthorized",
                "Authentication failed: send the endpoint's key (or token) as "
                "'Authorization: Bearer <key>'.",
            )
