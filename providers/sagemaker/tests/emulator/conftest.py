"""Fixtures of the emulator's own tests: boto3 clients of the session's emulator."""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config
from mlport_sagemaker.emulator import EMULATOR_ROLE, SageMakerEmulator

ROLE = EMULATOR_ROLE
ROWS = [[0.0, 0.0], [1.0, 1.0], [1.0, 0.0]]


def client(emulator: SageMakerEmulator, service: str) -> Any:
    """A boto3 client of ``service`` on the emulator, without botocore's own retries."""
    import boto3

    return boto3.session.Session().client(
        service,
        endpoint_url=emulator.endpoint_url,
        region_name=emulator.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}),
    )


@pytest.fixture(scope="session")
def clients(emulator: SageMakerEmulator) -> dict[str, Any]:
    """One client per service for the session (making a boto3 client takes a while)."""
    return {
        name: client(emulator, name) for name in ("sagemaker", "s3", "sagemaker-runtime", "logs")
    }


@pytest.fixture
def sm(sagemaker: SageMakerEmulator, clients: dict[str, Any]) -> Any:
    return clients["sagemaker"]


@pytest.fixture
def s3(sagemaker: SageMakerEmulator, clients: dict[str, Any]) -> Any:
    return clients["s3"]


@pytest.fixture
def runtime(sagemaker: SageMakerEmulator, clients: dict[str, Any]) -> Any:
    return clients["sagemaker-runtime"]


@pytest.fixture
def logs(sagemaker: SageMakerEmulator, clients: dict[str, Any]) -> Any:
    return clients["logs"]


def wait_for(
    read: Callable[[], dict[str, Any]], key: str, pending: set[str], timeout: float = 60.0
) -> dict[str, Any]:
    """Call ``read`` until ``read()[key]`` leaves ``pending``; return the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        answer = read()
        if answer[key] not in pending:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"still {answer[key]} after {timeout} s: {answer}")
        time.sleep(0.05)


def tar_bytes(files: dict[str, bytes]) -> bytes:
    """A model.tar.gz / sourcedir.tar.gz holding ``files``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def tar_dir(directory: Path) -> bytes:
    """The contents of ``directory`` as a gzipped tar."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(directory.iterdir()):
            tar.add(path, arcname=path.name)
    return buffer.getvalue()


def hp(value: Any) -> str:
    """A hyperparameter value as the SageMaker Python SDK sends it (JSON-encoded)."""
    return json.dumps(value)


@pytest.fixture(scope="session")
def model_package(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    """A tiny scikit-learn model package and its predictions for ROWS."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from mlport import runtime as mlport_runtime

    features = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]] * 5)
    labels = np.array([0, 1, 0, 1] * 5)
    model = LogisticRegression().fit(features, labels)
    path = mlport_runtime.save_model(
        model, "sklearn", path=tmp_path_factory.mktemp("package") / "model"
    )
    return path, [int(x) for x in model.predict(np.array(ROWS))]


class Kit:
    """The helpers above, for test modules (which cannot import this file by name)."""

    ROLE = ROLE
    ROWS = ROWS
    client = staticmethod(client)
    wait_for = staticmethod(wait_for)
    tar_bytes = staticmethod(tar_bytes)
    tar_dir = staticmethod(tar_dir)
    hp = staticmethod(hp)


@pytest.fixture(scope="session")
def kit() -> type[Kit]:
    return Kit
