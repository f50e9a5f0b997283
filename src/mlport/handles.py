"""Handles: what services return. They hold a resource's last known state and act on it.

Providers build handles from native responses; the service binds each to itself so that
``refresh()``, ``wait()``, ``cancel()`` and friends go through the service's validation, retries
and error mapping. A handle never holds credentials.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from mlport.errors import ConflictError, DeploymentFailedError, JobFailedError, NotSupportedError
from mlport.status import EndpointStatus, JobStatus, NotebookStatus

if TYPE_CHECKING:
    from mlport.services.endpoints import EndpointService
    from mlport.services.monitoring import MonitoringService
    from mlport.services.notebooks import NotebookService
    from mlport.services.registry import RegistryService
    from mlport.services.training import TrainingService

__all__ = [
    "DriftHistogram",
    "DriftReport",
    "Endpoint",
    "FeatureDrift",
    "Job",
    "ModelVersion",
    "Monitor",
    "Notebook",
]


class Handle(BaseModel):
    """Base of handles: a snapshot of the resource plus the service that manages it."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    provider: str = ""
    provider_id: str = ""
    tags: dict[str, str] = Field(default_factory=dict)

    _service: Any = PrivateAttr(default=None)

    def _bind(self, service: Any) -> Any:
        self._service = service
        return self

    def _require_service(self) -> Any:
        if self._service is None:
            raise NotSupportedError(
                f"this {type(self).__name__} is not bound to a connection; get it from a service"
            )
        return self._service

    def _replace_with(self, fresh: Handle) -> None:
        for field in type(self).model_fields:
            setattr(self, field, getattr(fresh, field))


class Job(Handle):
    """A training or batch-prediction job.

    Attributes:
        name: The job's name.
        status: Common status.
        kind: ``"training"`` or ``"batch"``.
        metrics: Last value of each metric the script logged.
        failure_reason: Why it FAILED or was CANCELLED.
        model_uri: Where the trained model package is (training jobs that SUCCEEDED).
        output_uri: Where batch predictions were written (batch jobs).
        lineage: Inputs' hashes, code hash, versions, hyperparameters, times.
        message: The provider's progress message (e.g. SageMaker's secondary status).
    """

    name: str
    status: JobStatus = JobStatus.UNKNOWN
    kind: str = "training"
    metrics: dict[str, float] = Field(default_factory=dict)
    failure_reason: str | None = None
    model_uri: str | None = None
    output_uri: str | None = None
    lineage: dict[str, Any] = Field(default_factory=dict)
    message: str = ""
    created_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    spec_hash: str | None = None

    def _svc(self) -> TrainingService:
        return self._require_service()  # type: ignore[no-any-return]

    def refresh(self) -> Job:
        """Fetch the current state from the provider. Returns self."""
        self._replace_with(self._svc()._refetch(self))
        return self

    def wait(
        self, timeout: float | None = None, *, logs: bool = False, progress: bool = True
    ) -> Job:
        """Block until the job ends; stream its logs to stdout with ``logs=True``.

        Raises:
            JobFailedError: it ended FAILED or CANCELLED (``failure_reason`` says why).
            WaitTimeoutError: ``timeout`` seconds passed first.
        """
        self._svc()._wait_job(self, timeout=timeout, logs=logs, progress=progress)
        if self.status is not JobStatus.SUCCEEDED:
            raise JobFailedError(
                f"{self.kind} job {self.name!r} ended {self.status.value}"
                + (f": {self.failure_reason}" if self.failure_reason else ""),
                failure_reason=self.failure_reason,
                provider=self.provider,
                resource=self.name,
            )
        return self

    def logs(self, follow: bool = False) -> Iterator[str]:
        """The job's log lines; with ``follow=True`` keeps yielding until the job ends."""
        service: Any = self._svc()
        if self.kind == "batch":
            return service.batch_logs(self.name, follow=follow)  # type: ignore[no-any-return]
        return service.logs(self.name, follow=follow)  # type: ignore[no-any-return]

    def cancel(self) -> Job:
        """Ask the provider to stop the job. Does not block; ``wait()`` for the end."""
        self._replace_with(self._svc().cancel(self.name))
        return self


class ModelVersion(Handle):
    """A registered model version.

    Attributes:
        name: The registered model's name.
        version: Version string ("1", "2", ...).
        uri: Where the model package is stored.
        stage: The stage set by ``set_stage`` (None, "staging", "production", "archived", ...).
        aliases: Aliases pointing at this version.
        framework: Framework of the package.
        package_sha256: sha256 of the package manifest, checked before loading.
        baseline_uri: Where the drift baseline profile registered with it is (if one was).
    """

    name: str
    version: str
    uri: str = ""
    stage: str | None = None
    aliases: list[str] = Field(default_factory=list)
    framework: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    lineage: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None
    package_sha256: str | None = None
    description: str | None = None
    baseline_uri: str | None = None

    def _svc(self) -> RegistryService:
        return self._require_service()  # type: ignore[no-any-return]

    def refresh(self) -> ModelVersion:
        """Fetch the current state from the provider. Returns self."""
        self._replace_with(self._svc().get(self.name, self.version))
        return self

    def set_stage(self, stage: str) -> ModelVersion:
        """Move this version to ``stage`` (see ``RegistryService.set_stage``)."""
        self._replace_with(self._svc().set_stage(self.name, self.version, stage))
        return self


class Endpoint(Handle):
    """An online endpoint.

    Attributes:
        name: The endpoint's name.
        status: Common status.
        url: Where to send requests.
        variants: Model version -> traffic percent.
    """

    name: str
    status: EndpointStatus = EndpointStatus.UNKNOWN
    url: str | None = None
    variants: dict[str, float] = Field(default_factory=dict)
    model: str | None = None
    capture_percent: float = 0
    failure_reason: str | None = None
    message: str = ""
    created_at: datetime | None = None

    def _svc(self) -> EndpointService:
        return self._require_service()  # type: ignore[no-any-return]

    def refresh(self) -> Endpoint:
        """Fetch the current state from the provider. Returns self."""
        self._replace_with(self._svc().get(self.name))
        return self

    def wait(self, timeout: float | None = None, *, progress: bool = True) -> Endpoint:
        """Block until the endpoint is READY.

        Raises:
            DeploymentFailedError: it ended FAILED.
            WaitTimeoutError: ``timeout`` seconds passed first.
        """
        self._svc()._wait_endpoint(self, timeout=timeout, progress=progress)
        if self.status is EndpointStatus.FAILED:
            raise DeploymentFailedError(
                f"endpoint {self.name!r} FAILED"
                + (f": {self.failure_reason}" if self.failure_reason else ""),
                provider=self.provider,
                resource=self.name,
            )
        return self

    def predict(self, rows: Any, *, variant: str | None = None) -> list[Any]:
        """Send rows for prediction; returns one prediction per row."""
        return self._svc().predict(self.name, rows, variant=variant)

    def logs(self) -> Iterator[str]:
        """The serving logs."""
        return self._svc().logs(self.name)


class Monitor(Handle):
    """Drift monitoring on an endpoint."""

    endpoint: str
    schedule: int | None = 3600
    baseline: str = ""
    thresholds: dict[str, float] = Field(default_factory=dict)
    alert: str | None = None
    enabled: bool = True
    last_run_at: datetime | None = None

    @property
    def name(self) -> str:
        """Monitors are named by their endpoint."""
        return self.endpoint

    def _svc(self) -> MonitoringService:
        return self._require_service()  # type: ignore[no-any-return]

    def refresh(self) -> Monitor:
        """Fetch the current state from the provider. Returns self."""
        self._replace_with(self._svc().get(self.endpoint))
        return self

    def run(self) -> DriftReport:
        """Run drift detection now on the data captured since the last run."""
        return self._svc().run(self.endpoint)

    def reports(self) -> Iterator[DriftReport]:
        """Past reports, newest first."""
        return self._svc().reports(self.endpoint)


class Notebook(Handle):
    """A notebook server."""

    name: str
    status: NotebookStatus = NotebookStatus.UNKNOWN
    url: str | None = None
    instance_type: str | None = None
    idle_timeout: int | None = None
    failure_reason: str | None = None
    message: str = ""
    created_at: datetime | None = None

    def _svc(self) -> NotebookService:
        return self._require_service()  # type: ignore[no-any-return]

    def refresh(self) -> Notebook:
        """Fetch the current state from the provider. Returns self."""
        self._replace_with(self._svc().get(self.name))
        return self

    def start(self) -> Notebook:
        """Start a stopped notebook. Does not block; ``wait()`` for RUNNING."""
        self._replace_with(self._svc().start(self.name))
        return self

    def stop(self) -> Notebook:
        """Stop the notebook. Does not block; ``wait()`` for STOPPED."""
        self._replace_with(self._svc().stop(self.name))
        return self

    def wait(self, timeout: float | None = None, *, progress: bool = True) -> Notebook:
        """Block until the notebook is RUNNING, STOPPED or FAILED.

        Raises:
            ConflictError: it ended FAILED.
            WaitTimeoutError: ``timeout`` seconds passed first.
        """
        self._svc()._wait_notebook(self, timeout=timeout, progress=progress)
        if self.status is NotebookStatus.FAILED:
            raise ConflictError(
                f"notebook {self.name!r} FAILED"
                + (f": {self.failure_reason}" if self.failure_reason else ""),
                provider=self.provider,
                resource=self.name,
            )
        return self


class DriftHistogram(BaseModel):
    """Where the reference and the current values of one feature fall, for charts.

    Either ``edges`` (numeric bins ``[edges[i], edges[i+1])``, the last one closed) or
    ``categories`` (category labels, or the values of a numeric feature with few of them) names
    the cells; ``reference`` and ``current`` hold each side's share of its values per cell
    (each sums to 1). The shares of a reference kept as a quantile sketch are estimated from the
    sketch.
    """

    model_config = ConfigDict(extra="forbid")

    edges: list[float] | None = None
    categories: list[str] | None = None
    reference: list[float]
    current: list[float]


class FeatureDrift(BaseModel):
    """Drift of one feature: the statistic used, its value, the threshold and the verdict.

    ``histogram`` (set by monitor runs) holds the reference and current distributions for
    the report's charts; it plays no part in the verdict.
    """

    model_config = ConfigDict(extra="forbid")

    feature: str
    statistic: str
    value: float
    threshold: float
    drifted: bool
    kind: str = "numeric"
    reference_size: int
    current_size: int
    p_value: float | None = None
    histogram: DriftHistogram | None = None


class DriftReport(BaseModel):
    """The result of one monitor run: per-feature drift and the overall verdict.

    Attributes:
        endpoint: The monitored endpoint.
        created_at: When the report was made.
        features: One result per feature; empty when the window held no data.
        reference_size: Rows of the baseline.
        current_size: Rows of captured traffic in the window.
        window_start: Start of the window of captured traffic (inclusive).
        window_end: End of the window (exclusive).
        report_uri: Where the stored report is (the HTML page), if stored.
        message: What else the run has to say, e.g. that no request was captured in the window.
        alert: What became of the webhook alert: ``"sent ..."`` or ``"failed: ..."``; None when
            no alert was due.
    """

    model_config = ConfigDict(extra="forbid")

    endpoint: str
    created_at: datetime
    features: list[FeatureDrift] = Field(default_factory=list)
    reference_size: int = 0
    current_size: int = 0
    window_start: datetime | None = None
    window_end: datetime | None = None
    report_uri: str | None = None
    message: str = ""
    alert: str | None = None

    @property
    def drifted(self) -> bool:
        """True if any feature crossed its threshold."""
        return any(f.drifted for f in self.features)

    @property
    def drifted_features(self) -> list[str]:
        """Names of the features that crossed their threshold."""
        return [f.feature for f in self.features if f.drifted]

    @property
    def violations(self) -> list[FeatureDrift]:
        """The per-feature results that crossed their threshold."""
        return [f for f in self.features if f.drifted]

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON: per feature statistic, value, p-value, threshold, drifted, sample
        sizes and histogram; the window, and ``drifted`` for the whole report."""
        data = self.model_dump(mode="json")
        data["drifted"] = self.drifted
        return json.dumps(data, indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> DriftReport:
        """Read a report written by :meth:`to_json`.

        Raises:
            pydantic.ValidationError: not a report.
        """
        data = json.loads(text)
        if isinstance(data, dict):
            data.pop("drifted", None)  # derived from the features
        return cls.model_validate(data)

    def to_html(self) -> str:
        """A self-contained HTML page: the per-feature table and, for every feature with
        histogram data, a chart of the reference against the current distribution.

        Inline CSS and SVG only: no script, no external resource, readable offline.
        """
        from mlport.monitoring.report_page import render

        return render(self)
