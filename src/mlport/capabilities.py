"""The features a provider may lack. Each provider's capability table lists the ones it does not
offer, with the reason; the services raise :class:`~mlport.errors.NotSupportedError` for them and
the conformance suite skips exactly those."""

from __future__ import annotations

from types import MappingProxyType

__all__ = ["FEATURES"]

FEATURES = MappingProxyType(
    {
        "training": "training jobs",
        "training.cancel": "cancelling a running training job",
        "training.delete": "deleting a finished training job",
        "training.logs": "reading a training job's logs",
        "training.distributed": "multi-node training (Compute(count>1))",
        "training.spot": "spot / low-priority training capacity (Compute(spot=True))",
        "registry": "a model registry",
        "registry.delete": "deleting registered models and versions",
        "registry.stages": "stages and aliases on model versions",
        "registry.baseline": "a baseline profile of the training data stored with a model version",
        "endpoints": "online endpoints",
        "endpoints.canary": "several versions on one endpoint with a traffic split",
        "endpoints.autoscaling": "autoscaling between min and max replicas",
        "endpoints.capture": "capturing requests and responses for monitoring",
        "endpoints.logs": "reading an endpoint's serving logs",
        "endpoints.batch": "batch prediction jobs",
        "monitoring": "drift monitoring of endpoints",
        "monitoring.schedule": "monitors that run on a schedule",
        "monitoring.alert": "webhook alerts when drift crosses a threshold",
        "notebooks": "notebook servers",
        "notebooks.idle_timeout": "stopping an idle notebook automatically",
        "storage": "an artifact store",
    }
)
