"""Workbench instances (notebooks v2) through google-cloud-notebooks."""

from __future__ import annotations

from typing import Any

import pytest
from google.api_core import exceptions
from mlport_vertex.emulator import Delays, VertexEmulator

ZONE = "us-central1-a"


@pytest.fixture
def notebooks(emu: VertexEmulator) -> Any:
    from google.cloud import notebooks_v2

    return notebooks_v2.NotebookServiceClient(
        client_options={"api_endpoint": emu.api_endpoint}, credentials=emu.credentials
    )


@pytest.fixture
def zone(emu: VertexEmulator) -> str:
    return f"projects/{emu.project}/locations/{ZONE}"


def test_create_stop_start_delete(notebooks: Any, zone: str, emu: VertexEmulator) -> None:
    instance = notebooks.create_instance(
        parent=zone,
        instance={"gce_setup": {"machine_type": "n1-standard-4"}, "labels": {"team": "ml"}},
        instance_id="dev-box",
    ).result(timeout=10)
    assert instance.name == f"projects/{emu.project_number}/locations/{ZONE}/instances/dev-box"
    assert instance.state.name == "ACTIVE"
    assert instance.proxy_uri

    with pytest.raises(exceptions.FailedPrecondition):
        notebooks.start_instance(request={"name": instance.name})
    stopped = notebooks.stop_instance(request={"name": instance.name}).result(timeout=10)
    assert stopped.state.name == "STOPPED"
    assert notebooks.get_instance(name=instance.name).state.name == "STOPPED"
    with pytest.raises(exceptions.FailedPrecondition):
        notebooks.stop_instance(request={"name": instance.name})
    started = notebooks.start_instance(request={"name": instance.name}).result(timeout=10)
    assert started.state.name == "ACTIVE"
    assert [i.name for i in notebooks.list_instances(parent=zone)] == [instance.name]

    notebooks.delete_instance(name=instance.name).result(timeout=10)
    with pytest.raises(exceptions.NotFound):
        notebooks.get_instance(name=instance.name)


def test_validation(notebooks: Any, zone: str) -> None:
    with pytest.raises(exceptions.InvalidArgument, match="instance_id"):
        notebooks.create_instance(parent=zone, instance={}, instance_id="Bad_Name")
    with pytest.raises(exceptions.InvalidArgument, match="Machine type"):
        notebooks.create_instance(
            parent=zone, instance={"gce_setup": {"machine_type": "q9-huge"}}, instance_id="x1"
        )
    notebooks.create_instance(parent=zone, instance={}, instance_id="twice").result(timeout=10)
    with pytest.raises(exceptions.AlreadyExists):
        notebooks.create_instance(parent=zone, instance={}, instance_id="twice")


def test_provisioning_is_seen_with_a_state_delay(
    notebooks: Any, zone: str, emu: VertexEmulator
) -> None:
    emu.delays = Delays(state=0.3)
    try:
        operation = notebooks.create_instance(parent=zone, instance={}, instance_id="slow")
        name = f"projects/{emu.project}/locations/{ZONE}/instances/slow"
        assert notebooks.get_instance(name=name).state.name == "PROVISIONING"
        assert operation.result(timeout=30).state.name == "ACTIVE"
        assert notebooks.get_instance(name=name).state.name == "ACTIVE"
    finally:
        emu.delays = Delays()
