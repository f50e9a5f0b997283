"""Fixtures of the on-prem provider tests: a fresh root per test, processes stopped after it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import mlport


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def ml(root: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[mlport.Connection]:
    """An on-prem connection on a fresh root, polling fast; stops whatever the test started."""
    monkeypatch.delenv("MLPORT_CONFIG", raising=False)
    monkeypatch.delenv("MLPORT_PROFILE", raising=False)
    monkeypatch.chdir(tmp_path)
    connection = mlport.connect(
        "onprem", root=str(root), poll_interval=0.05, max_poll_interval=0.25, cancel_grace=3
    )
    yield connection
    connection.down()
    connection.close()
