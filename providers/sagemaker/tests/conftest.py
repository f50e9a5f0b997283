"""Fixtures of the SageMaker provider tests: one local SageMaker per session, reset per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mlport_sagemaker.emulator import SageMakerEmulator

import mlport
from mlport.testing.emulator import environment


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SageMakerEmulator]:
    """The local SageMaker, shared by the session; AWS settings point at it."""
    with (
        SageMakerEmulator(workdir=tmp_path_factory.mktemp("sagemaker")) as emu,
        environment(emu.env),
    ):
        yield emu


@pytest.fixture
def sagemaker(emulator: SageMakerEmulator) -> Iterator[SageMakerEmulator]:
    """The emulator, emptied after the test."""
    yield emulator
    emulator.reset()


def _connect(emulator: SageMakerEmulator, **extra: object) -> mlport.Connection:
    """A SageMaker connection to the emulator, polling fast."""
    settings: dict[str, object] = {
        **emulator.connect_kwargs,
        "poll_interval": 0.05,
        "max_poll_interval": 0.5,
        "retry_max_time": 20,
        **extra,
    }
    return mlport.connect("sagemaker", **settings)


@pytest.fixture
def connect(sagemaker: SageMakerEmulator) -> Callable[..., mlport.Connection]:
    """``connect(**settings)``: a connection to the (reset after the test) emulator."""
    return lambda **extra: _connect(sagemaker, **extra)


@pytest.fixture
def ml(
    sagemaker: SageMakerEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[mlport.Connection]:
    """A SageMaker connection to a freshly reset emulator."""
    monkeypatch.delenv("MLPORT_CONFIG", raising=False)
    monkeypatch.delenv("MLPORT_PROFILE", raising=False)
    monkeypatch.chdir(tmp_path)
    connection = _connect(sagemaker)
    try:
        yield connection
    finally:
        connection.close()
