"""Fixtures of the on-prem provider tests: a fresh root per test, processes stopped after it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import mlport


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@contextmanager
def _connected(folder: Path, patch: pytest.MonkeyPatch) -> Iterator[mlport.Connection]:
    """An on-prem connection on ``folder/root`` (working directory ``folder``), polling fast;
    stops whatever was started on it when the block ends."""
    patch.delenv("MLPORT_CONFIG", raising=False)
    patch.delenv("MLPORT_PROFILE", raising=False)
    patch.chdir(folder)
    connection = mlport.connect(
        "onprem",
        root=str(folder / "root"),
        poll_interval=0.05,
        max_poll_interval=0.25,
        cancel_grace=3,
    )
    try:
        yield connection
    finally:
        connection.down()
        connection.close()


@pytest.fixture
def ml(root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[mlport.Connection]:
    """An on-prem connection on a fresh root (``root``), polling fast; stops whatever the test
    started."""
    with _connected(root.parent, monkeypatch) as connection:
        yield connection


@pytest.fixture(scope="module")
def module_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The working directory of ``module_ml``; its root is ``root`` in it."""
    return tmp_path_factory.mktemp("module")


@pytest.fixture(scope="module")
def module_ml(module_folder: Path) -> Iterator[mlport.Connection]:
    """One on-prem connection for a whole test module, for tests that share registered models
    (the first registration on a root takes seconds)."""
    with pytest.MonkeyPatch.context() as patch, _connected(module_folder, patch) as connection:
        yield connection
