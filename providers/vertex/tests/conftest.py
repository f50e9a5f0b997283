"""Fixtures: one emulator per session, reset before every test; aiplatform imported once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from mlport_vertex.emulator import VertexEmulator

from mlport.testing.emulator import environment


@pytest.fixture(scope="session")
def vertex_session() -> Iterator[VertexEmulator]:
    """The emulator, with its environment set for the SDKs (gRPC reads its roots once)."""
    with VertexEmulator() as emulator, environment(emulator.env):
        yield emulator


@pytest.fixture
def emu(vertex_session: VertexEmulator) -> Iterator[VertexEmulator]:
    """The session's emulator, empty: every resource, fault and process from before is gone."""
    vertex_session.reset()
    yield vertex_session
    vertex_session.reset()


@pytest.fixture(scope="session")
def aiplatform_module(vertex_session: VertexEmulator) -> Any:
    """``google.cloud.aiplatform``, imported once (about 3 s), polling fast."""
    from google.cloud import aiplatform
    from google.cloud.aiplatform import jobs

    jobs._JOB_WAIT_TIME = 0.1  # type: ignore[attr-defined]
    jobs._LOG_WAIT_TIME = 60  # type: ignore[attr-defined]
    return aiplatform


@pytest.fixture
def aiplatform(emu: VertexEmulator, aiplatform_module: Any) -> Any:
    """``aiplatform`` initialised against the emulator, exactly as a user would."""
    aiplatform_module.init(
        project=emu.project,
        location=emu.location,
        api_endpoint=emu.api_endpoint,
        credentials=emu.credentials,
        staging_bucket=emu.staging_bucket,
    )
    return aiplatform_module


@pytest.fixture
def client_options(emu: VertexEmulator) -> dict[str, Any]:
    """Keyword arguments for the GAPIC v1 clients."""
    return {"client_options": {"api_endpoint": emu.api_endpoint}, "credentials": emu.credentials}


@pytest.fixture
def parent(emu: VertexEmulator) -> str:
    """``projects/{project}/locations/{location}``."""
    return f"projects/{emu.project}/locations/{emu.location}"
