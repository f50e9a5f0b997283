"""The portable model server: one process that satisfies every cloud's hosting contract.

It serves model packages (:mod:`mlport.package`) over HTTP with the routes of SageMaker
(``/ping``, ``/invocations``), Vertex AI (``AIP_*`` routes), Azure ML (``/``, ``/score``) and the
Open Inference Protocol v2, with bearer-token auth, weighted variants, micro-batching,
Prometheus metrics and data capture. Run it with ``mlport serve MODEL_DIR`` or
``python -m mlport.serving --config FILE``; see :mod:`mlport.serving.server` for its processes,
:mod:`mlport.serving.app` for its routes and :mod:`mlport.serving.config` for its settings.

Nothing heavy is imported with this package: names load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlport._lazy import lazy_exports

__all__ = [
    "BatchingConfig",
    "CaptureConfig",
    "InputError",
    "ServedModel",
    "ServerConfig",
    "VariantConfig",
    "load_config",
    "serve",
]

_EXPORTS = {
    "BatchingConfig": "mlport.serving.config",
    "CaptureConfig": "mlport.serving.config",
    "ServerConfig": "mlport.serving.config",
    "VariantConfig": "mlport.serving.config",
    "load_config": "mlport.serving.config",
    "InputError": "mlport.serving.model",
    "ServedModel": "mlport.serving.model",
    "serve": "mlport.serving.server",
}

if TYPE_CHECKING:
    from mlport.serving.config import (
        BatchingConfig,
        CaptureConfig,
        ServerConfig,
        VariantConfig,
        load_config,
    )
    from mlport.serving.model import InputError, ServedModel
    from mlport.serving.server import serve


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
