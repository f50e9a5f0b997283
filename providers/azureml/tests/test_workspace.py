"""Workspace and datastores through MLClient."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from mlport_azureml.emulator import AzureMLEmulator

from mlport.testing.emulator import Emulator

from .conftest import make_client


def test_emulator_satisfies_the_shared_protocol(emulator: AzureMLEmulator) -> None:
    assert isinstance(emulator, Emulator)
    assert emulator.provider == "azureml"
    assert emulator.env["REQUESTS_CA_BUNDLE"] == emulator.env["SSL_CERT_FILE"]
    kwargs = emulator.connect_kwargs
    assert kwargs["workspace_name"] == emulator.workspace_name
    assert kwargs["cloud_metadata"]["resource_manager"] == emulator.base_url + "/"
    assert "token" not in repr(emulator.credential)


def test_workspace_get_has_arm_id_location_and_system_data(
    ml: Any, emulator: AzureMLEmulator
) -> None:
    workspace = ml.workspaces.get(emulator.workspace_name)
    assert workspace.id == (
        f"/subscriptions/{emulator.subscription_id}/resourceGroups/{emulator.resource_group}"
        f"/providers/Microsoft.MachineLearningServices/workspaces/{emulator.workspace_name}"
    )
    assert workspace.location == emulator.settings.location


def test_unknown_workspace_is_resource_not_found(emulator: AzureMLEmulator) -> None:
    from azure.ai.ml import MLClient

    other = MLClient(
        emulator.credential,
        emulator.subscription_id,
        emulator.resource_group,
        "no-such-workspace",
        **emulator.client_kwargs,
    )
    with pytest.raises(ResourceNotFoundError, match="no-such-workspace"):
        other.workspaces.get("no-such-workspace")


def test_default_datastore_is_blob_storage_on_azurite(ml: Any, emulator: AzureMLEmulator) -> None:
    default = ml.datastores.get_default()
    assert default.name == "workspaceblobstore"
    assert default.account_name == emulator.azurite.account_name
    names = {d.name for d in ml.datastores.list()}
    assert {"workspaceblobstore", "workspaceartifactstore"} <= names
    secrets = ml.datastores._list_secrets(name="workspaceblobstore")
    assert secrets.key == emulator.azurite.account_key


def test_missing_datastore_is_resource_not_found(ml: Any) -> None:
    with pytest.raises(ResourceNotFoundError):
        ml.datastores.get("nothere")


def test_client_without_retries_is_separate(emulator: AzureMLEmulator) -> None:
    client = make_client(emulator, retry_total=0)
    assert client.datastores.get_default().name == "workspaceblobstore"
