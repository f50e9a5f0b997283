"""The dummy provider's implementation: every service over in-memory state.

State lives in a :class:`World` per ``world`` name, shared by every connection in the process,
as a cloud is shared by its clients. Resources move through their lifecycles one step per
``steps`` polls. Faults are injected per method name (``"training.submit"``), including
``drop_response_after_commit``: the call takes effect but its answer is lost.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from mlport.errors import AlreadyExistsError, InvalidSpecError, NotFoundError, TransientError
from mlport.handles import DriftReport, Endpoint, FeatureDrift, Job, ModelVersion, Monitor, Notebook
from mlport.services import (
    BatchRequest,
    DeployRequest,
    EndpointService,
    LogChunk,
    MonitoringService,
    NotebookService,
    Page,
    Provider,
    RegisterRequest,
    RegistryService,
    StorageService,
    SubmitRequest,
    TrainingService,
)
from mlport.services.notebooks import SPEC_HASH_TAG
from mlport.specs import MonitorOptions, NotebookOptions
from mlport.status import EndpointStatus, JobStatus, NotebookStatus
from mlport.testing.emulator import DROP_RESPONSE_AFTER_COMMIT, FaultInjector

T = TypeVar("T")
PAGE_SIZE = 2  # small, so that listings really page


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Lifecycle:
    """A resource walking through ``states``, one step per ``steps`` polls."""

    states: list[str]
    steps: int
    polls: int = 0
    final: str | None = None

    def advance(self) -> str:
        if self.final is not None:
            return self.final
        self.polls += 1
        index = min(len(self.states) - 1, self.polls // max(1, self.steps))
        return self.states[index]


@dataclass
class World:
    """The state of one dummy cloud."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    faults: FaultInjector = field(default_factory=FaultInjector)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    monitors: dict[str, dict[str, Any]] = field(default_factory=dict)
    notebooks: dict[str, dict[str, Any]] = field(default_factory=dict)
    objects: dict[str, bytes] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def call(self, method: str, action: Callable[[], T]) -> T:
        """Run ``action`` as the dummy cloud would, applying an injected fault if one is due."""
        with self.lock:
            self.calls[method] = self.calls.get(method, 0) + 1
            fault = self.faults.take(method)
            if fault is None:
                return action()
            if fault == DROP_RESPONSE_AFTER_COMMIT:
                action()
                raise TransientError(f"connection reset after {method} (injected)")
            if isinstance(fault, BaseException):
                raise fault
            if isinstance(fault, type):
                raise fault(f"{method} failed (injected)")
            raise TransientError(f"{method}: {fault} (injected)")


_worlds: dict[str, World] = {}
_worlds_lock = threading.Lock()


def world(name: str) -> World:
    """The shared world called ``name``."""
    with _worlds_lock:
        return _worlds.setdefault(name, World())


def reset(name: str | None = None) -> None:
    """Forget one world, or all of them."""
    with _worlds_lock:
        if name is None:
            _worlds.clear()
        else:
            _worlds.pop(name, None)


def _page(items: list[T], token: str | None) -> Page[T]:
    start = int(token or 0)
    end = start + PAGE_SIZE
    return Page(items[start:end], str(end) if end < len(items) else None)


class DummyProvider(Provider):
    """In-memory provider."""

    @property
    def world(self) -> World:
        return world(self.config.world)  # type: ignore[attr-defined]

    @property
    def steps(self) -> int:
        return int(self.config.steps)  # type: ignore[attr-defined]


class _DummyService:
    provider: Provider

    @property
    def world(self) -> World:
        return cast(DummyProvider, self.provider).world

    @property
    def steps(self) -> int:
        return cast(DummyProvider, self.provider).steps

    def _do(self, method: str, action: Callable[[], T]) -> T:
        return self.world.call(method, action)


class DummyTraining(_DummyService, TrainingService):
    def _job(self, name: str) -> dict[str, Any]:
        job = self.world.jobs.get(name)
        if job is None:
            raise NotFoundError(f"training job {name!r} not found", resource=name)
        return job

    def _submit(self, request: SubmitRequest) -> Job:
        def action() -> Job:
            if request.name in self.world.jobs:
                raise AlreadyExistsError(f"job {request.name!r} exists", resource=request.name)
            fails = bool(request.spec.hyperparameters.get("fail"))
            last = "FAILED" if fails else "SUCCEEDED"
            steps = int(request.spec.hyperparameters.get("steps", self.steps))
            self.world.jobs[request.name] = {
                "id": next(self.world.ids),
                "request": request,
                "life": _Lifecycle(["PENDING", "RUNNING", last], steps),
                "status": "PENDING",
                "logs": [f"starting {request.spec.code.entry_point}"],
                "created": _now(),
            }
            return self._view(request.name, advance=False)

        return self._do("training.submit", action)

    def _view(self, name: str, *, advance: bool = True) -> Job:
        job = self._job(name)
        if advance:
            status = job["life"].advance()
            if status != job["status"]:
                job["status"] = status
                job["logs"].append(f"status {status}")
                if status == "SUCCEEDED":
                    job["logs"].append('MLPORT_METRIC {"name": "accuracy", "value": 0.9}')
        request: SubmitRequest = job["request"]
        status = JobStatus(job["status"])
        return Job(
            name=name,
            provider_id=f"dummy/jobs/{job['id']}",
            status=status,
            metrics={"accuracy": 0.9} if status is JobStatus.SUCCEEDED else {},
            failure_reason="hyperparameter fail=true"
            if status is JobStatus.FAILED
            else ("cancelled by user" if status is JobStatus.CANCELLED else None),
            model_uri=f"mem://models/{name}" if status is JobStatus.SUCCEEDED else None,
            lineage={
                "hyperparameters": request.spec.hyperparameters,
                "instance_type": request.compute.instance_type,
            },
            spec_hash=request.spec_hash,
            created_at=job["created"],
            message=f"step {job['life'].polls}",
            tags=dict(request.spec.tags),
        )

    def _get(self, name: str) -> Job:
        return self._do("training.get", lambda: self._view(name))

    def _list(self, page_token: str | None) -> Page[Job]:
        def action() -> Page[Job]:
            jobs = self.world.jobs
            names = sorted(
                (n for n in jobs if "batch" not in jobs[n]), key=lambda n: -jobs[n]["id"]
            )
            page = _page(names, page_token)
            return Page([self._view(n, advance=False) for n in page.items], page.next_token)

        return self._do("training.list", action)

    def _cancel(self, name: str) -> None:
        def action() -> None:
            job = self._job(name)
            job["life"].final = job["status"] = "CANCELLED"

        self._do("training.cancel", action)

    def _read_logs(self, name: str, cursor: str | None) -> LogChunk:
        def action() -> LogChunk:
            lines = self._job(name)["logs"]
            start = int(cursor or 0)
            return LogChunk(lines[start:], str(len(lines)))

        return self._do("training.logs", action)

    def _delete(self, name: str) -> None:
        def action() -> None:
            self._job(name)
            del self.world.jobs[name]

        self._do("training.delete", action)


class DummyRegistry(_DummyService, RegistryService):
    def _versions(self, name: str) -> list[dict[str, Any]]:
        model = self.world.models.get(name)
        if model is None or not model["versions"]:
            raise NotFoundError(f"model {name!r} not found", resource=name)
        return model["versions"]  # type: ignore[no-any-return]

    def _view(self, name: str, record: dict[str, Any]) -> ModelVersion:
        model = self.world.models[name]
        aliases = sorted(a for a, v in model["aliases"].items() if v == record["version"])
        stage = next((a for a in aliases if a in ("staging", "production", "archived")), None)
        return ModelVersion(
            name=name,
            version=record["version"],
            uri=record["uri"],
            stage=stage,
            aliases=aliases,
            framework=record["framework"],
            metrics=record["metrics"],
            lineage=record["lineage"],
            created_at=record["created"],
            provider_id=f"dummy/models/{name}/{record['version']}",
            tags=record["tags"],
        )

    def _register(self, request: RegisterRequest) -> ModelVersion:
        def action() -> ModelVersion:
            model = self.world.models.setdefault(
                request.name, {"versions": [], "aliases": {}, "next": 1}
            )
            version = str(model["next"])
            model["next"] += 1
            record = {
                "version": version,
                "uri": request.uri or f"mem://registry/{request.name}/{version}",
                "framework": request.framework,
                "metrics": request.metrics,
                "lineage": request.lineage,
                "created": _now(),
                "tags": {**request.tags, "mlport.request_id": request.request_id},
            }
            model["versions"].append(record)
            return self._view(request.name, record)

        return self._do("registry.register", action)

    def _find_by_request_id(self, name: str, request_id: str) -> ModelVersion | None:
        def action() -> ModelVersion | None:
            model = self.world.models.get(name, {"versions": []})
            for record in model["versions"]:
                if record["tags"].get("mlport.request_id") == request_id:
                    return self._view(name, record)
            return None

        return self._do("registry.find", action)

    def _get_version(self, name: str, version: str) -> ModelVersion:
        def action() -> ModelVersion:
            for record in self._versions(name):
                if record["version"] == version:
                    return self._view(name, record)
            raise NotFoundError(f"model {name!r} has no version {version}", resource=name)

        return self._do("registry.get", action)

    def _latest(self, name: str) -> ModelVersion:
        return self._do("registry.get", lambda: self._view(name, self._versions(name)[-1]))

    def _resolve_alias(self, name: str, alias: str) -> str:
        def action() -> str:
            self._versions(name)
            version = self.world.models[name]["aliases"].get(alias)
            if version is None:
                raise NotFoundError(f"model {name!r} has no alias {alias!r}", resource=name)
            return str(version)

        return self._do("registry.alias", action)

    def _list_models(self, page_token: str | None) -> Page[ModelVersion]:
        def action() -> Page[ModelVersion]:
            live = sorted(n for n, m in self.world.models.items() if m["versions"])
            page = _page(live, page_token)
            return Page(
                [self._view(n, self.world.models[n]["versions"][-1]) for n in page.items],
                page.next_token,
            )

        return self._do("registry.list", action)

    def _list_versions(self, name: str, page_token: str | None) -> Page[ModelVersion]:
        def action() -> Page[ModelVersion]:
            page = _page(self._versions(name), page_token)
            return Page([self._view(name, r) for r in page.items], page.next_token)

        return self._do("registry.versions", action)

    def _set_stage(self, name: str, version: str, stage: str) -> ModelVersion:
        def action() -> ModelVersion:
            self._get_version(name, version)
            aliases = self.world.models[name]["aliases"]
            if stage == "none":
                for alias in [a for a, v in aliases.items() if v == version]:
                    del aliases[alias]
            else:
                aliases[stage] = version
            return self._get_version(name, version)

        return self._do("registry.set_stage", action)

    def _delete_version(self, name: str, version: str) -> None:
        def action() -> None:
            versions = self._versions(name)
            kept = [r for r in versions if r["version"] != version]
            if len(kept) == len(versions):
                raise NotFoundError(f"model {name!r} has no version {version}", resource=name)
            versions[:] = kept
            aliases = self.world.models[name]["aliases"]
            for alias in [a for a, v in aliases.items() if v == version]:
                del aliases[alias]

        self._do("registry.delete", action)

    def _delete_model(self, name: str) -> None:
        def action() -> None:
            self._versions(name)
            del self.world.models[name]

        self._do("registry.delete", action)


class DummyEndpoints(_DummyService, EndpointService):
    def _endpoint(self, name: str) -> dict[str, Any]:
        endpoint = self.world.endpoints.get(name)
        if endpoint is None:
            raise NotFoundError(f"endpoint {name!r} not found", resource=name)
        return endpoint

    def _view(self, name: str, *, advance: bool = True) -> Endpoint:
        endpoint = self._endpoint(name)
        if advance:
            endpoint["status"] = endpoint["life"].advance()
        return Endpoint(
            name=name,
            status=EndpointStatus(endpoint["status"]),
            url=f"mem://endpoints/{name}",
            variants=dict(endpoint["variants"]),
            model=endpoint["model"],
            capture_percent=endpoint["capture"],
            provider_id=f"dummy/endpoints/{endpoint['id']}",
            created_at=endpoint["created"],
        )

    def _deploy(self, request: DeployRequest) -> Endpoint:
        def action() -> Endpoint:
            world = self.world
            version = request.version.version
            if request.existing is None or request.name not in world.endpoints:
                world.endpoints[request.name] = {
                    "id": next(world.ids),
                    "variants": {version: 100.0},
                    "model": request.version.name,
                    "capture": request.options.capture_percent,
                    "created": _now(),
                    "status": "CREATING",
                    "life": _Lifecycle(["CREATING", "READY"], self.steps),
                }
            else:
                endpoint = world.endpoints[request.name]
                share = request.options.traffic_percent
                if share is None:
                    endpoint["variants"] = {version: 100.0}
                else:
                    rest = 100.0 - share
                    total = sum(v for k, v in endpoint["variants"].items() if k != version) or 1
                    endpoint["variants"] = {
                        **{
                            k: v * rest / total
                            for k, v in endpoint["variants"].items()
                            if k != version
                        },
                        version: share,
                    }
                endpoint["model"] = request.version.name
                endpoint["capture"] = request.options.capture_percent
                endpoint["life"] = _Lifecycle(["UPDATING", "READY"], self.steps)
                endpoint["status"] = "UPDATING"
            return self._view(request.name, advance=False)

        return self._do("endpoints.deploy", action)

    def _get(self, name: str) -> Endpoint:
        return self._do("endpoints.get", lambda: self._view(name))

    def _list(self, page_token: str | None) -> Page[Endpoint]:
        def action() -> Page[Endpoint]:
            page = _page(sorted(self.world.endpoints), page_token)
            return Page([self._view(n, advance=False) for n in page.items], page.next_token)

        return self._do("endpoints.list", action)

    def _delete(self, name: str) -> None:
        def action() -> None:
            self._endpoint(name)
            del self.world.endpoints[name]

        self._do("endpoints.delete", action)

    def _predict(self, name: str, rows: list[Any], variant: str | None) -> list[Any]:
        def action() -> list[Any]:
            endpoint = self._endpoint(name)
            if variant is not None and variant not in endpoint["variants"]:
                raise NotFoundError(f"endpoint {name!r} has no variant {variant!r}", resource=name)
            return [sum(r.values()) if isinstance(r, dict) else sum(r) for r in rows]

        return self._do("endpoints.predict", action)

    def _set_traffic(self, name: str, split: dict[str, float]) -> Endpoint:
        def action() -> Endpoint:
            self._endpoint(name)["variants"] = {k: v for k, v in split.items() if v > 0}
            return self._view(name, advance=False)

        return self._do("endpoints.set_traffic", action)

    def _endpoint_logs(self, name: str) -> list[str]:
        return self._do("endpoints.logs", lambda: [f"serving {self._endpoint(name)['model']}"])

    def _batch_predict(self, request: BatchRequest) -> Job:
        def action() -> Job:
            self.world.jobs[request.name] = {
                "id": next(self.world.ids),
                "batch": request,
                "life": _Lifecycle(["PENDING", "RUNNING", "SUCCEEDED"], self.steps),
                "status": "PENDING",
            }
            return self._batch_view(request.name, advance=False)

        return self._do("endpoints.batch", action)

    def _batch_view(self, name: str, *, advance: bool = True) -> Job:
        job = self.world.jobs.get(name)
        if job is None or "batch" not in job:
            raise NotFoundError(f"batch job {name!r} not found", resource=name)
        if advance:
            job["status"] = job["life"].advance()
        return Job(
            name=name,
            kind="batch",
            status=JobStatus(job["status"]),
            output_uri=job["batch"].output,
            provider_id=f"dummy/batch/{job['id']}",
        )

    def _get_batch(self, name: str) -> Job:
        return self._do("endpoints.get_batch", lambda: self._batch_view(name))

    def _list_batch(self, page_token: str | None) -> Page[Job]:
        def action() -> Page[Job]:
            jobs = self.world.jobs
            names = sorted((n for n in jobs if "batch" in jobs[n]), key=lambda n: -jobs[n]["id"])
            page = _page(names, page_token)
            return Page([self._batch_view(n, advance=False) for n in page.items], page.next_token)

        return self._do("endpoints.list_batch", action)

    def _cancel_batch(self, name: str) -> None:
        def action() -> None:
            job = self.world.jobs[name]
            job["life"].final = job["status"] = "CANCELLED"

        self._do("endpoints.cancel_batch", action)


class DummyMonitoring(_DummyService, MonitoringService):
    def _monitor(self, endpoint: str) -> dict[str, Any]:
        monitor = self.world.monitors.get(endpoint)
        if monitor is None or not monitor["enabled"]:
            raise NotFoundError(f"endpoint {endpoint!r} has no monitor", resource=endpoint)
        return monitor

    def _view(self, endpoint: str) -> Monitor:
        monitor = self._monitor(endpoint)
        options: MonitorOptions = monitor["options"]
        return Monitor(
            endpoint=endpoint,
            schedule=options.schedule,
            baseline=options.baseline or "",
            thresholds=options.thresholds,
            alert=options.alert,
            provider_id=f"dummy/monitors/{endpoint}",
        )

    def _enable(self, endpoint: str, options: MonitorOptions) -> Monitor:
        def action() -> Monitor:
            if endpoint not in self.world.endpoints:
                raise NotFoundError(f"endpoint {endpoint!r} not found", resource=endpoint)
            if options.baseline is None:
                raise InvalidSpecError(
                    "the dummy keeps no registered baselines; give baseline=", resource=endpoint
                )
            old = self.world.monitors.get(endpoint, {"reports": []})
            self.world.monitors[endpoint] = {
                "options": options,
                "enabled": True,
                "reports": old["reports"],
            }
            return self._view(endpoint)

        return self._do("monitoring.enable", action)

    def _get(self, endpoint: str) -> Monitor:
        return self._do("monitoring.get", lambda: self._view(endpoint))

    def _list(self, page_token: str | None) -> Page[Monitor]:
        def action() -> Page[Monitor]:
            live = sorted(e for e, m in self.world.monitors.items() if m["enabled"])
            page = _page(live, page_token)
            return Page([self._view(e) for e in page.items], page.next_token)

        return self._do("monitoring.list", action)

    def _run(self, endpoint: str) -> DriftReport:
        def action() -> DriftReport:
            monitor = self._monitor(endpoint)
            threshold = monitor["options"].thresholds.get("*", 0.1)
            report = DriftReport(
                endpoint=endpoint,
                created_at=_now(),
                features=[
                    FeatureDrift(
                        feature="f0",
                        statistic="psi",
                        value=0.0,
                        threshold=threshold,
                        drifted=False,
                        reference_size=1,
                        current_size=0,
                    )
                ],
            )
            monitor["reports"].insert(0, report)
            return report

        return self._do("monitoring.run", action)

    def _reports(self, endpoint: str, page_token: str | None) -> Page[DriftReport]:
        def action() -> Page[DriftReport]:
            monitor = self.world.monitors.get(endpoint)
            if monitor is None:
                raise NotFoundError(f"endpoint {endpoint!r} has no monitor", resource=endpoint)
            return _page(list(monitor["reports"]), page_token)

        return self._do("monitoring.reports", action)

    def _disable(self, endpoint: str) -> None:
        def action() -> None:
            self._monitor(endpoint)["enabled"] = False

        self._do("monitoring.disable", action)


class DummyNotebooks(_DummyService, NotebookService):
    def _notebook(self, name: str) -> dict[str, Any]:
        notebook = self.world.notebooks.get(name)
        if notebook is None:
            raise NotFoundError(f"notebook {name!r} not found", resource=name)
        return notebook

    def _view(self, name: str, *, advance: bool = True) -> Notebook:
        notebook = self._notebook(name)
        if advance:
            notebook["status"] = notebook["life"].advance()
        options: NotebookOptions = notebook["options"]
        running = notebook["status"] == "RUNNING"
        return Notebook(
            name=name,
            status=NotebookStatus(notebook["status"]),
            url=f"mem://notebooks/{name}" if running else None,
            instance_type=notebook["instance_type"],
            idle_timeout=options.idle_timeout,
            provider_id=f"dummy/notebooks/{notebook['id']}",
            tags={SPEC_HASH_TAG: notebook["spec_hash"]},
        )

    def _create(
        self, name: str, options: NotebookOptions, compute: Any, spec_hash: str
    ) -> Notebook:
        def action() -> Notebook:
            if name in self.world.notebooks:
                raise AlreadyExistsError(f"notebook {name!r} exists", resource=name)
            self.world.notebooks[name] = {
                "id": next(self.world.ids),
                "options": options,
                "spec_hash": spec_hash,
                "instance_type": compute.instance_type,
                "status": "PENDING",
                "life": _Lifecycle(["PENDING", "RUNNING"], self.steps),
            }
            return self._view(name, advance=False)

        return self._do("notebooks.create", action)

    def _get(self, name: str) -> Notebook:
        return self._do("notebooks.get", lambda: self._view(name))

    def _list(self, page_token: str | None) -> Page[Notebook]:
        def action() -> Page[Notebook]:
            page = _page(sorted(self.world.notebooks), page_token)
            return Page([self._view(n, advance=False) for n in page.items], page.next_token)

        return self._do("notebooks.list", action)

    def _start(self, name: str) -> None:
        def action() -> None:
            notebook = self._notebook(name)
            notebook["life"] = _Lifecycle(["PENDING", "RUNNING"], self.steps)
            notebook["status"] = "PENDING"

        self._do("notebooks.start", action)

    def _stop(self, name: str) -> None:
        def action() -> None:
            notebook = self._notebook(name)
            notebook["life"] = _Lifecycle(["STOPPING", "STOPPED"], self.steps)
            notebook["status"] = "STOPPING"

        self._do("notebooks.stop", action)

    def _delete(self, name: str) -> None:
        def action() -> None:
            self._notebook(name)
            del self.world.notebooks[name]

        self._do("notebooks.delete", action)


class DummyStorage(_DummyService, StorageService):
    schemes = ("mem",)

    def _read(self, uri: str) -> Iterator[bytes]:
        data = self._do("storage.read", lambda: self.world.objects.get(uri))
        if data is None:
            raise NotFoundError(f"no object at {uri}", resource=uri)
        return iter([data[i : i + 4096] for i in range(0, len(data), 4096)] or [b""])

    def _write(self, uri: str, chunks: Iterator[bytes]) -> None:
        data = b"".join(chunks)
        self._do("storage.write", lambda: self.world.objects.__setitem__(uri, data))

    def _exists(self, uri: str) -> bool:
        return self._do("storage.exists", lambda: uri in self.world.objects)

    def _list(self, prefix: str) -> Iterator[str]:
        keys = self._do("storage.list", lambda: sorted(self.world.objects))
        return iter([k for k in keys if k.startswith(prefix)])

    def _delete(self, uri: str) -> None:
        def action() -> None:
            if uri not in self.world.objects:
                raise NotFoundError(f"no object at {uri}", resource=uri)
            del self.world.objects[uri]

        self._do("storage.delete", action)


DummyProvider.service_classes = {
    "training": DummyTraining,
    "registry": DummyRegistry,
    "endpoints": DummyEndpoints,
    "monitoring": DummyMonitoring,
    "notebooks": DummyNotebooks,
    "storage": DummyStorage,
}
