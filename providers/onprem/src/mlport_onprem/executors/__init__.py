"""Executors: where an on-prem training job runs.

The training service prepares a job folder (``job.json``, the code bundle) and hands it to the
executor; whatever runs the job runs :mod:`mlport_onprem.supervisor` on that folder, which stages
inputs, builds the environment, runs the script and records the outcome in the root's state. So
a new executor (a Ray cluster, a batch scheduler) only decides *where* the supervisor runs and how
to stop it; the service code does not change.
"""

from __future__ import annotations

import abc
import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlport_onprem.root import OnPremProvider

__all__ = ["EXECUTORS", "Executor", "load_executor"]

EXECUTORS = {"local": "mlport_onprem.executors.local:LocalExecutor"}


class Executor(abc.ABC):
    """Runs the supervisor of a prepared job folder somewhere, and stops it."""

    def __init__(self, provider: OnPremProvider) -> None:
        self.provider = provider

    @abc.abstractmethod
    def start(self, name: str) -> dict[str, Any]:
        """Start job ``name`` (its folder is ready). Returns state to store with the job."""

    @abc.abstractmethod
    def cancel(self, doc: dict[str, Any]) -> None:
        """Ask the job to stop; the supervisor records CANCELLED. Does not block."""

    @abc.abstractmethod
    def is_alive(self, doc: dict[str, Any]) -> bool:
        """True while the job's supervisor is still running."""

    @abc.abstractmethod
    def kill_orphans(self, doc: dict[str, Any]) -> None:
        """Stop what is left of a job whose supervisor died (its script's process group)."""


def load_executor(name: str, provider: OnPremProvider) -> Executor:
    """The executor called ``name`` for ``provider``."""
    module_name, _, attr = EXECUTORS[name].partition(":")
    cls: type[Executor] = getattr(importlib.import_module(module_name), attr)
    return cls(provider)
