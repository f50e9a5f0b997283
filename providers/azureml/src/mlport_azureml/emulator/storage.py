"""Where an Azure ML URI's data lives on Azurite: datastore URIs, blob URLs and asset ids."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from mlport_azureml.emulator._http import bad_request

if TYPE_CHECKING:
    from mlport_azureml.emulator._service import Service

__all__ = ["BlobLocation", "asset_reference", "locate"]

_DATASTORE_URI = re.compile(
    r"^azureml://(?:subscriptions/[^/]+/resource[gG]roups/[^/]+/(?:providers/"
    r"Microsoft\.MachineLearningServices/)?workspaces/[^/]+/)?datastores/(?P<datastore>[^/]+)"
    r"/(?:paths/)?(?P<path>.*)$",
    re.IGNORECASE,
)
_ASSET_ID = re.compile(
    r"^(?:azureml:)?/?subscriptions/[^/]+/resource[gG]roups/[^/]+/providers/"
    r"Microsoft\.MachineLearningServices/workspaces/[^/]+/(?P<kind>models|data|codes|environments)"
    r"/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$",
    re.IGNORECASE,
)
_SHORT_ASSET = re.compile(r"^azureml:(?P<name>[^:/]+):(?P<version>[^:/]+)$")
_JOB_OUTPUT = re.compile(r"^azureml://jobs/(?P<job>[^/]+)/outputs/(?P<output>[^/]+)(?P<path>/.*)?$")


@dataclass(frozen=True)
class BlobLocation:
    """A prefix of a container on Azurite.

    Attributes:
        container: The blob container.
        prefix: The path inside it, without leading or trailing ``/``.
    """

    container: str
    prefix: str


def asset_reference(uri: str) -> tuple[str, str, str] | None:
    """``(kind, name, version)`` of an asset ARM id (or ``azureml:name:version``, kind unknown:
    ``""``); None for anything else."""
    found = _ASSET_ID.match(uri)
    if found:
        return found["kind"].lower(), found["name"], found["version"]
    short = _SHORT_ASSET.match(uri)
    if short:
        return "", short["name"], short["version"]
    return None


def locate(service: Service, uri: str, *, field: str, kind_hint: str = "data") -> BlobLocation:
    """Find the blobs a URI names.

    Args:
        service: The workspace (datastores, assets, Azurite).
        uri: A datastore URI (``azureml://datastores/<name>/paths/<path>``, long form too), an
            Azurite or ``*.blob.*`` URL, or a model/data asset id.
        field: The request field the URI came from, named in errors.
        kind_hint: The asset kind of an ``azureml:name:version`` reference.

    Raises:
        ApiError: 400 naming ``field`` when the URI points nowhere this workspace stores data.
    """
    reference = asset_reference(uri)
    if reference is not None:
        from mlport_azureml.emulator.assets import Assets

        kind, name, version = reference
        kind = kind or kind_hint
        assets: Assets = service.families["assets"]  # type: ignore[assignment]
        if kind not in ("models", "data", "codes"):
            raise bad_request(f"{uri} is a {kind} asset, which holds no files.", field)
        try:
            resource = assets.version(kind, name, version)
        except Exception:
            raise bad_request(f"The {kind} asset {name}:{version} does not exist.", field) from None
        key = {"models": "modelUri", "data": "dataUri", "codes": "codeUri"}[kind]
        return locate(service, str(resource["properties"][key]), field=field)
    output = _JOB_OUTPUT.match(uri)
    if output is not None:
        jobs = service.families["jobs"]
        try:
            spec = jobs.output_uri(output["job"], output["output"])  # type: ignore[attr-defined]
        except Exception:
            raise bad_request(
                f"{uri} names an output of a job that does not exist or has no such output.",
                field,
            ) from None
        inner = locate(service, spec, field=field)
        extra = (output["path"] or "").strip("/")
        return BlobLocation(inner.container, f"{inner.prefix}/{extra}".strip("/"))
    found = _DATASTORE_URI.match(uri)
    if found:
        from mlport_azureml.emulator.workspace import Workspaces

        workspaces: Workspaces = service.families["workspace"]  # type: ignore[assignment]
        try:
            datastore = workspaces.find(found["datastore"])
        except Exception:
            raise bad_request(
                f"The datastore {found['datastore']} in {uri} does not exist.", field
            ) from None
        properties = datastore["properties"]
        if (
            properties.get("datastoreType") != "AzureBlob"
            or properties.get("accountName") != service.azurite.account_name
        ):
            raise bad_request(
                f"The datastore {found['datastore']} is not on the emulator's storage account; "
                "only blob datastores on Azurite hold data here.",
                field,
            )
        return BlobLocation(str(properties["containerName"]), unquote(found["path"]).strip("/"))
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https"):
        segments = [unquote(s) for s in parts.path.split("/") if s]
        host = parts.hostname or ""
        if host.startswith(f"{service.azurite.account_name}.blob."):
            if segments:
                return BlobLocation(segments[0], "/".join(segments[1:]))
        elif len(segments) >= 2 and segments[0] == service.azurite.account_name:
            return BlobLocation(segments[1], "/".join(segments[2:]))
    raise bad_request(
        f"{uri} is not a location this workspace can read: use a datastore URI "
        "(azureml://datastores/<name>/paths/<path>), an asset id, or a blob URL on its storage.",
        field,
    )
