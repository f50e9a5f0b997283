"""The clouds' hosting contracts: how a serving container learns it runs on a platform.

Each managed service starts a custom serving container with its own environment variables; their
presence is how the portable server knows it is hosted and must follow the platform: bind all
interfaces on the platform's port and leave authentication to the platform.

==============  =========================================================================
platform        recognised by, and what it sets
==============  =========================================================================
SageMaker       ``SAGEMAKER_BIND_TO_PORT`` (port; 8080 when absent), or ``MLPORT_HOSTING``
                set to ``sagemaker`` (the serving image's ``serve`` command does this,
                because SageMaker starts a container as ``docker run IMAGE serve`` and sets
                no variable of its own for a single-container endpoint)
Vertex AI       ``AIP_HTTP_PORT`` (port), ``AIP_HEALTH_ROUTE``, ``AIP_PREDICT_ROUTE``,
                ``AIP_STORAGE_URI`` (the model's artifacts)
Azure ML        ``AZUREML_MODEL_DIR`` (the mounted model) or ``AML_APP_ROOT``; the Azure ML
                inference server listens on 5001 and answers its liveness and readiness
                probes on ``GET /``
==============  =========================================================================

``MLPORT_HOSTING`` (``sagemaker``, ``vertex``, ``azureml`` or ``none``) overrides the detection.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mlport.errors import ConfigError

__all__ = [
    "DEFAULT_HEALTH_ROUTE",
    "DEFAULT_PREDICT_ROUTE",
    "HOSTING_ENV",
    "Hosting",
    "HostingName",
    "detect",
]

HostingName = Literal["sagemaker", "vertex", "azureml"]
"""A cloud whose hosting contract the server follows."""

HOSTING_ENV = "MLPORT_HOSTING"
"""Names the platform explicitly (``none`` turns detection off)."""

DEFAULT_HEALTH_ROUTE = "/health"
"""The Vertex-style health route when not hosted by Vertex AI."""
DEFAULT_PREDICT_ROUTE = "/predict"
"""The Vertex-style predict route when not hosted by Vertex AI."""

_SAGEMAKER_PORT = 8080
_VERTEX_PORT = 8080
_AZUREML_PORT = 5001
_SAGEMAKER_MODEL_DIR = "/opt/ml/model"
_NAMES: tuple[str, ...] = ("sagemaker", "vertex", "azureml")


@dataclass(frozen=True)
class Hosting:
    """The hosting contract in force.

    Attributes:
        name: The platform.
        port: The port the platform sends requests to.
        health_route: Vertex's health route (``AIP_HEALTH_ROUTE``), or ``/health``.
        predict_route: Vertex's predict route (``AIP_PREDICT_ROUTE``), or ``/predict``.
        model_dir: Where the platform put the model, when it says so with a local path.
    """

    name: HostingName
    port: int
    health_route: str = DEFAULT_HEALTH_ROUTE
    predict_route: str = DEFAULT_PREDICT_ROUTE
    model_dir: str | None = None


def _port(env: Mapping[str, str], variable: str, default: int) -> int:
    text = env.get(variable, "").strip()
    if not text:
        return default
    try:
        port = int(text)
    except ValueError:
        raise ConfigError(f"{variable}={text!r} is not a port number") from None
    if not 0 < port < 65536:
        raise ConfigError(f"{variable}={port} is not a port number (1-65535)")
    return port


def _route(env: Mapping[str, str], variable: str, default: str) -> str:
    route = env.get(variable, "").strip() or default
    return route if route.startswith("/") else "/" + route


def _local_dir(uri: str | None) -> str | None:
    if not uri:
        return None
    if uri.startswith("file://"):
        return uri[len("file://") :]
    return uri if "://" not in uri else None


def _azureml_model_dir(env: Mapping[str, str]) -> str | None:
    root = env.get("AZUREML_MODEL_DIR")
    if not root:
        return None
    from mlport.package import MANIFEST_NAME

    # Azure ML mounts a registered folder one level below AZUREML_MODEL_DIR.
    base = Path(root)
    if (base / MANIFEST_NAME).is_file() or not base.is_dir():
        return root
    found = sorted(str(path.parent) for path in base.glob(f"*/{MANIFEST_NAME}"))
    return found[0] if len(found) == 1 else root


def detect(
    env: Mapping[str, str] | None = None, *, name: HostingName | Literal["none"] | None = None
) -> Hosting | None:
    """Tell which cloud's hosting contract applies, from the environment.

    Does not block.

    Args:
        env: The environment to read (default: ``os.environ``).
        name: Force a platform (or ``"none"``) instead of detecting it; ``MLPORT_HOSTING`` does
            the same from the environment.

    Returns:
        The contract, or None when the server is not hosted by a cloud.

    Raises:
        ConfigError: A platform variable holds something that is not a port, or
            ``MLPORT_HOSTING`` names no platform.
    """
    env = os.environ if env is None else env
    chosen: str | None = name or env.get(HOSTING_ENV, "").strip().lower() or None
    if chosen is not None and chosen not in (*_NAMES, "none"):
        raise ConfigError(
            f"{HOSTING_ENV}={chosen!r} names no hosting contract; use one of "
            f"{', '.join(_NAMES)} or none"
        )
    if chosen == "none":
        return None
    if chosen == "sagemaker" or (chosen is None and "SAGEMAKER_BIND_TO_PORT" in env):
        return Hosting(
            name="sagemaker",
            port=_port(env, "SAGEMAKER_BIND_TO_PORT", _SAGEMAKER_PORT),
            model_dir=_SAGEMAKER_MODEL_DIR,
        )
    if chosen == "vertex" or (chosen is None and "AIP_HTTP_PORT" in env):
        return Hosting(
            name="vertex",
            port=_port(env, "AIP_HTTP_PORT", _VERTEX_PORT),
            health_route=_route(env, "AIP_HEALTH_ROUTE", DEFAULT_HEALTH_ROUTE),
            predict_route=_route(env, "AIP_PREDICT_ROUTE", DEFAULT_PREDICT_ROUTE),
            model_dir=_local_dir(env.get("AIP_STORAGE_URI")),
        )
    if chosen == "azureml" or (
        chosen is None and ("AZUREML_MODEL_DIR" in env or "AML_APP_ROOT" in env)
    ):
        return Hosting(name="azureml", port=_AZUREML_PORT, model_dir=_azureml_model_dir(env))
    return None
