"""``google.cloud.aiplatform.v1.JobService``: CustomJob, BatchPredictionJob,
ModelDeploymentMonitoringJob.

Lifecycle (https://cloud.google.com/vertex-ai/docs/reference/rest/v1/JobState): a job is created
``JOB_STATE_QUEUED``, then goes ``PENDING`` -> ``RUNNING`` (each after ``Delays.state`` seconds)
and ends ``SUCCEEDED`` or ``FAILED`` (with ``error``); a cancel moves it to ``CANCELLING`` then
``CANCELLED`` (error code 1). ``start_time`` is set on RUNNING, ``end_time`` on the end state.
A job that has not ended cannot be deleted, and one that has ended cannot be cancelled
(FAILED_PRECONDITION).

Validation (https://cloud.google.com/vertex-ai/docs/reference/rest/v1/CustomJobSpec,
https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.customJobs#WorkerPoolSpec,
https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.batchPredictionJobs,
https://cloud.google.com/vertex-ai/docs/reference/rest/v1/projects.locations.modelDeploymentMonitoringJobs):
see each ``_check_*`` function.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

import grpc  # type: ignore[import-untyped, unused-ignore]
from google.cloud.aiplatform_v1.types import batch_prediction_job as bpj
from google.cloud.aiplatform_v1.types import custom_job as cj
from google.cloud.aiplatform_v1.types import job_service as js
from google.cloud.aiplatform_v1.types import job_state as jstate
from google.cloud.aiplatform_v1.types import model_deployment_monitoring_job as mdm
from google.cloud.aiplatform_v1.types import operation as op_types
from google.longrunning import operations_pb2  # type: ignore[import-untyped, unused-ignore]
from google.protobuf import empty_pb2  # type: ignore[import-untyped, unused-ignore]
from google.rpc import status_pb2  # type: ignore[import-untyped, unused-ignore]

from mlport_vertex.emulator._rpc import (
    ApiError,
    RpcRouter,
    invalid,
    job_failure_requested,
    proto_plus,
)
from mlport_vertex.emulator.batch import predict_batch
from mlport_vertex.emulator.endpoints import EndpointService
from mlport_vertex.emulator.models import ModelService
from mlport_vertex.emulator.serving import ModelRuntime
from mlport_vertex.emulator.state import EmulatorState, PageToken, labels_ok, now
from mlport_vertex.emulator.training import run_custom_job
from mlport_vertex.emulator.validation import check_machine_spec

__all__ = ["JobService"]

SERVICE = "google.cloud.aiplatform.v1.JobService"

State: Any = jstate.JobState
T = TypeVar("T")
_SCHEDULE: Any = mdm.ModelDeploymentMonitoringJob.MonitoringScheduleState
_ENDED = {State.JOB_STATE_SUCCEEDED, State.JOB_STATE_FAILED, State.JOB_STATE_CANCELLED}
_INJECTED_FAILURE = "The job failed (injected by the emulator)."


def _copy(message: T) -> T:
    kind: Any = type(message)
    copy: T = kind.deserialize(kind.serialize(message))
    return copy


def _generic() -> op_types.GenericOperationMetadata:
    stamp = now()
    return op_types.GenericOperationMetadata(create_time=stamp, update_time=stamp)


def _check_custom_job(job: cj.CustomJob) -> None:
    """A display name, a first worker pool with a machine type and exactly one of a container
    or a python package; replica counts as Vertex AI requires them."""
    if not job.display_name:
        raise invalid("custom_job.display_name", "The display name of the job is required.")
    if len(job.display_name) > 128:
        raise invalid("custom_job.display_name", "The display name may have 128 characters.")
    labels_ok(job.labels.items(), "custom_job.labels")
    pools = job.job_spec.worker_pool_specs
    if not pools:
        raise invalid(
            "custom_job.job_spec.worker_pool_specs", "At least one worker pool is required."
        )
    for i, pool in enumerate(pools):
        field = f"custom_job.job_spec.worker_pool_specs[{i}]"
        empty = not pool.machine_spec.machine_type and not pool.replica_count
        if empty and i > 0:
            continue  # an empty pool after the first is skipped, as the reference allows
        check_machine_spec(pool.machine_spec, f"{field}.machine_spec", purpose="training")
        if i == 0 and pool.replica_count != 1:
            raise invalid(
                f"{field}.replica_count",
                "The first worker pool (the primary replica) must have replica_count 1.",
            )
        if pool.replica_count < 1:
            raise invalid(f"{field}.replica_count", "replica_count must be at least 1.")
        has_container = "container_spec" in pool
        has_package = "python_package_spec" in pool
        if has_container == has_package:
            raise invalid(
                field, "Exactly one of container_spec and python_package_spec is required."
            )
        if has_container and not pool.container_spec.image_uri:
            raise invalid(f"{field}.container_spec.image_uri", "image_uri is required.")
        if has_package:
            package = pool.python_package_spec
            if not package.executor_image_uri:
                raise invalid(
                    f"{field}.python_package_spec.executor_image_uri",
                    "executor_image_uri is required.",
                )
            if not package.package_uris:
                raise invalid(
                    f"{field}.python_package_spec.package_uris",
                    "At least one package URI is required.",
                )
            for n, uri in enumerate(package.package_uris):
                if not uri.startswith("gs://"):
                    raise invalid(
                        f"{field}.python_package_spec.package_uris[{n}]",
                        f"Package URI {uri!r} must be a gs:// URI.",
                    )
            if not package.python_module:
                raise invalid(
                    f"{field}.python_package_spec.python_module", "python_module is required."
                )
    prefix = job.job_spec.base_output_directory.output_uri_prefix
    if prefix and not prefix.startswith("gs://"):
        raise invalid(
            "custom_job.job_spec.base_output_directory.output_uri_prefix",
            f"output_uri_prefix must be a gs:// URI, got {prefix!r}.",
        )


class JobService:
    """CustomJob, BatchPredictionJob and ModelDeploymentMonitoringJob methods."""

    def __init__(
        self,
        state: EmulatorState,
        models: ModelService,
        endpoints: EndpointService,
        runtime: ModelRuntime,
    ) -> None:
        self.state = state
        self.models = models
        self.endpoints = endpoints
        self.runtime = runtime

    def handler(self, router: RpcRouter) -> grpc.GenericRpcHandler:
        """The gRPC handler of this service."""
        lro = operations_pb2.Operation
        mdm_job = mdm.ModelDeploymentMonitoringJob
        return router.service(
            SERVICE,
            {
                "CreateCustomJob": proto_plus(
                    js.CreateCustomJobRequest, cj.CustomJob, self.create_custom_job
                ),
                "GetCustomJob": proto_plus(
                    js.GetCustomJobRequest, cj.CustomJob, self._getter("customJobs")
                ),
                "ListCustomJobs": proto_plus(
                    js.ListCustomJobsRequest,
                    js.ListCustomJobsResponse,
                    self._lister("customJobs", js.ListCustomJobsResponse, "custom_jobs"),
                ),
                "CancelCustomJob": _empty(js.CancelCustomJobRequest, self._canceller("customJobs")),
                "DeleteCustomJob": proto_plus(
                    js.DeleteCustomJobRequest, lro, self._deleter("customJobs")
                ),
                "CreateBatchPredictionJob": proto_plus(
                    js.CreateBatchPredictionJobRequest,
                    bpj.BatchPredictionJob,
                    self.create_batch_job,
                ),
                "GetBatchPredictionJob": proto_plus(
                    js.GetBatchPredictionJobRequest,
                    bpj.BatchPredictionJob,
                    self._getter("batchPredictionJobs"),
                ),
                "ListBatchPredictionJobs": proto_plus(
                    js.ListBatchPredictionJobsRequest,
                    js.ListBatchPredictionJobsResponse,
                    self._lister(
                        "batchPredictionJobs",
                        js.ListBatchPredictionJobsResponse,
                        "batch_prediction_jobs",
                    ),
                ),
                "CancelBatchPredictionJob": _empty(
                    js.CancelBatchPredictionJobRequest, self._canceller("batchPredictionJobs")
                ),
                "DeleteBatchPredictionJob": proto_plus(
                    js.DeleteBatchPredictionJobRequest, lro, self._deleter("batchPredictionJobs")
                ),
                "CreateModelDeploymentMonitoringJob": proto_plus(
                    js.CreateModelDeploymentMonitoringJobRequest,
                    mdm_job,
                    self.create_monitoring_job,
                ),
                "GetModelDeploymentMonitoringJob": proto_plus(
                    js.GetModelDeploymentMonitoringJobRequest,
                    mdm_job,
                    self._getter("modelDeploymentMonitoringJobs"),
                ),
                "ListModelDeploymentMonitoringJobs": proto_plus(
                    js.ListModelDeploymentMonitoringJobsRequest,
                    js.ListModelDeploymentMonitoringJobsResponse,
                    self._lister(
                        "modelDeploymentMonitoringJobs",
                        js.ListModelDeploymentMonitoringJobsResponse,
                        "model_deployment_monitoring_jobs",
                    ),
                ),
                "PauseModelDeploymentMonitoringJob": _empty(
                    js.PauseModelDeploymentMonitoringJobRequest, self.pause_monitoring_job
                ),
                "ResumeModelDeploymentMonitoringJob": _empty(
                    js.ResumeModelDeploymentMonitoringJobRequest, self.resume_monitoring_job
                ),
                "DeleteModelDeploymentMonitoringJob": proto_plus(
                    js.DeleteModelDeploymentMonitoringJobRequest,
                    lro,
                    self._deleter("modelDeploymentMonitoringJobs"),
                ),
            },
        )

    # Generic get / list / cancel / delete ---------------------------------------------------

    def _getter(self, kind: str) -> Callable[[Any], Any]:
        def get(request: Any) -> Any:
            name = self.state.resource_name(request.name, kind)
            with self.state.lock:
                return _copy(self.state.get(kind, name))

        return get

    def _lister(self, kind: str, response: Any, field: str) -> Callable[[Any], Any]:
        def list_(request: Any) -> Any:
            parent = self.state.parent(request.parent)
            with self.state.lock:
                items = [_copy(j) for j in self.state.listed(kind, parent)]
            items = _filter_jobs(items, request.filter)
            page, token = PageToken.page(items, request.page_size, request.page_token)
            return response(**{field: page, "next_page_token": token})

        return list_

    def _canceller(self, kind: str) -> Callable[[Any], None]:
        def cancel(request: Any) -> None:
            name = self.state.resource_name(request.name, kind)
            with self.state.lock:
                job = self.state.get(kind, name)
                if job.state in _ENDED:
                    raise ApiError(
                        grpc.StatusCode.FAILED_PRECONDITION,
                        f"Cannot cancel {name}: it is already in state {job.state.name}.",
                    )
                if job.state != State.JOB_STATE_CANCELLING:
                    job.state = State.JOB_STATE_CANCELLING
                    job.update_time = now()

        return cancel

    def _deleter(self, kind: str) -> Callable[[Any], operations_pb2.Operation]:
        def delete(request: Any) -> operations_pb2.Operation:
            name = self.state.resource_name(request.name, kind)
            with self.state.lock:
                job = self.state.get(kind, name)
                if kind != "modelDeploymentMonitoringJobs" and job.state not in _ENDED:
                    raise ApiError(
                        grpc.StatusCode.FAILED_PRECONDITION,
                        f"{name} is in state {job.state.name}; cancel it and wait for it to "
                        "end before deleting it.",
                    )
                del self.state.table(kind)[name]
            return self.state.operation(
                name,
                lambda: None,
                metadata=op_types.DeleteOperationMetadata(generic_metadata=_generic()),
            )

        return delete

    # Lifecycle -----------------------------------------------------------------------------

    def _set(self, kind: str, name: str, generation: int, **fields: Any) -> Any:
        """Change a job's fields unless it was reset or deleted; returns the job or None."""
        with self.state.lock:
            if self.state.generation != generation:
                return None
            job = self.state.table(kind).get(name)
            if job is None:
                return None
            for key, value in fields.items():
                setattr(job, key, value)
            job.update_time = now()
            return job

    def _state_of(self, kind: str, name: str) -> Any:
        with self.state.lock:
            job = self.state.table(kind).get(name)
            return None if job is None else job.state

    def _lifecycle(
        self,
        kind: str,
        name: str,
        generation: int,
        run: Callable[[Callable[[], bool], Callable[[], bool]], tuple[str, str, dict[str, Any]]],
        fail: bool,
    ) -> None:
        """QUEUED -> PENDING -> RUNNING -> the end ``run`` reports."""
        delay = self.state.delays.state

        def forced() -> str | None:
            with self.state.lock:
                failures: dict[str, str] = self.state.extra.get("forced_failures", {})
                return failures.get(name)

        def cancelled() -> bool:
            return self._state_of(kind, name) == State.JOB_STATE_CANCELLING or (
                forced() is not None
            )

        def alive() -> bool:
            return self.state.generation == generation and self._state_of(kind, name) is not None

        for next_state in (State.JOB_STATE_PENDING, State.JOB_STATE_RUNNING):
            if not self.state.sleep_alive(delay, generation):
                return
            if cancelled():
                break
            extra = {"start_time": now()} if next_state == State.JOB_STATE_RUNNING else {}
            if self._set(kind, name, generation, state=next_state, **extra) is None:
                return
        fields: dict[str, Any] = {}
        if forced() is not None:
            outcome, message = "FAILED", forced() or _INJECTED_FAILURE
        elif cancelled():
            outcome, message = "CANCELLED", ""
        elif fail:
            outcome, message = "FAILED", _INJECTED_FAILURE
        else:
            outcome, message, fields = run(cancelled, alive)
        if not alive():
            return
        if forced() is not None:
            outcome, message = "FAILED", forced() or _INJECTED_FAILURE
        if outcome == "SUCCEEDED":
            self._set(
                kind, name, generation, state=State.JOB_STATE_SUCCEEDED, end_time=now(), **fields
            )
        elif outcome == "CANCELLED":
            if delay:
                self.state.sleep_alive(delay, generation)
            error = status_pb2.Status(code=1, message=message or f"{name} was cancelled.")
            self._set(
                kind,
                name,
                generation,
                state=State.JOB_STATE_CANCELLED,
                end_time=now(),
                error=error,
                **fields,
            )
        else:
            error = status_pb2.Status(code=3, message=message)
            self._set(
                kind,
                name,
                generation,
                state=State.JOB_STATE_FAILED,
                end_time=now(),
                error=error,
                **fields,
            )

    # CustomJob -----------------------------------------------------------------------------

    def create_custom_job(self, request: js.CreateCustomJobRequest) -> cj.CustomJob:
        """Create a job and start it (``JOB_STATE_QUEUED``); its replicas run locally."""
        parent = self.state.parent(request.parent)
        _check_custom_job(request.custom_job)
        job = _copy(request.custom_job)
        job.name = f"{parent}/customJobs/{self.state.new_id()}"
        stamp = now()
        job.create_time = stamp
        job.update_time = stamp
        job.state = State.JOB_STATE_QUEUED
        with self.state.lock:
            self.state.table("customJobs")[job.name] = job
            generation = self.state.generation
            snapshot = _copy(job)
        fail = job_failure_requested()

        def run(
            cancelled: Callable[[], bool], alive: Callable[[], bool]
        ) -> tuple[str, str, dict[str, Any]]:
            outcome = run_custom_job(self.state, _copy(snapshot), cancelled=cancelled, alive=alive)
            return outcome.state, outcome.message, {}

        self.state.background(
            lambda: self._lifecycle("customJobs", job.name, generation, run, fail),
            name=f"custom-job-{job.name.rsplit('/', 1)[-1]}",
        )
        return snapshot

    # BatchPredictionJob --------------------------------------------------------------------

    def create_batch_job(
        self, request: js.CreateBatchPredictionJobRequest
    ) -> bpj.BatchPredictionJob:
        """Create a batch prediction job; it predicts through a model server and writes files."""
        parent = self.state.parent(request.parent)
        spec = request.batch_prediction_job
        if not spec.display_name:
            raise invalid(
                "batch_prediction_job.display_name", "The display name of the job is required."
            )
        labels_ok(spec.labels.items(), "batch_prediction_job.labels")
        if not spec.model:
            raise invalid("batch_prediction_job.model", "model is required.")
        model = self.models.resolve(spec.model, "batch_prediction_job.model")
        fmt = spec.input_config.instances_format
        if not fmt:
            raise invalid(
                "batch_prediction_job.input_config.instances_format",
                "instances_format is required.",
            )
        if fmt not in ("jsonl", "csv"):
            raise invalid(
                "batch_prediction_job.input_config.instances_format",
                f'instances_format "{fmt}" is not supported here; the emulator reads jsonl and csv.',
            )
        uris = list(spec.input_config.gcs_source.uris)
        if not uris:
            raise invalid(
                "batch_prediction_job.input_config.gcs_source.uris",
                "At least one input URI is required.",
            )
        for n, uri in enumerate(uris):
            if not uri.startswith("gs://"):
                raise invalid(
                    f"batch_prediction_job.input_config.gcs_source.uris[{n}]",
                    f"{uri!r} is not a gs:// URI.",
                )
        out_format = spec.output_config.predictions_format
        if out_format != "jsonl":
            raise invalid(
                "batch_prediction_job.output_config.predictions_format",
                f'predictions_format must be "jsonl" here, got "{out_format}".',
            )
        prefix = spec.output_config.gcs_destination.output_uri_prefix
        if not prefix.startswith("gs://"):
            raise invalid(
                "batch_prediction_job.output_config.gcs_destination.output_uri_prefix",
                "output_uri_prefix (a gs:// URI) is required.",
            )
        if "dedicated_resources" not in spec:
            raise invalid(
                "batch_prediction_job.dedicated_resources",
                "A custom-trained model needs dedicated_resources.",
            )
        check_machine_spec(
            spec.dedicated_resources.machine_spec,
            "batch_prediction_job.dedicated_resources.machine_spec",
            purpose="prediction",
        )
        self.runtime.check_servable(model)
        job = _copy(spec)
        job.name = f"{parent}/batchPredictionJobs/{self.state.new_id()}"
        job.model = model.name
        job.model_version_id = model.version_id
        stamp = now()
        job.create_time = stamp
        job.update_time = stamp
        job.state = State.JOB_STATE_QUEUED
        with self.state.lock:
            self.state.table("batchPredictionJobs")[job.name] = job
            generation = self.state.generation
            snapshot = _copy(job)
        fail = job_failure_requested()
        model_copy = _copy(model)

        def run(
            cancelled: Callable[[], bool], alive: Callable[[], bool]
        ) -> tuple[str, str, dict[str, Any]]:
            key = f"batch-{job.name.rsplit('/', 1)[-1]}"
            try:
                server = self.runtime.start(key, model_copy)
            except ApiError as exc:
                return "FAILED", exc.message, {}
            try:
                result = predict_batch(
                    self.state,
                    snapshot,
                    server,
                    model_copy.display_name,
                    lambda: alive() and not cancelled(),
                )
            except Exception as exc:
                return "FAILED", f"Batch prediction failed: {exc}", {}
            finally:
                self.state.workers.stop(key)
            fields = {
                "output_info": bpj.BatchPredictionJob.OutputInfo(
                    gcs_output_directory=result.output_directory
                ),
                "completion_stats": {
                    "successful_count": result.succeeded,
                    "failed_count": result.failed,
                },
            }
            if cancelled():
                return "CANCELLED", "", fields
            if result.succeeded == 0 and result.failed:
                return (
                    "FAILED",
                    f"Every instance failed; see {result.output_directory}/errors_00001.jsonl.",
                    fields,
                )
            return "SUCCEEDED", "", fields

        self.state.background(
            lambda: self._lifecycle("batchPredictionJobs", job.name, generation, run, fail),
            name=f"batch-job-{job.name.rsplit('/', 1)[-1]}",
        )
        return snapshot

    # ModelDeploymentMonitoringJob ----------------------------------------------------------

    def create_monitoring_job(
        self, request: js.CreateModelDeploymentMonitoringJobRequest
    ) -> mdm.ModelDeploymentMonitoringJob:
        """Create a monitoring job for an endpoint. It is stored and scheduled, not run."""
        parent = self.state.parent(request.parent)
        spec = request.model_deployment_monitoring_job
        field = "model_deployment_monitoring_job"
        if not spec.display_name:
            raise invalid(f"{field}.display_name", "The display name of the job is required.")
        if not spec.endpoint:
            raise invalid(f"{field}.endpoint", "endpoint is required.")
        with self.state.lock:
            endpoint = self.endpoints.find(spec.endpoint, f"{field}.endpoint")
            deployed = {d.id for d in endpoint.deployed_models}
            for other in self.state.listed("modelDeploymentMonitoringJobs", parent):
                if other.endpoint == endpoint.name:
                    raise ApiError(
                        grpc.StatusCode.ALREADY_EXISTS,
                        f"Endpoint {endpoint.name} already has the monitoring job {other.name}.",
                    )
        configs = spec.model_deployment_monitoring_objective_configs
        if not configs:
            raise invalid(
                f"{field}.model_deployment_monitoring_objective_configs",
                "At least one objective config is required.",
            )
        for n, config in enumerate(configs):
            if config.deployed_model_id not in deployed:
                raise invalid(
                    f"{field}.model_deployment_monitoring_objective_configs[{n}].deployed_model_id",
                    f"Deployed model {config.deployed_model_id!r} is not on {endpoint.name}.",
                )
        interval = spec.model_deployment_monitoring_schedule_config.monitor_interval
        if not interval:
            raise invalid(
                f"{field}.model_deployment_monitoring_schedule_config.monitor_interval",
                "monitor_interval is required.",
            )
        # The reference: "It will be rounded up to next full hour."
        hours = -(-interval // dt.timedelta(hours=1))
        interval = dt.timedelta(hours=hours)
        sampling = spec.logging_sampling_strategy.random_sample_config.sample_rate
        if "logging_sampling_strategy" not in spec:
            raise invalid(
                f"{field}.logging_sampling_strategy", "logging_sampling_strategy is required."
            )
        if not 0 < sampling <= 1:
            raise invalid(
                f"{field}.logging_sampling_strategy.random_sample_config.sample_rate",
                "sample_rate must be above 0 and at most 1.",
            )
        labels_ok(spec.labels.items(), f"{field}.labels")
        job = _copy(spec)
        job.name = f"{parent}/modelDeploymentMonitoringJobs/{self.state.new_id()}"
        job.endpoint = endpoint.name
        stamp = now()
        job.create_time = stamp
        job.update_time = stamp
        job.state = State.JOB_STATE_PENDING
        job.schedule_state = _SCHEDULE.PENDING
        job.model_deployment_monitoring_schedule_config.monitor_interval = interval
        job.next_schedule_time = stamp + interval
        with self.state.lock:
            self.state.table("modelDeploymentMonitoringJobs")[job.name] = job
            generation = self.state.generation
            snapshot = _copy(job)

        def start() -> None:
            if self.state.sleep_alive(self.state.delays.state, generation):
                with self.state.lock:
                    current = self.state.table("modelDeploymentMonitoringJobs").get(job.name)
                    if current is not None and current.state == State.JOB_STATE_PENDING:
                        current.state = State.JOB_STATE_RUNNING
                        current.schedule_state = _SCHEDULE.OFFLINE
                        current.update_time = now()

        self.state.background(start, name=f"monitoring-{job.name.rsplit('/', 1)[-1]}")
        return snapshot

    def _monitoring_transition(self, name: str, want: Any, to: Any, verb: str) -> None:
        full = self.state.resource_name(name, "modelDeploymentMonitoringJobs")
        with self.state.lock:
            job = self.state.get("modelDeploymentMonitoringJobs", full)
            if job.state != want:
                raise ApiError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Cannot {verb} {full}: it is in state {job.state.name}, not {want.name}.",
                )
            job.state = to
            job.update_time = now()

    def pause_monitoring_job(self, request: js.PauseModelDeploymentMonitoringJobRequest) -> None:
        """RUNNING -> PAUSED."""
        self._monitoring_transition(
            request.name, State.JOB_STATE_RUNNING, State.JOB_STATE_PAUSED, "pause"
        )

    def resume_monitoring_job(self, request: js.ResumeModelDeploymentMonitoringJobRequest) -> None:
        """PAUSED -> RUNNING."""
        self._monitoring_transition(
            request.name, State.JOB_STATE_PAUSED, State.JOB_STATE_RUNNING, "resume"
        )

    def fail_job(self, name: str, message: str) -> None:
        """End a CustomJob or BatchPredictionJob FAILED with ``message`` (its processes stop).

        Raises:
            ApiError: NOT_FOUND, or FAILED_PRECONDITION for a job that has ended.
        """
        kind = "batchPredictionJobs" if "/batchPredictionJobs/" in name else "customJobs"
        full = self.state.resource_name(name, kind)
        with self.state.lock:
            job = self.state.get(kind, full)
            if job.state in _ENDED:
                raise ApiError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"{full} has already ended ({job.state.name}).",
                )
            self.state.extra.setdefault("forced_failures", {})[full] = message or _INJECTED_FAILURE


def _empty(request_type: Any, handler: Callable[[Any], None]) -> tuple[Any, Any, Any]:
    """A method table entry for a method that answers ``google.protobuf.Empty``."""

    def serve(request: Any) -> empty_pb2.Empty:
        handler(request)
        return empty_pb2.Empty()

    return (serve, request_type.deserialize, lambda message: message.SerializeToString())


def _filter_jobs(items: list[Any], expression: str) -> list[Any]:
    """The filters the SDK sends: ``display_name="x"``, ``state="JOB_STATE_..."`` and
    ``labels.k="v"``, joined by AND."""
    import re

    if not expression.strip():
        return items
    for term in re.split(r"\s+AND\s+", expression.strip()):
        match = re.fullmatch(r'\s*([\w.]+)\s*=\s*"?([^"]*)"?\s*', term)
        if not match:
            raise invalid("filter", f"Unsupported filter expression: {term!r}.")
        key, value = match.groups()
        if key in ("display_name", "displayName"):
            items = [j for j in items if j.display_name == value]
        elif key == "state":
            items = [j for j in items if j.state.name == value]
        elif key.startswith("labels."):
            label = key.split(".", 1)[1]
            items = [j for j in items if j.labels.get(label) == value]
        else:
            raise invalid("filter", f"Unsupported filter field: {key!r}.")
    return items
