"""mlport: one API for SageMaker, Vertex AI, Azure Machine Learning and an on-prem stack.

    import mlport
    from mlport import TrainingJob, Code, Compute

    ml = mlport.connect()
    job = ml.training.submit(TrainingJob(name="churn", code=Code(source_dir="src")))
    job.wait(logs=True)

Names are imported on first use, so ``import mlport`` stays light: no cloud SDK, no numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlport._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "connect": "mlport.connection",
    "Connection": "mlport.connection",
    "TrainingJob": "mlport.specs",
    "Code": "mlport.specs",
    "Environment": "mlport.specs",
    "Compute": "mlport.specs",
    "DeploymentOptions": "mlport.specs",
    "BatchOptions": "mlport.specs",
    "NotebookOptions": "mlport.specs",
    "MonitorOptions": "mlport.specs",
    "Job": "mlport.handles",
    "ModelVersion": "mlport.handles",
    "Endpoint": "mlport.handles",
    "Monitor": "mlport.handles",
    "Notebook": "mlport.handles",
    "DriftReport": "mlport.handles",
    "FeatureDrift": "mlport.handles",
    "JobStatus": "mlport.status",
    "EndpointStatus": "mlport.status",
    "NotebookStatus": "mlport.status",
    **{
        name: "mlport.errors"
        for name in (
            "MlportError",
            "ConfigError",
            "ProviderNotFoundError",
            "MissingDependencyError",
            "InvalidSpecError",
            "NotFoundError",
            "AlreadyExistsError",
            "ConflictError",
            "PermissionDeniedError",
            "QuotaExceededError",
            "ThrottledError",
            "TransientError",
            "NotSupportedError",
            "JobFailedError",
            "DeploymentFailedError",
            "WaitTimeoutError",
            "IntegrityError",
        )
    },
}

__all__ = [  # noqa: RUF022 - grouped as in _EXPORTS
    "connect",
    "Connection",
    "TrainingJob",
    "Code",
    "Environment",
    "Compute",
    "DeploymentOptions",
    "BatchOptions",
    "NotebookOptions",
    "MonitorOptions",
    "Job",
    "ModelVersion",
    "Endpoint",
    "Monitor",
    "Notebook",
    "DriftReport",
    "FeatureDrift",
    "JobStatus",
    "EndpointStatus",
    "NotebookStatus",
    "MlportError",
    "ConfigError",
    "ProviderNotFoundError",
    "MissingDependencyError",
    "InvalidSpecError",
    "NotFoundError",
    "AlreadyExistsError",
    "ConflictError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "ThrottledError",
    "TransientError",
    "NotSupportedError",
    "JobFailedError",
    "DeploymentFailedError",
    "WaitTimeoutError",
    "IntegrityError",
    "__version__",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:
    from mlport.connection import Connection, connect
    from mlport.errors import (
        AlreadyExistsError,
        ConfigError,
        ConflictError,
        DeploymentFailedError,
        IntegrityError,
        InvalidSpecError,
        JobFailedError,
        MissingDependencyError,
        MlportError,
        NotFoundError,
        NotSupportedError,
        PermissionDeniedError,
        ProviderNotFoundError,
        QuotaExceededError,
        ThrottledError,
        TransientError,
        WaitTimeoutError,
    )
    from mlport.handles import (
        DriftReport,
        Endpoint,
        FeatureDrift,
        Job,
        ModelVersion,
        Monitor,
        Notebook,
    )
    from mlport.specs import (
        BatchOptions,
        Code,
        Compute,
        DeploymentOptions,
        Environment,
        MonitorOptions,
        NotebookOptions,
        TrainingJob,
    )
    from mlport.status import EndpointStatus, JobStatus, NotebookStatus
