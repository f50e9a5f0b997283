"""Common lifecycle states, and the tables providers use to map their native states onto them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from enum import StrEnum
from typing import TypeVar

__all__ = ["EndpointStatus", "JobStatus", "NotebookStatus", "StatusTable"]


class JobStatus(StrEnum):
    """State of a training or batch job."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLING = "CANCELLING"
    CANCELLED = "CANCELLED"
    UNKNOWN = "UNKNOWN"

    @property
    def is_terminal(self) -> bool:
        """True once the job can no longer change state."""
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)


class EndpointStatus(StrEnum):
    """State of an online endpoint."""

    CREATING = "CREATING"
    READY = "READY"
    UPDATING = "UPDATING"
    FAILED = "FAILED"
    DELETING = "DELETING"
    UNKNOWN = "UNKNOWN"

    @property
    def is_terminal(self) -> bool:
        """True when the endpoint is settled: serving, or failed."""
        return self in (EndpointStatus.READY, EndpointStatus.FAILED)


class NotebookStatus(StrEnum):
    """State of a notebook instance."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    FAILED = "FAILED"
    DELETING = "DELETING"
    UNKNOWN = "UNKNOWN"

    @property
    def is_terminal(self) -> bool:
        """True when the notebook is settled: running, stopped, or failed."""
        return self in (NotebookStatus.RUNNING, NotebookStatus.STOPPED, NotebookStatus.FAILED)


S = TypeVar("S", JobStatus, EndpointStatus, NotebookStatus)


class StatusTable(Mapping[str, S]):
    """A provider's map from native state strings to a common status; unknown states map to UNKNOWN.

    Example::

        TRAINING_STATES = StatusTable(JobStatus, {"InProgress": JobStatus.RUNNING, ...})
        TRAINING_STATES["Completed"]  # JobStatus.SUCCEEDED
        TRAINING_STATES["NewState"]   # JobStatus.UNKNOWN
    """

    def __init__(self, enum: type[S], table: Mapping[str, S]) -> None:
        self._enum: type[S] = enum
        self._table: dict[str, S] = dict(table)

    def __getitem__(self, native: str) -> S:
        found = self._table.get(native)
        return found if found is not None else self._enum["UNKNOWN"]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, native: object) -> bool:
        return native in self._table
