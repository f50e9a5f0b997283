"""Injected faults surface as azure-core's own exceptions; reset empties everything."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import (
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from mlport_azureml.emulator import AzureMLEmulator

from mlport.errors import InvalidSpecError


def _env(ml: Any, name: str = "base", version: str = "1") -> Any:
    from azure.ai.ml.entities import Environment

    return ml.environments.create_or_update(
        Environment(name=name, version=version, image="python:3.11")
    )


@pytest.mark.parametrize(("error", "status"), [("429", 429), ("500", 500), ("503", 503)])
def test_injected_status_reaches_the_caller_as_http_response_error(
    ml_no_retry: Any, emulator: AzureMLEmulator, error: str, status: int
) -> None:
    _env(ml_no_retry)
    emulator.inject("EnvironmentVersions_Get", error)
    with pytest.raises(HttpResponseError) as caught:
        ml_no_retry.environments.get("base", version="1")
    assert caught.value.status_code == status
    if status in (429, 503):
        assert caught.value.response.headers["Retry-After"] == "0"
    assert ml_no_retry.environments.get("base", version="1").version == "1"


def test_azure_core_retries_throttling_and_succeeds(ml: Any, emulator: AzureMLEmulator) -> None:
    _env(ml)
    emulator.inject("EnvironmentVersions_Get", "429", times=2)
    assert ml.environments.get("base", version="1").version == "1"
    assert emulator.service.faults.pending() == 0


def test_injected_not_found(ml_no_retry: Any, emulator: AzureMLEmulator) -> None:
    _env(ml_no_retry)
    emulator.inject("EnvironmentVersions_Get", "404")
    with pytest.raises(ResourceNotFoundError):
        ml_no_retry.environments.get("base", version="1")


def test_dropped_answer_after_commit_the_call_took_effect(
    ml_no_retry: Any, emulator: AzureMLEmulator
) -> None:
    emulator.inject("EnvironmentVersions_CreateOrUpdate", "drop_response_after_commit")
    with pytest.raises((ServiceResponseError, ServiceRequestError)):
        _env(ml_no_retry, version="7")
    assert ml_no_retry.environments.get("base", version="7").version == "7"


def test_latency_delays_an_operation(ml: Any, emulator: AzureMLEmulator) -> None:
    _env(ml)
    emulator.set_latency("EnvironmentVersions_Get", 0.5)
    started = time.monotonic()
    ml.environments.get("base", version="1")
    assert time.monotonic() - started >= 0.5


def test_inject_rejects_unknown_operations_and_errors(emulator: AzureMLEmulator) -> None:
    with pytest.raises(InvalidSpecError, match="not an operation"):
        emulator.inject("CreateTrainingJob", "500")
    with pytest.raises(InvalidSpecError, match="not a fault"):
        emulator.inject("Jobs_Get", "ThrottlingException")
    with pytest.raises(InvalidSpecError):
        emulator.inject("Jobs_Get", "500", times=0)


def test_reset_forgets_resources_and_faults(ml: Any, emulator: AzureMLEmulator) -> None:
    _env(ml)
    emulator.inject("EnvironmentVersions_Get", "500", times=5)
    emulator.reset()
    assert emulator.service.faults.pending() == 0
    with pytest.raises(ResourceNotFoundError):
        ml.environments.get("base", version="1")


def _control(emulator: AzureMLEmulator, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        f"{emulator.base_url}/mlport-emulator/{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method="POST" if body is not None else "GET",
        headers={"Content-Type": "application/json"},
    )
    context = ssl.create_default_context(cafile=emulator.ca_bundle)
    with urllib.request.urlopen(request, context=context, timeout=10) as answer:
        data = answer.read()
        return json.loads(data) if data else None


def test_control_api_over_https(ml_no_retry: Any, emulator: AzureMLEmulator) -> None:
    operations = _control(emulator, "operations")
    assert "Jobs_CreateOrUpdate" in operations["operations"]
    _env(ml_no_retry)
    _control(emulator, "faults", {"operation": "EnvironmentVersions_Get", "error": "503"})
    with pytest.raises(HttpResponseError) as caught:
        ml_no_retry.environments.get("base", version="1")
    assert caught.value.status_code == 503
    _control(emulator, "reset", {})
    with pytest.raises(ResourceNotFoundError):
        ml_no_retry.environments.get("base", version="1")


def test_python_m_prints_one_line_and_stops_on_sigterm(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlport_azureml.emulator",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--work-dir",
            str(tmp_path / "work"),
        ],
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "stderr").open("wb"),
    )
    try:
        assert process.stdout is not None
        line = json.loads(process.stdout.readline())
        assert line["url"].startswith("https://127.0.0.1:")
        assert line["cloud_metadata"]["resource_manager"] == line["url"] + "/"
        assert line["workspace_name"] == "mlport-ws"
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0
