"""One Azure ML emulator for the whole session, emptied before every test, and MLClients on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlport_azureml.emulator import AzureMLEmulator

from mlport.testing.emulator import environment


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureMLEmulator]:
    with (
        AzureMLEmulator(work_dir=tmp_path_factory.mktemp("azureml")) as emu,
        environment(emu.env),
    ):
        emu.apply()
        yield emu


@pytest.fixture(autouse=True)
def _fresh(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test that uses the emulator starts from an empty workspace."""
    if "emulator" in request.fixturenames:
        emu: AzureMLEmulator = request.getfixturevalue("emulator")
        emu.reset()
    yield


def make_client(emu: AzureMLEmulator, **extra: Any) -> Any:
    from azure.ai.ml import MLClient

    return MLClient(
        emu.credential,
        emu.subscription_id,
        emu.resource_group,
        emu.workspace_name,
        **{**emu.client_kwargs, **extra},
    )


@pytest.fixture(scope="session")
def ml(emulator: AzureMLEmulator) -> Any:
    """An MLClient as a user makes it, azure-core's retries left on."""
    return make_client(emulator)


@pytest.fixture(scope="session")
def ml_no_retry(emulator: AzureMLEmulator) -> Any:
    """An MLClient with azure-core's retries off, so injected faults reach the caller."""
    return make_client(emulator, retry_total=0)


TRAIN_SCRIPT = """\
import argparse, json, os
import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression

parser = argparse.ArgumentParser()
parser.add_argument("--data")
parser.add_argument("--model")
parser.add_argument("--c", type=float)
args = parser.parse_args()
rows = np.loadtxt(os.path.join(args.data, "train.csv"), delimiter=",", skiprows=1)
model = LogisticRegression(C=args.c).fit(rows[:, :2], rows[:, 2])
os.makedirs(args.model, exist_ok=True)
joblib.dump(model, os.path.join(args.model, "model.joblib"))
print("trained in run", os.environ["AZUREML_RUN_ID"], "with", os.environ.get("GREETING"))
"""

ROWS = [[0.1, 1.0], [1.0, 0.2], [0.9, 0.8], [0.0, 0.1], [0.3, 0.9], [0.8, 0.1]]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A training script folder and a data folder."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(TRAIN_SCRIPT)
    (tmp_path / "data").mkdir()
    lines = ["a,b,y"] + [f"{a},{b},{int(a > b)}" for a, b in ROWS * 3]
    (tmp_path / "data" / "train.csv").write_text("\n".join(lines) + "\n")
    return tmp_path
