"""The workspace itself and its datastores (the default ``workspaceblobstore`` lives on Azurite)."""

from __future__ import annotations

from typing import Any

from mlport_azureml.emulator._arm import PROVIDER, check_name, page, system_data
from mlport_azureml.emulator._http import ApiError, Request, Response, bad_request, not_found
from mlport_azureml.emulator._service import Service

__all__ = ["Workspaces"]

DEFAULT_DATASTORE = "workspaceblobstore"
ARTIFACT_DATASTORE = "workspaceartifactstore"
_DATASTORE_TYPES = ("AzureBlob", "AzureDataLakeGen2", "AzureFile", "AzureDataLakeGen1")


class Workspaces:
    """Workspace GET and the datastores CRUD."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self._created = system_data()
        service.route("GET", "{ws}", "Workspaces_Get", self.get_workspace)
        service.route("GET", "{ws}/datastores", "Datastores_List", self.list_datastores)
        service.route("GET", "{ws}/datastores/{name}", "Datastores_Get", self.get_datastore)
        service.route(
            "PUT", "{ws}/datastores/{name}", "Datastores_CreateOrUpdate", self.put_datastore
        )
        service.route(
            "DELETE", "{ws}/datastores/{name}", "Datastores_Delete", self.delete_datastore
        )
        service.route(
            "POST", "{ws}/datastores/{name}/listSecrets", "Datastores_ListSecrets", self.secrets
        )
        service.add_family(self, "workspace")

    def reset(self) -> None:
        """Nothing runs here; state is cleared by the service."""

    def close(self) -> None:
        """Nothing runs here."""

    # --- workspace ---------------------------------------------------------------------------

    def workspace(self, base_url: str) -> dict[str, Any]:
        """The workspace resource."""
        s = self.service.settings
        storage = (
            f"/subscriptions/{s.subscription_id}/resourceGroups/{s.resource_group}"
            "/providers/Microsoft.Storage/storageAccounts/devstoreaccount1"
        )
        return {
            "id": self.service.workspace_path,
            "name": s.workspace_name,
            "type": f"{PROVIDER}/workspaces",
            "location": s.location,
            "kind": "Default",
            "tags": {},
            "identity": {"type": "SystemAssigned"},
            "sku": {"name": "Basic", "tier": "Basic"},
            "systemData": self._created,
            "properties": {
                "workspaceId": self.service.workspace_id,
                "friendlyName": s.workspace_name,
                "description": "Local Azure ML workspace (mlport emulator)",
                "provisioningState": "Succeeded",
                "storageAccount": storage,
                "keyVault": storage.replace(
                    "Microsoft.Storage/storageAccounts", "Microsoft.KeyVault/vaults"
                ),
                "applicationInsights": None,
                "containerRegistry": None,
                "discoveryUrl": f"{base_url}/discovery",
                "mlFlowTrackingUri": None,
                "hbiWorkspace": False,
                "publicNetworkAccess": "Enabled",
                "v1LegacyMode": False,
                "creationTime": self._created["createdAt"],
            },
        }

    def get_workspace(self, request: Request) -> Response:
        """Workspaces_Get."""
        return Response(200, self.workspace(request.base_url))

    # --- datastores --------------------------------------------------------------------------

    def _builtin(self, name: str) -> dict[str, Any]:
        service = self.service
        default = name == DEFAULT_DATASTORE
        return {
            "id": service.arm_id("datastores", name),
            "name": name,
            "type": f"{PROVIDER}/workspaces/datastores",
            "systemData": self._created,
            "properties": {
                "datastoreType": "AzureBlob",
                "accountName": service.azurite.account_name,
                "containerName": service.blob_container if default else service.artifact_container,
                "endpoint": "core.windows.net",
                "protocol": "https",
                "credentials": {"credentialsType": "AccountKey"},
                "isDefault": default,
                "serviceDataAccessAuthIdentity": "None",
                "description": "Blob storage on Azurite",
                "tags": {},
                "properties": {},
            },
        }

    def datastores(self) -> dict[str, dict[str, Any]]:
        """Name -> datastore, the default one included."""
        table = self.service.table("datastores")
        with self.service.lock:
            for name in (DEFAULT_DATASTORE, ARTIFACT_DATASTORE):
                if name not in table:
                    table[name] = self._builtin(name)
            return dict(table)

    def find(self, name: str) -> dict[str, Any]:
        """A datastore by name.

        Raises:
            ApiError: 404 when there is none.
        """
        for key, value in self.datastores().items():
            if key.lower() == name.lower():
                return value
        raise not_found(f"{PROVIDER}/workspaces/datastores", name)

    def list_datastores(self, request: Request) -> Response:
        """Datastores_List (``isDefault`` filters)."""
        items = sorted(self.datastores().values(), key=lambda d: d["name"])
        wanted = request.query.get("isDefault")
        if wanted is not None:
            flag = wanted.lower() == "true"
            items = [d for d in items if bool(d["properties"].get("isDefault")) == flag]
        return page(request, items)

    def get_datastore(self, request: Request) -> Response:
        """Datastores_Get."""
        return Response(200, self.find(request.params["name"]))

    def put_datastore(self, request: Request) -> Response:
        """Datastores_CreateOrUpdate: any type is recorded; only blob datastores hold data."""
        name = request.params["name"]
        check_name("asset", name)
        body = request.json_object()
        properties = body.get("properties")
        if not isinstance(properties, dict):
            raise bad_request("The field properties is required.", "properties")
        kind = properties.get("datastoreType")
        if kind not in _DATASTORE_TYPES:
            raise bad_request(
                f"datastoreType must be one of {', '.join(_DATASTORE_TYPES)}, got {kind!r}.",
                "properties.datastoreType",
            )
        if name in (DEFAULT_DATASTORE, ARTIFACT_DATASTORE):
            raise ApiError(409, "Conflict", f"The workspace's datastore {name} cannot be replaced.")
        credentials = dict(properties.get("credentials") or {"credentialsType": "None"})
        credentials.pop("secrets", None)
        self.datastores()
        table = self.service.table("datastores")
        with self.service.lock:
            previous = table.get(name)
            resource = {
                "id": self.service.arm_id("datastores", name),
                "name": name,
                "type": f"{PROVIDER}/workspaces/datastores",
                "systemData": system_data(previous["systemData"] if previous else None),
                "properties": {**properties, "credentials": credentials, "isDefault": False},
            }
            table[name] = resource
        return Response(200 if previous else 201, resource)

    def delete_datastore(self, request: Request) -> Response:
        """Datastores_Delete (204 when there was none, as ARM answers)."""
        name = request.params["name"]
        if name in (DEFAULT_DATASTORE, ARTIFACT_DATASTORE):
            raise ApiError(400, "UserError", f"The workspace's datastore {name} cannot be deleted.")
        table = self.service.table("datastores")
        with self.service.lock:
            existed = table.pop(name, None)
        return Response(200 if existed else 204)

    def secrets(self, request: Request) -> Response:
        """Datastores_ListSecrets: the Azurite account key for blob datastores."""
        datastore = self.find(request.params["name"])
        if datastore["name"] not in (DEFAULT_DATASTORE, ARTIFACT_DATASTORE):
            return Response(200, {"secretsType": "None"})
        return Response(200, {"secretsType": "AccountKey", "key": self.service.azurite.account_key})
