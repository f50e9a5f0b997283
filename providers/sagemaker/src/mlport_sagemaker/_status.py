"""SageMaker's resource states mapped onto mlport's; anything unlisted reads as UNKNOWN."""

from __future__ import annotations

from mlport.status import EndpointStatus, JobStatus, NotebookStatus, StatusTable

__all__ = ["ENDPOINT_STATES", "JOB_STATES", "NOTEBOOK_STATES", "SECONDARY_PENDING"]

JOB_STATES = StatusTable(
    JobStatus,
    {
        "InProgress": JobStatus.RUNNING,
        "Completed": JobStatus.SUCCEEDED,
        "Failed": JobStatus.FAILED,
        "Stopping": JobStatus.CANCELLING,
        "Stopped": JobStatus.CANCELLED,
    },
)
"""TrainingJobStatus and TransformJobStatus."""

SECONDARY_PENDING = frozenset(
    {
        "Starting",
        "Pending",
        "LaunchingMLInstances",
        "PreparingTrainingStack",
        "Downloading",
        "DownloadingTrainingImage",
    }
)
"""Secondary statuses of an InProgress job that has not started the user's code yet."""

ENDPOINT_STATES = StatusTable(
    EndpointStatus,
    {
        "Creating": EndpointStatus.CREATING,
        "InService": EndpointStatus.READY,
        "Updating": EndpointStatus.UPDATING,
        "SystemUpdating": EndpointStatus.UPDATING,
        "RollingBack": EndpointStatus.UPDATING,
        "UpdateRollbackFailed": EndpointStatus.FAILED,
        "Failed": EndpointStatus.FAILED,
        "Deleting": EndpointStatus.DELETING,
        "OutOfService": EndpointStatus.FAILED,
    },
)

NOTEBOOK_STATES = StatusTable(
    NotebookStatus,
    {
        "Pending": NotebookStatus.PENDING,
        "InService": NotebookStatus.RUNNING,
        "Stopping": NotebookStatus.STOPPING,
        "Stopped": NotebookStatus.STOPPED,
        "Failed": NotebookStatus.FAILED,
        "Deleting": NotebookStatus.DELETING,
        "Updating": NotebookStatus.PENDING,
    },
)
