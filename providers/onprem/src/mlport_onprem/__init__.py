"""The on-prem provider: the embedded default of mlport.

Training runs as real local processes, the model registry is MLflow (SQLite in the root by
default, or a team's tracking server), endpoints are portable model servers whose captured
requests drift monitors check, notebooks are Jupyter servers; all state lives under the
root folder (``.mlport`` by default), so it survives the Python process that started it. Importing
this module imports nothing heavy: MLflow and Jupyter load only when a service uses them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mlport.providers import ProviderConfig, ProviderSpec, config_path_validator

__all__ = ["OnPremConfig", "provider"]


class OnPremConfig(ProviderConfig):
    """Profile keys of the on-prem provider."""

    root: str = Field(".mlport", description="Folder holding all state; relative to mlport.toml")
    executor: Literal["local"] = Field(
        "local", description="Where training runs: 'local' (processes on this machine)"
    )
    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking server or database; default sqlite:///<root>/mlflow.db",
    )
    registry_uri: str | None = Field(
        None, description="MLflow model registry URI; default: the tracking URI"
    )
    pip_args: list[str] = Field(
        default_factory=list,
        description="Extra pip arguments for per-job virtualenvs, e.g. ['--no-index', "
        "'--find-links', '/srv/wheels'] on a machine without a package index",
    )
    cancel_grace: float = Field(
        10.0, gt=0, description="Seconds between SIGTERM and SIGKILL when stopping a process"
    )

    _rebase = config_path_validator("root")


provider = ProviderSpec(
    name="onprem",
    config_model=OnPremConfig,
    implementation="mlport_onprem.root:OnPremProvider",
    distribution="mlport-onprem",
    description="local processes, MLflow registry, Jupyter notebooks",
    requires=("mlflow",),
    unsupported={
        "training.distributed": "the local executor runs one node",
        "training.spot": "there is no spot capacity on-prem",
        "endpoints.autoscaling": "replicas are fixed worker processes on this machine",
    },
    catalog="local",
)
