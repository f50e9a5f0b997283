"""Shared fixtures of the core tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test sees the developer's mlport.toml or MLPORT_* settings."""
    monkeypatch.delenv("MLPORT_CONFIG", raising=False)
    monkeypatch.delenv("MLPORT_PROFILE", raising=False)
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture
def write_config(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Write an mlport.toml in the test's working directory and return its path."""

    def write(text: str, name: str = "mlport.toml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write
