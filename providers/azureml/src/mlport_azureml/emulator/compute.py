"""Compute: AmlCompute clusters (training and batch targets) and compute instances.

Nothing is provisioned: a cluster is a record that jobs and batch deployments may target (they
run on this machine), and a compute instance moves through its states (Creating -> Running,
Stopping -> Stopped, Starting -> Running, Restarting -> Running, Deleting) as long-running
operations.
"""

from __future__ import annotations

import functools
from typing import Any

from mlport_azureml.emulator._arm import PROVIDER, check_name, page, system_data
from mlport_azureml.emulator._http import (
    ApiError,
    Request,
    Response,
    bad_request,
    conflict,
    not_found,
)
from mlport_azureml.emulator._service import Service
from mlport_azureml.emulator.jobs import known_instance_type

__all__ = ["Computes"]

_TYPES = ("AmlCompute", "ComputeInstance")
_ACTIONS = {
    "start": ("Starting", "Running", ("Stopped",)),
    "stop": ("Stopping", "Stopped", ("Running",)),
    "restart": ("Restarting", "Running", ("Running",)),
}


class Computes:
    """Compute targets."""

    def __init__(self, service: Service) -> None:
        self.service = service
        c = "{ws}/computes/{compute}"
        service.route("GET", "{ws}/computes", "Compute_List", self.list)
        service.route("GET", c, "Compute_Get", self.get)
        service.route("PUT", c, "Compute_CreateOrUpdate", self.put)
        service.route("PATCH", c, "Compute_Update", self.patch)
        service.route("DELETE", c, "Compute_Delete", self.delete)
        service.route("POST", c + "/listNodes", "Compute_ListNodes", self.list_nodes)
        service.route("POST", c + "/listKeys", "Compute_ListKeys", self.list_keys)
        for action in _ACTIONS:
            service.route(
                "POST",
                f"{c}/{action}",
                f"Compute_{action.capitalize()}",
                functools.partial(self.act, action),
            )
        service.add_family(self, "compute")

    def reset(self) -> None:
        """Nothing runs here."""

    def close(self) -> None:
        """Nothing runs here."""

    def _table(self) -> dict[str, dict[str, Any]]:
        return self.service.table("compute")

    def _find(self, name: str) -> dict[str, Any]:
        with self.service.lock:
            for key, resource in self._table().items():
                if key.lower() == name.lower():
                    return resource
        raise not_found(f"{PROVIDER}/workspaces/computes", name)

    def require_target(self, name: str, target: str = "properties.computeId") -> None:
        """Check that a job or batch deployment may run on ``name``.

        Raises:
            ApiError: 400 naming ``target`` when the compute does not exist, failed, or is a
                compute instance that is not running.
        """
        try:
            resource = self._find(name)
        except ApiError:
            raise bad_request(
                f"The compute {name} does not exist in this workspace.", target
            ) from None
        properties = resource["properties"]
        if properties["provisioningState"] == "Failed":
            raise bad_request(f"The compute {name} failed to provision.", target)
        if properties["computeType"] == "ComputeInstance":
            state = properties["properties"].get("state")
            if state != "Running":
                raise bad_request(
                    f"The compute instance {name} is {state}; start it first.", target
                )

    def list(self, request: Request) -> Response:
        """Compute_List."""
        with self.service.lock:
            items = list(self._table().values())
        return page(request, sorted(items, key=lambda c: c["name"]))

    def get(self, request: Request) -> Response:
        """Compute_Get."""
        return Response(200, self._find(request.params["compute"]))

    def put(self, request: Request) -> Response:
        """Compute_CreateOrUpdate: a long-running operation."""
        name = request.params["compute"]
        check_name("compute", name, "computeName")
        body = request.json_object()
        properties = body.get("properties")
        if not isinstance(properties, dict):
            raise bad_request("The field properties is required.", "properties")
        kind = properties.get("computeType")
        if kind not in _TYPES:
            raise bad_request(
                f"computeType must be one of {', '.join(_TYPES)}, got {kind!r}.",
                "properties.computeType",
            )
        inner = dict(properties.get("properties") or {})
        size = inner.get("vmSize")
        if size and not known_instance_type(str(size)):
            raise bad_request(f"The VM size {size} is not offered.", "properties.properties.vmSize")
        if kind == "AmlCompute":
            scale = inner.get("scaleSettings") or {}
            low, high = scale.get("minNodeCount", 0), scale.get("maxNodeCount", 1)
            if not isinstance(high, int) or high < 1 or not isinstance(low, int) or low < 0:
                raise bad_request(
                    "scaleSettings needs maxNodeCount >= 1 and minNodeCount >= 0.",
                    "properties.properties.scaleSettings",
                )
            if low > high:
                raise bad_request(
                    "minNodeCount cannot exceed maxNodeCount.",
                    "properties.properties.scaleSettings",
                )
        with self.service.lock:
            existing = self._table().get(name)
        if existing is not None:
            if existing["properties"]["computeType"] != kind:
                raise conflict(
                    f"A compute named {name} of type {existing['properties']['computeType']} "
                    "already exists.",
                    code="Conflict",
                )
            if kind == "ComputeInstance":
                raise conflict(f"The compute instance {name} already exists.", code="Conflict")
        if kind == "ComputeInstance":
            inner["state"] = "Creating"
        else:
            inner.setdefault("vmPriority", "Dedicated")
            inner["allocationState"] = "Steady"
            inner["currentNodeCount"] = 0
        resource: dict[str, Any] = {
            "id": self.service.arm_id("computes", name),
            "name": name,
            "type": f"{PROVIDER}/workspaces/computes",
            "location": body.get("location") or self.service.settings.location,
            "tags": body.get("tags") or {},
            "identity": body.get("identity"),
            "systemData": system_data(existing["systemData"] if existing else None),
            "properties": {
                **{k: v for k, v in properties.items() if k != "properties"},
                "properties": inner,
                "provisioningState": "Creating" if existing is None else "Updating",
                "computeLocation": self.service.settings.location,
                "isAttachedCompute": False,
                "disableLocalAuth": True,
            },
        }
        with self.service.lock:
            self._table()[name] = resource

        def work() -> None:
            with self.service.lock:
                resource["properties"]["provisioningState"] = "Succeeded"
                if kind == "ComputeInstance":
                    resource["properties"]["properties"]["state"] = "Running"

        operation = self.service.start_operation(work, name=f"compute-{name}")
        return Response(
            201 if existing is None else 200, resource, self.service.lro_headers(request, operation)
        )

    def patch(self, request: Request) -> Response:
        """Compute_Update: a cluster's scale settings."""
        resource = self._find(request.params["compute"])
        body = request.json_object()
        scale = ((body.get("properties") or {}).get("properties") or {}).get("scaleSettings")
        if scale is not None:
            with self.service.lock:
                resource["properties"]["properties"]["scaleSettings"] = scale
        return Response(200, resource)

    def act(self, action: str, request: Request) -> Response:
        """Compute_Start / Compute_Stop / Compute_Restart of a compute instance."""
        resource = self._find(request.params["compute"])
        properties = resource["properties"]
        if properties["computeType"] != "ComputeInstance":
            raise bad_request(f"Only compute instances can {action}.", "computeName")
        during, after, allowed = _ACTIONS[action]
        state = properties["properties"].get("state")
        if state not in allowed:
            raise conflict(
                f"The compute instance {resource['name']} is {state}; it cannot {action} now.",
                code="Conflict",
            )
        with self.service.lock:
            properties["properties"]["state"] = during

        def work() -> None:
            with self.service.lock:
                properties["properties"]["state"] = after

        operation = self.service.start_operation(work, name=f"compute-{action}")
        headers = self.service.lro_headers(request, operation)
        headers.pop("Azure-AsyncOperation", None)
        return Response(202, None, headers)

    def delete(self, request: Request) -> Response:
        """Compute_Delete (``underlyingResourceAction`` Delete or Detach)."""
        action = request.query.get("underlyingResourceAction", "Delete")
        if action not in ("Delete", "Detach"):
            raise bad_request(
                "underlyingResourceAction must be Delete or Detach.", "underlyingResourceAction"
            )
        try:
            resource = self._find(request.params["compute"])
        except ApiError:
            return Response(204)
        with self.service.lock:
            resource["properties"]["provisioningState"] = "Deleting"
            if resource["properties"]["computeType"] == "ComputeInstance":
                resource["properties"]["properties"]["state"] = "Deleting"

        def work() -> None:
            with self.service.lock:
                self._table().pop(resource["name"], None)

        operation = self.service.start_operation(work, name="compute-delete")
        return Response(202, None, self.service.lro_headers(request, operation))

    def list_nodes(self, request: Request) -> Response:
        """Compute_ListNodes: jobs run on this machine, so a cluster has no nodes."""
        self._find(request.params["compute"])
        return Response(200, {"nodes": []})

    def list_keys(self, request: Request) -> Response:
        """Compute_ListKeys: nothing to list for these compute types."""
        self._find(request.params["compute"])
        return Response(200, {"computeType": "ComputeInstance"})
