"""Versioned assets: codes, environments, models and data (containers and versions).

Azure ML assets are immutable once created: a version PUT again may change only its
description, tags, stage and archive flag (that is how ``archive`` works); a change to what the
version points at is a 409. A version PUT creates its container when missing; the container
keeps ``latestVersion`` and ``nextVersion``. Code versions can be found by content hash and
hand out an Azurite SAS URI for their upload (``startPendingUpload``).
"""

from __future__ import annotations

import uuid
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

__all__ = ["ASSET_KINDS", "Assets"]

# URL segment -> (ARM type segment, operation id prefix, the fields fixing what a version is)
ASSET_KINDS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "codes": ("codes", "Code", ("codeUri",)),
    "environments": ("environments", "Environment", ("image", "condaFile", "build")),
    "models": ("models", "Model", ("modelUri", "modelType")),
    "data": ("data", "Data", ("dataUri", "dataType")),
}
_MUTABLE = ("description", "tags", "stage", "isArchived", "properties")
# What the service fills in on a new version when the request leaves it out.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "codes": {},
    "environments": {
        "osType": "Linux",
        "environmentType": "UserCreated",
        "autoRebuild": "Disabled",
    },
    "models": {"flavors": {}, "jobName": None, "stage": "Development"},
    "data": {},
}


class Assets:
    """Containers and versions of every asset kind."""

    def __init__(self, service: Service) -> None:
        self.service = service
        for segment, (_, prefix, _) in ASSET_KINDS.items():
            self._routes(segment, prefix)
        service.route(
            "POST",
            "{ws}/codes/{name}/versions/{version}/startPendingUpload",
            "CodeVersions_CreateOrGetStartPendingUpload",
            self.start_pending_upload,
        )
        service.add_family(self, "assets")

    def reset(self) -> None:
        """Nothing runs here."""

    def close(self) -> None:
        """Nothing runs here."""

    def _routes(self, segment: str, prefix: str) -> None:
        s = self.service

        def bind(fn: Any) -> Any:
            return lambda request: fn(segment, request)

        s.route("GET", f"{{ws}}/{segment}", f"{prefix}Containers_List", bind(self.list_containers))
        s.route(
            "GET", f"{{ws}}/{segment}/{{name}}", f"{prefix}Containers_Get", bind(self.get_container)
        )
        s.route(
            "PUT",
            f"{{ws}}/{segment}/{{name}}",
            f"{prefix}Containers_CreateOrUpdate",
            bind(self.put_container),
        )
        s.route(
            "DELETE",
            f"{{ws}}/{segment}/{{name}}",
            f"{prefix}Containers_Delete",
            bind(self.delete_container),
        )
        s.route(
            "GET",
            f"{{ws}}/{segment}/{{name}}/versions",
            f"{prefix}Versions_List",
            bind(self.list_versions),
        )
        s.route(
            "GET",
            f"{{ws}}/{segment}/{{name}}/versions/{{version}}",
            f"{prefix}Versions_Get",
            bind(self.get_version),
        )
        s.route(
            "PUT",
            f"{{ws}}/{segment}/{{name}}/versions/{{version}}",
            f"{prefix}Versions_CreateOrUpdate",
            bind(self.put_version),
        )
        s.route(
            "DELETE",
            f"{{ws}}/{segment}/{{name}}/versions/{{version}}",
            f"{prefix}Versions_Delete",
            bind(self.delete_version),
        )

    # --- state -------------------------------------------------------------------------------

    def _table(self, segment: str) -> dict[str, dict[str, Any]]:
        # name -> {"container": resource, "versions": {version: resource}}
        return self.service.table(f"assets:{segment}")

    def _entry(self, segment: str, name: str) -> dict[str, Any]:
        with self.service.lock:
            table = self._table(segment)
            for key, entry in table.items():
                if key.lower() == name.lower():
                    return entry
        raise not_found(f"{PROVIDER}/workspaces/{segment}", name)

    def version(self, segment: str, name: str, version: str) -> dict[str, Any]:
        """An asset version's resource.

        Raises:
            ApiError: 404 when the container or version does not exist.
        """
        entry = self._entry(segment, name)
        with self.service.lock:
            found = entry["versions"].get(version)
        if found is None:
            raise not_found(f"{PROVIDER}/workspaces/{segment}/versions", f"{name}:{version}")
        return dict(found)

    def latest(self, segment: str, name: str) -> dict[str, Any]:
        """The newest non-archived version of an asset.

        Raises:
            ApiError: 404 when there is none.
        """
        entry = self._entry(segment, name)
        with self.service.lock:
            versions = [
                v for v in entry["versions"].values() if not v["properties"].get("isArchived")
            ]
        if not versions:
            raise not_found(f"{PROVIDER}/workspaces/{segment}", name)
        return dict(versions[-1])

    # --- containers --------------------------------------------------------------------------

    def _container(
        self, segment: str, name: str, previous: dict[str, Any] | None
    ) -> dict[str, Any]:
        return {
            "id": self.service.arm_id(segment, name),
            "name": name,
            "type": f"{PROVIDER}/workspaces/{ASSET_KINDS[segment][0]}",
            "systemData": system_data(previous["systemData"] if previous else None),
            "properties": {
                "description": None,
                "tags": {},
                "properties": {},
                "isArchived": False,
                "latestVersion": None,
                "nextVersion": "1",
                "provisioningState": "Succeeded",
                **({} if previous is None else previous["properties"]),
            },
        }

    def list_containers(self, segment: str, request: Request) -> Response:
        """*Containers_List (``listViewType`` filters archived ones)."""
        view = request.query.get("listViewType", "ActiveOnly")
        with self.service.lock:
            items = [dict(e["container"]) for e in self._table(segment).values()]
        items = _by_view(items, view)
        return page(request, sorted(items, key=lambda c: c["name"]))

    def get_container(self, segment: str, request: Request) -> Response:
        """*Containers_Get."""
        return Response(200, self._entry(segment, request.params["name"])["container"])

    def put_container(self, segment: str, request: Request) -> Response:
        """*Containers_CreateOrUpdate (description, tags, isArchived)."""
        name = request.params["name"]
        check_name("asset", name)
        body = request.json_object()
        properties = body.get("properties") or {}
        if not isinstance(properties, dict):
            raise bad_request("properties must be an object.", "properties")
        with self.service.lock:
            table = self._table(segment)
            entry = table.get(name)
            previous = entry["container"] if entry else None
            container = self._container(segment, name, previous)
            for key in ("description", "tags", "isArchived", "properties"):
                if key in properties:
                    container["properties"][key] = properties[key]
            if entry is None:
                table[name] = {"container": container, "versions": {}}
            else:
                entry["container"] = container
        return Response(201 if previous is None else 200, container)

    def delete_container(self, segment: str, request: Request) -> Response:
        """*Containers_Delete."""
        with self.service.lock:
            existed = self._table(segment).pop(request.params["name"], None)
        return Response(200 if existed else 204)

    # --- versions ----------------------------------------------------------------------------

    def list_versions(self, segment: str, request: Request) -> Response:
        """*Versions_List: ``listViewType``, ``hash`` (codes), ``tags``, ``$orderBy``."""
        name = request.params["name"]
        with self.service.lock:
            entry = self._table(segment).get(name)
            items = [dict(v) for v in entry["versions"].values()] if entry else []
        items = _by_view(items, request.query.get("listViewType", "ActiveOnly"))
        wanted_hash = request.query.get("hash")
        if wanted_hash:
            items = [
                v
                for v in items
                if (v["properties"].get("properties") or {}).get("hash_sha256") == wanted_hash
            ]
        tags = request.query.get("tags")
        if tags:
            for condition in tags.split(","):
                key, _, value = condition.partition("=")
                items = [
                    v
                    for v in items
                    if key in (v["properties"].get("tags") or {})
                    and (not value or v["properties"]["tags"][key] == value)
                ]
        order = request.query.get("$orderBy", "")
        items.sort(key=lambda v: v["systemData"]["createdAt"], reverse="desc" in order.lower())
        return page(request, items)

    def get_version(self, segment: str, request: Request) -> Response:
        """*Versions_Get."""
        return Response(
            200, self.version(segment, request.params["name"], request.params["version"])
        )

    def put_version(self, segment: str, request: Request) -> Response:
        """*Versions_CreateOrUpdate: creates, or changes the mutable fields of, a version."""
        name, version = request.params["name"], request.params["version"]
        check_name("asset", name)
        if not version or len(version) > 255 or "/" in version:
            raise bad_request(f"The version '{version}' is invalid.", "version")
        body = request.json_object()
        properties = body.get("properties")
        if not isinstance(properties, dict):
            raise bad_request("The field properties is required.", "properties")
        self._validate(segment, properties)
        fixed = ASSET_KINDS[segment][2]
        with self.service.lock:
            table = self._table(segment)
            entry = table.get(name)
            if entry is None:
                entry = {"container": self._container(segment, name, None), "versions": {}}
                table[name] = entry
            previous = entry["versions"].get(version)
            if previous is not None:
                changed = [
                    key
                    for key in fixed
                    if key in properties and properties.get(key) != previous["properties"].get(key)
                ]
                if changed:
                    raise conflict(
                        f"{ASSET_KINDS[segment][1]} {name}:{version} already exists and its "
                        f"{', '.join(changed)} cannot be changed; create a new version instead.",
                        code="UserError",
                    )
                merged = dict(previous["properties"])
                for key in _MUTABLE:
                    if key in properties:
                        merged[key] = properties[key]
                resource = {
                    **previous,
                    "systemData": system_data(previous["systemData"]),
                    "properties": merged,
                }
            else:
                resource = {
                    "id": self.service.arm_id(segment, name, "versions", version),
                    "name": version,
                    "type": f"{PROVIDER}/workspaces/{ASSET_KINDS[segment][0]}/versions",
                    "systemData": system_data(),
                    "properties": {
                        "description": None,
                        "tags": {},
                        "properties": {},
                        "isArchived": False,
                        "isAnonymous": False,
                        "provisioningState": "Succeeded",
                        **_DEFAULTS[segment],
                        **{k: v for k, v in properties.items() if v is not None},
                    },
                }
            entry["versions"][version] = resource
            container = entry["container"]["properties"]
            container["latestVersion"] = version
            numeric = [int(v) for v in entry["versions"] if v.isdigit()]
            container["nextVersion"] = str(max(numeric) + 1) if numeric else "1"
        return Response(200 if previous else 201, resource)

    def _validate(self, segment: str, properties: dict[str, Any]) -> None:
        if segment == "models" and not properties.get("modelUri"):
            raise bad_request("The field modelUri is required.", "properties.modelUri")
        if segment == "codes" and not properties.get("codeUri"):
            raise bad_request("The field codeUri is required.", "properties.codeUri")
        if segment == "data" and not properties.get("dataUri"):
            raise bad_request("The field dataUri is required.", "properties.dataUri")
        if segment == "environments" and not (properties.get("image") or properties.get("build")):
            raise bad_request(
                "An environment needs an image or a build context.", "properties.image"
            )

    def delete_version(self, segment: str, request: Request) -> Response:
        """*Versions_Delete."""
        name, version = request.params["name"], request.params["version"]
        with self.service.lock:
            entry = self._table(segment).get(name)
            existed = entry["versions"].pop(version, None) if entry else None
        return Response(200 if existed else 204)

    # --- uploads -----------------------------------------------------------------------------

    def start_pending_upload(self, request: Request) -> Response:
        """CodeVersions_CreateOrGetStartPendingUpload: a SAS URI on Azurite for the upload."""
        body = request.json_object()
        kind = body.get("pendingUploadType", "TemporaryBlobReference")
        if kind not in ("TemporaryBlobReference", "None"):
            raise bad_request(
                f"pendingUploadType must be TemporaryBlobReference, got {kind!r}.",
                "pendingUploadType",
            )
        azurite = self.service.azurite
        container = self.service.blob_container
        azurite.container(container)
        return Response(
            200,
            {
                "pendingUploadId": str(uuid.uuid4()),
                "pendingUploadType": "TemporaryBlobReference",
                "blobReferenceForConsumption": {
                    "blobUri": f"{azurite.account_url}/{container}",
                    "storageAccountArmId": (
                        f"/subscriptions/{self.service.settings.subscription_id}/resourceGroups/"
                        f"{self.service.settings.resource_group}/providers/Microsoft.Storage/"
                        f"storageAccounts/{azurite.account_name}"
                    ),
                    "credential": {
                        "credentialType": "SAS",
                        "sasUri": azurite.container_sas_url(container),
                    },
                },
            },
        )


def _by_view(items: list[dict[str, Any]], view: str) -> list[dict[str, Any]]:
    if view == "All":
        return items
    archived = view == "ArchivedOnly"
    return [i for i in items if bool(i["properties"].get("isArchived")) == archived]


def raise_unknown(kind: str, name: str) -> ApiError:
    """A 404 for an asset reference that resolves to nothing."""
    return not_found(f"{PROVIDER}/workspaces/{kind}", name)
