"""Online endpoints and batch prediction.

Provider contract:

- ``_deploy(request)`` creates the endpoint, or updates it: replace the serving version, or with
  ``request.options.traffic_percent`` add the version beside the current one as a canary taking
  that share. Returns at once; the base class waits for READY when asked.
- ``_set_traffic(name, split)`` applies a split whose keys are existing variants (checked here).
- ``_predict(name, rows, variant)`` returns one prediction per row.
- ``_get`` / ``_delete`` raise ``NotFoundError`` for an unknown endpoint; ``_delete`` removes what
  the provider created for it (configs, models, processes).
- Batch: ``_batch_predict(request)`` starts a job; ``_get_batch``, ``_list_batch`` and
  ``_read_batch_logs`` mirror the training service's job methods.
"""

from __future__ import annotations

import abc
import builtins
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mlport.errors import InvalidSpecError
from mlport.handles import Endpoint, Job, ModelVersion
from mlport.services.base import Page
from mlport.services.training import JobOwner, LogChunk, is_uri, unique_name
from mlport.specs import BatchOptions, Compute, DeploymentOptions
from mlport.waiting import wait_until

if TYPE_CHECKING:
    from mlport.compute import ResolvedCompute

__all__ = ["BatchRequest", "DeployRequest", "EndpointService"]


@dataclass
class DeployRequest:
    """What ``_deploy`` receives."""

    name: str
    version: ModelVersion
    options: DeploymentOptions
    compute: ResolvedCompute
    existing: Endpoint | None


@dataclass
class BatchRequest:
    """What ``_batch_predict`` receives; ``input``/``output`` are absolute local paths or URIs."""

    name: str
    version: ModelVersion
    options: BatchOptions
    compute: ResolvedCompute
    input: str
    output: str


def _as_rows(rows: Any) -> list[Any]:
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # a pandas DataFrame
        return list(rows.to_dict(orient="records"))
    if hasattr(rows, "tolist"):  # numpy arrays
        rows = rows.tolist()
    if not isinstance(rows, list | tuple) or not rows:
        raise InvalidSpecError(
            "predict() takes a non-empty list of rows, e.g. [[0.1, 3, 7.5]] or [{'age': 41}]"
        )
    if all(isinstance(value, int | float) for value in rows):
        raise InvalidSpecError(
            "predict() takes a list of rows; wrap a single row in a list: [[0.1, 3, 7.5]]"
        )
    return list(rows)


class EndpointService(JobOwner):
    """Online endpoints, and batch prediction jobs, on one provider."""

    kind: ClassVar[str] = "endpoints"
    resource_kind = "endpoint"

    def deploy(
        self,
        name: str,
        version: ModelVersion,
        *,
        compute: Compute | None = None,
        min_replicas: int = 1,
        max_replicas: int | None = None,
        capture_percent: float = 0,
        traffic_percent: float | None = None,
        provider_options: dict[str, dict[str, Any]] | None = None,
        wait: bool = True,
        timeout: float | None = None,
    ) -> Endpoint:
        """Create or update endpoint ``name`` to serve ``version``.

        On an existing endpoint the new version replaces the serving one, or with
        ``traffic_percent`` runs beside it as a canary taking that share of traffic.

        Args:
            wait: Block until the endpoint is READY (default), showing progress.

        Raises:
            InvalidSpecError: bad options, a name the provider refuses, a canary on an endpoint
                that does not exist.
            DeploymentFailedError: the deployment FAILED (the previous version keeps serving
                where the provider supports it).
        """
        self._require("endpoints")
        if not isinstance(version, ModelVersion):
            raise InvalidSpecError(
                f"deploy() takes a ModelVersion (from registry.register or registry.get), "
                f"got {type(version).__name__}"
            )
        options = DeploymentOptions(
            compute=compute or Compute(),
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            capture_percent=capture_percent,
            traffic_percent=traffic_percent,
            provider_options=provider_options or {},
        )
        if options.capture_percent:
            self._require("endpoints.capture")
        if (options.max_replicas or options.min_replicas) > options.min_replicas:
            self._require("endpoints.autoscaling")
        self._check_name(name)
        existing = self._find(self._get, name)
        if options.traffic_percent is not None:
            self._require("endpoints.canary")
            if existing is None:
                raise InvalidSpecError(
                    f"endpoint {name!r} does not exist yet; deploy a first version without "
                    "traffic_percent, then add canaries beside it",
                    resource=name,
                )
        resolved = self.provider.resolve_compute(options.compute, "hosting")
        request = DeployRequest(name, version, options, resolved, existing)
        endpoint = self._bind(self._call("deploy", self._deploy, request))
        self._emit("deployed", name, version=version.version, model=version.name)
        if wait:
            endpoint.wait(timeout)
        return endpoint

    def get(self, name: str) -> Endpoint:
        """The endpoint called ``name``.

        Raises:
            NotFoundError: no such endpoint.
        """
        self._require("endpoints")
        return self._bind(self._call("get", self._get, name))

    def list(self) -> Iterator[Endpoint]:
        """Endpoints, pages fetched lazily."""
        self._require("endpoints")
        return self._paginate(self._list)

    def delete(self, name: str) -> None:
        """Delete the endpoint and what was created for it. Idempotent."""
        self._delete_idempotent("endpoints", name, self._delete, name)

    def predict(self, name: str, rows: Any, *, variant: str | None = None) -> builtins.list[Any]:
        """Send rows (lists, dicts, a numpy array or a DataFrame); one prediction per row.

        Args:
            variant: Pin a model version instead of following the traffic split.

        Raises:
            InvalidSpecError: rows that are not a list of rows, or that the model refuses.
            NotFoundError: no such endpoint or variant.
        """
        self._require("endpoints")
        return self._call("predict", self._predict, name, _as_rows(rows), variant)

    def set_traffic(self, name: str, split: Mapping[str | int, float]) -> Endpoint:
        """Set the traffic split between versions: ``{"1": 90, "2": 10}``; sums to 100.

        Raises:
            InvalidSpecError: shares that do not sum to 100, or a version not on the endpoint.
        """
        self._require("endpoints.canary")
        clean = {str(k): float(v) for k, v in split.items()}
        if any(v < 0 or v > 100 or math.isnan(v) for v in clean.values()):
            raise InvalidSpecError(f"traffic shares must be between 0 and 100, got {clean}")
        if abs(sum(clean.values()) - 100) > 1e-6:
            raise InvalidSpecError(
                f"traffic shares must sum to 100, got {sum(clean.values()):g} ({clean})"
            )
        endpoint = self.get(name)
        unknown = sorted(set(clean) - set(endpoint.variants))
        if unknown:
            raise InvalidSpecError(
                f"endpoint {name!r} has no version {', '.join(unknown)}; its versions: "
                f"{', '.join(sorted(endpoint.variants)) or 'none'}",
                resource=name,
            )
        result = self._bind(self._call("set_traffic", self._set_traffic, name, clean))
        self._emit("traffic_set", name, split=clean)
        return result

    def logs(self, name: str) -> Iterator[str]:
        """The serving logs of the endpoint."""
        self._require("endpoints.logs")
        return iter(self._call("logs", self._endpoint_logs, name))

    def batch_predict(
        self,
        version: ModelVersion,
        input: str | Path,
        output: str | Path,
        *,
        compute: Compute | None = None,
        name: str | None = None,
        max_runtime: int | str = 24 * 3600,
        batch_size: int = 1000,
        id_column: str | None = None,
        provider_options: dict[str, dict[str, Any]] | None = None,
    ) -> Job:
        """Start a batch prediction job over ``input`` writing to ``output``; returns at once.

        ``input`` is a CSV, JSON Lines or Parquet file, or a folder of them; ``output`` is a
        folder that receives ``<file>.predictions.<ext>`` per input file (``row_id`` and
        ``prediction`` columns) and ``_batch.json`` when the job succeeds
        (:mod:`mlport.serving.batch`). ``job.wait()`` follows it; ``job.metrics["rows"]`` counts
        the rows predicted.

        Raises:
            InvalidSpecError: a local input that does not exist, or bad options.
        """
        self._require("endpoints.batch")
        if not isinstance(version, ModelVersion):
            raise InvalidSpecError(
                f"batch_predict() takes a ModelVersion (from registry.register or registry.get), "
                f"got {type(version).__name__}"
            )
        options = BatchOptions(
            input=str(input),
            output=str(output),
            compute=compute or Compute(),
            max_runtime=max_runtime,  # type: ignore[arg-type]
            batch_size=batch_size,
            id_column=id_column,
            provider_options=provider_options or {},
        )
        source = options.input
        if not is_uri(source) or source.startswith("file://"):
            path = Path(source.removeprefix("file://")).expanduser()
            if not path.exists():
                raise InvalidSpecError(f"batch input {source!r} does not exist")
            source = str(path.resolve())
        target = options.output
        if not is_uri(target) or target.startswith("file://"):
            target = str(Path(target.removeprefix("file://")).expanduser().resolve())
        job_name = name or unique_name(f"batch-{version.name}")
        self._check_name(job_name, "job")
        resolved = self.provider.resolve_compute(options.compute, "batch")
        request = BatchRequest(job_name, version, options, resolved, source, target)
        job = self._bind(self._call("batch_predict", self._batch_predict, request))
        self._emit("batch_submitted", job_name, model=version.name, version=version.version)
        return job

    def get_batch(self, name: str) -> Job:
        """The batch job called ``name``.

        Raises:
            NotFoundError: no such job.
        """
        self._require("endpoints.batch")
        return self._bind(self._call("get", self._get_batch, name))

    def batch_logs(self, name: str, *, follow: bool = False) -> Iterator[str]:
        """The log lines of batch job ``name``; with ``follow=True`` until it ends."""
        self._require("endpoints.batch")
        return self._follow(name, self.get_batch, follow)

    def list_batch(self) -> Iterator[Job]:
        """Batch jobs, newest first where the provider orders them; pages fetched lazily."""
        self._require("endpoints.batch")
        return self._paginate(self._list_batch)

    def _wait_endpoint(self, endpoint: Endpoint, *, timeout: float | None, progress: bool) -> None:
        def poll() -> tuple[bool, str, str]:
            endpoint.refresh()
            return endpoint.status.is_terminal, endpoint.status.value, endpoint.message

        wait_until(
            poll,
            what=f"endpoint {endpoint.name}",
            timeout=timeout,
            policy=self.provider.poll_policy,
            progress=progress,
        )

    def _refetch(self, job: Job) -> Job:
        return self.get_batch(job.name)

    def _job_log_chunk(self, name: str, cursor: str | None) -> LogChunk:
        return self._call("logs", self._read_batch_logs, name, cursor)

    def cancel(self, name: str) -> Job:
        """Cancel a batch job. Idempotent; does not block."""
        job = self.get_batch(name)
        if not job.status.is_terminal:
            self._call("cancel", self._cancel_batch, name)
            job = self.get_batch(name)
        return job

    @abc.abstractmethod
    def _deploy(self, request: DeployRequest) -> Endpoint: ...

    @abc.abstractmethod
    def _get(self, name: str) -> Endpoint: ...

    @abc.abstractmethod
    def _list(self, page_token: str | None) -> Page[Endpoint]: ...

    @abc.abstractmethod
    def _delete(self, name: str) -> None: ...

    @abc.abstractmethod
    def _predict(
        self, name: str, rows: builtins.list[Any], variant: str | None
    ) -> builtins.list[Any]: ...

    def _set_traffic(self, name: str, split: dict[str, float]) -> Endpoint:
        self._not_implemented("endpoints.canary")

    def _endpoint_logs(self, name: str) -> builtins.list[str]:
        self._not_implemented("endpoints.logs")

    def _batch_predict(self, request: BatchRequest) -> Job:
        self._not_implemented("endpoints.batch")

    def _get_batch(self, name: str) -> Job:
        self._not_implemented("endpoints.batch")

    def _list_batch(self, page_token: str | None) -> Page[Job]:
        self._not_implemented("endpoints.batch")

    def _read_batch_logs(self, name: str, cursor: str | None) -> LogChunk:
        return LogChunk([], cursor)

    def _cancel_batch(self, name: str) -> None:
        self._not_implemented("endpoints.batch")
