"""The one way on-prem services reach MLflow: a cached client per provider, quiet and offline.

MLflow 3 phones home: ``import mlflow`` starts a telemetry client that fetches its config from
``config.mlflow-telemetry.io`` and then sends usage records, and the tracking server's UI fetches
a telemetry config too. Both are off when ``MLFLOW_DISABLE_TELEMETRY`` or ``DO_NOT_TRACK`` is
true, and the client reads them once at import, so :func:`client` sets them before the first
``import mlflow``. MLflow's own HTTP retries are off as well (core owns the retry policy), and so
is the run link MLflow prints to stdout. A user who set any of these variables keeps their value.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlport_onprem.root import OnPremProvider

__all__ = [
    "ENVIRONMENT",
    "EXPERIMENT",
    "client",
    "experiment_id",
    "prepare_environment",
    "registry_uri",
    "tracking_uri",
    "uses_default_store",
]

EXPERIMENT = "mlport"
"""The MLflow experiment that holds mlport's runs."""

ENVIRONMENT: dict[str, str] = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    # Retries live in mlport's core; MLflow's (7 by default, with backoff) would multiply them.
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    # Ending a run on a tracking server otherwise prints its UI link to our caller's stdout.
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}
"""Variables set (unless already set) before MLflow is imported; also for MLflow subprocesses."""

_lock = threading.Lock()
_clients: weakref.WeakKeyDictionary[OnPremProvider, MlflowClient] = weakref.WeakKeyDictionary()
_experiments: weakref.WeakKeyDictionary[OnPremProvider, str] = weakref.WeakKeyDictionary()


def prepare_environment() -> None:
    """Turn MLflow's telemetry and HTTP retries off for this process, keeping user settings."""
    for name, value in ENVIRONMENT.items():
        os.environ.setdefault(name, value)


def uses_default_store(provider: OnPremProvider) -> bool:
    """True when MLflow lives in the root (no ``tracking_uri`` in the profile)."""
    return provider.config.tracking_uri is None


def tracking_uri(provider: OnPremProvider) -> str:
    """The profile's ``tracking_uri``, or the SQLite database in the root."""
    if provider.config.tracking_uri is not None:
        return provider.config.tracking_uri
    return f"sqlite:///{provider.root / 'mlflow.db'}"


def registry_uri(provider: OnPremProvider) -> str:
    """The profile's ``registry_uri``, or the tracking URI."""
    return provider.config.registry_uri or tracking_uri(provider)


def client(provider: OnPremProvider) -> MlflowClient:
    """The MLflow client of ``provider``, made once and shared by its services.

    Imports MLflow on first use (a few seconds). Does not contact the tracking store.

    Raises:
        MissingDependencyError: MLflow is not installed.
    """
    with _lock:
        found = _clients.get(provider)
        if found is not None:
            return found
        prepare_environment()
        try:
            from mlflow import MlflowClient
        except ImportError as exc:
            from mlport.errors import MissingDependencyError

            raise MissingDependencyError(
                f"the on-prem provider needs MLflow ({exc}); pip install mlport-onprem",
                provider=provider.name,
            ) from exc
        # Creating the SQLite store logs its schema migrations at INFO: not news to our users.
        for noisy in ("mlflow.store.db.utils", "alembic.runtime.migration"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        made = MlflowClient(
            tracking_uri=tracking_uri(provider), registry_uri=registry_uri(provider)
        )
        _clients[provider] = made
        return made


def experiment_id(provider: OnPremProvider) -> str:
    """The id of the ``mlport`` experiment, created on first use.

    In the root's own store its artifacts go to ``<root>/mlartifacts``; on a tracking server they
    go to the server's default artifact root. A deleted ``mlport`` experiment is restored.

    Blocks on the tracking store; creating the SQLite database the first time takes seconds.

    Raises:
        MlflowException: The tracking store refused (translated by the calling service).
    """
    with _lock:
        found = _experiments.get(provider)
    if found is not None:
        return found
    from mlflow.exceptions import MlflowException

    mlflow_client = client(provider)
    experiment = mlflow_client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        location = (
            (provider.root / "mlartifacts").as_uri() if uses_default_store(provider) else None
        )
        try:
            made = str(mlflow_client.create_experiment(EXPERIMENT, artifact_location=location))
        except MlflowException as exc:
            # Another process made it between our look-up and our create.
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment = mlflow_client.get_experiment_by_name(EXPERIMENT)
            if experiment is None:
                raise
            made = str(experiment.experiment_id)
    else:
        made = str(experiment.experiment_id)
        if experiment.lifecycle_stage == "deleted":
            mlflow_client.restore_experiment(made)
    with _lock:
        _experiments[provider] = made
    return made
