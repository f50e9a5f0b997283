"""On-prem storage: file:// objects, the root's storage/ folder by default."""

from __future__ import annotations

from pathlib import Path

import pytest

import mlport
from mlport.testing import conformance


class StorageFixtures(conformance.Fixtures):
    @pytest.fixture
    def storage_prefix(self, ml: mlport.Connection) -> str | None:  # type: ignore[override]
        return ml.storage.prefix


class TestStorageConformance(StorageFixtures, conformance.StorageTests): ...


def test_default_prefix_is_inside_the_root(ml: mlport.Connection, root: Path) -> None:
    assert ml.storage.prefix == f"file://{root.resolve() / 'storage'}"
