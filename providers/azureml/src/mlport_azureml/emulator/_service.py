"""The emulated workspace: state, request dispatch, faults, latency and long-running operations.

One :class:`Service` holds everything the HTTPS server answers from. Resource families
(:mod:`.workspace`, :mod:`.assets`, :mod:`.jobs`, :mod:`.compute`, :mod:`.online`, :mod:`.batch`,
:mod:`.schedules`) register their routes on it and keep their state in :attr:`Service.state`,
guarded by :attr:`Service.lock`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from mlport.errors import InvalidSpecError
from mlport.testing.emulator import DROP_RESPONSE_AFTER_COMMIT, FaultInjector, InjectedError
from mlport_azureml.emulator._arm import PROVIDER, now_iso
from mlport_azureml.emulator._http import ApiError, Request, Response, Router
from mlport_azureml.emulator.azurite import Azurite

__all__ = ["JOB_FAILED", "Service", "Settings"]

_log = logging.getLogger("mlport_azureml.emulator")

JOB_FAILED = "JobFailed"
"""Fault for the ``Jobs_Execute`` operation: the next job ends Failed instead of running."""

CONTROL_PREFIX = "/mlport-emulator"

# error code -> (HTTP status, ARM code, message)
_FAULTS: dict[str, tuple[int, str, str]] = {
    "429": (429, "TooManyRequests", "The request was throttled (injected fault)."),
    "TooManyRequests": (429, "TooManyRequests", "The request was throttled (injected fault)."),
    "500": (500, "InternalServerError", "The service hit an internal error (injected fault)."),
    "InternalServerError": (
        500,
        "InternalServerError",
        "The service hit an internal error (injected fault).",
    ),
    "503": (503, "ServiceUnavailable", "The service is unavailable (injected fault)."),
    "ServiceUnavailable": (
        503,
        "ServiceUnavailable",
        "The service is unavailable (injected fault).",
    ),
    "404": (404, "ResourceNotFound", "The resource was not found (injected fault)."),
    "409": (409, "Conflict", "The request conflicts with the resource's state (injected fault)."),
    "400": (400, "UserError", "The request is invalid (injected fault)."),
}
ACCEPTED_FAULTS: tuple[str, ...] = (*_FAULTS, DROP_RESPONSE_AFTER_COMMIT, JOB_FAILED)


@dataclass
class Settings:
    """What a workspace is called and how fast things happen in it.

    Attributes:
        subscription_id: The subscription id (a GUID).
        resource_group: The resource group.
        workspace_name: The workspace.
        location: The workspace's region.
        job_step_seconds: Pause between job states (NotStarted, Queued, Preparing, Running...).
        provisioning_seconds: Extra time every long-running operation takes.
        retry_after_seconds: ``Retry-After`` sent with long-running operations and throttling.
        poll_hold_seconds: How long an operation-status poll waits for the operation to end
            before answering ``InProgress`` (so clients see the result on their first poll).
    """

    subscription_id: str = "00000000-0000-0000-0000-000000000000"
    resource_group: str = "mlport-rg"
    workspace_name: str = "mlport-ws"
    location: str = "eastus"
    job_step_seconds: float = 0.0
    provisioning_seconds: float = 0.0
    retry_after_seconds: int = 1
    poll_hold_seconds: float = 20.0


class Family(Protocol):
    """A resource family's lifecycle hooks."""

    def reset(self) -> None:
        """Stop what the family runs and forget its resources."""

    def close(self) -> None:
        """Stop what the family runs."""


@dataclass
class _Operation:
    id: str
    status: str = "InProgress"
    error: dict[str, Any] | None = None
    started: str = field(default_factory=now_iso)
    ended: str | None = None
    done: threading.Event = field(default_factory=threading.Event)


class Service:
    """The workspace the HTTPS server answers for.

    Attributes:
        settings: Names and timings.
        work_dir: Where jobs, model servers and logs live.
        azurite: Blob storage.
        lock: Guards ``state``; held only briefly, never across a blocking call.
        state: Family name -> that family's resources.
        faults: Pending injected faults, per operation.
        router: Every route.
        base_url: ``https://127.0.0.1:PORT`` once the server listens.
    """

    def __init__(self, settings: Settings, work_dir: Path, azurite: Azurite) -> None:
        self.settings = settings
        self.work_dir = work_dir
        self.azurite = azurite
        self.lock = threading.RLock()
        self.state: dict[str, dict[str, Any]] = {}
        self.faults = FaultInjector()
        self.router = Router()
        self.base_url = ""
        self.workspace_id = str(uuid.uuid5(uuid.NAMESPACE_URL, settings.workspace_name))
        self._latency: dict[str, float] = {}
        self._operations: dict[str, _Operation] = {}
        self._families: list[Family] = []
        self.families: dict[str, Family] = {}
        self._threads: set[threading.Thread] = set()
        self._generation = 0
        self._register_common_routes()

    # --- names -------------------------------------------------------------------------------

    @property
    def workspace_path(self) -> str:
        """The workspace's ARM id."""
        s = self.settings
        return (
            f"/subscriptions/{s.subscription_id}/resourceGroups/{s.resource_group}"
            f"/providers/{PROVIDER}/workspaces/{s.workspace_name}"
        )

    def arm_id(self, *parts: str) -> str:
        """An ARM id below the workspace: ``arm_id("jobs", name)``."""
        return "/".join((self.workspace_path, *parts))

    @property
    def blob_container(self) -> str:
        """The container of the default datastore ``workspaceblobstore``."""
        return f"azureml-blobstore-{self.workspace_id}"

    @property
    def artifact_container(self) -> str:
        """The container of ``workspaceartifactstore`` (job logs and default outputs)."""
        return "azureml"

    def create_containers(self) -> None:
        """Create the workspace's blob containers on Azurite."""
        self.azurite.container(self.blob_container)
        self.azurite.container(self.artifact_container)

    @property
    def generation(self) -> int:
        """Increases at every reset; background work of an older generation stops writing."""
        return self._generation

    def table(self, family: str) -> dict[str, Any]:
        """The state dict of a family (created empty)."""
        with self.lock:
            return self.state.setdefault(family, {})

    def add_family(self, family: Family, name: str) -> None:
        """Register a family's reset/close hooks under a name other families can look up."""
        self._families.append(family)
        self.families[name] = family

    # --- background work ---------------------------------------------------------------------

    def run_background(self, target: Callable[[], object], name: str) -> threading.Thread:
        """Run ``target`` on a daemon thread, tracked so that reset and close can wait for it."""

        def wrapper() -> None:
            try:
                target()
            except Exception:
                _log.exception("background work %s failed", name)
            finally:
                with self.lock:
                    self._threads.discard(threading.current_thread())

        thread = threading.Thread(target=wrapper, name=name, daemon=True)
        with self.lock:
            self._threads.add(thread)
        thread.start()
        return thread

    def sleep(self, seconds: float, generation: int) -> bool:
        """Sleep in small steps; False if a reset happened meanwhile."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if generation != self._generation:
                return False
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        return generation == self._generation

    # --- long-running operations -------------------------------------------------------------

    def start_operation(self, work: Callable[[], None], *, name: str) -> str:
        """Run ``work`` as a long-running operation; its id goes into the status URLs.

        ``work`` raises :class:`ApiError` to end the operation Failed with that error.
        """
        operation = _Operation(id=str(uuid.uuid4()))
        generation = self._generation
        with self.lock:
            self._operations[operation.id] = operation

        def run() -> None:
            status, error = "Succeeded", None
            try:
                if not self.sleep(self.settings.provisioning_seconds, generation):
                    status = "Canceled"
                else:
                    work()
            except ApiError as exc:
                status, error = "Failed", exc.body()["error"]
            except Exception as exc:
                _log.exception("operation %s failed", name)
                status, error = "Failed", {"code": "InternalServerError", "message": str(exc)}
            operation.status = status
            operation.error = error
            operation.ended = now_iso()
            operation.done.set()

        self.run_background(run, f"lro-{name}")
        return operation.id

    def lro_headers(self, request: Request, operation_id: str) -> dict[str, str]:
        """``Azure-AsyncOperation``, ``Location`` and ``Retry-After`` for an operation."""
        s = self.settings
        base = (
            f"{request.base_url}/subscriptions/{s.subscription_id}/providers/{PROVIDER}"
            f"/locations/{s.location}"
        )
        version = request.query.get("api-version", "2025-12-01")
        return {
            "Azure-AsyncOperation": f"{base}/mfeOperationsStatus/{operation_id}?api-version={version}",
            "Location": f"{base}/mfeOperationResults/{operation_id}?api-version={version}",
            "Retry-After": str(s.retry_after_seconds),
        }

    def _wait_operation(self, operation_id: str) -> _Operation:
        with self.lock:
            operation = self._operations.get(operation_id)
        if operation is None:
            raise ApiError(404, "ResourceNotFound", f"Operation {operation_id} was not found.")
        operation.done.wait(self.settings.poll_hold_seconds)
        return operation

    def _operation_status(self, request: Request) -> Response:
        operation = self._wait_operation(request.params["operation"])
        body: dict[str, Any] = {
            "id": request.path,
            "name": operation.id,
            "status": operation.status,
            "startTime": operation.started,
        }
        if operation.ended:
            body["endTime"] = operation.ended
        if operation.error:
            body["error"] = operation.error
        headers = (
            {}
            if operation.done.is_set()
            else {"Retry-After": str(self.settings.retry_after_seconds)}
        )
        return Response(200, body, headers)

    def _operation_result(self, request: Request) -> Response:
        operation = self._wait_operation(request.params["operation"])
        if not operation.done.is_set():
            return Response(
                202, None, {"Location": request.base_url + request.path, "Retry-After": "1"}
            )
        if operation.status == "Failed" and operation.error:
            raise ApiError(
                400, operation.error.get("code", "UserError"), operation.error["message"]
            )
        return Response(200, {})

    # --- faults and latency ------------------------------------------------------------------

    def inject(self, method: str, error: InjectedError, times: int = 1) -> None:
        """Queue a fault for the next ``times`` calls of an operation.

        Raises:
            InvalidSpecError: The operation or error is unknown, or ``times`` < 1.
        """
        known = {route.operation for route in self.router.routes} | {"Jobs_Execute"}
        if method not in known:
            raise InvalidSpecError(
                f"inject(): {method!r} is not an operation of the Azure ML emulator; use the REST "
                f"reference's operation ids, e.g. {', '.join(sorted(known)[:6])}, ..."
            )
        if isinstance(error, str) and error not in ACCEPTED_FAULTS:
            raise InvalidSpecError(
                f"inject(): {error!r} is not a fault the emulator answers with; use one of "
                f"{', '.join(ACCEPTED_FAULTS)} or an exception"
            )
        if error == JOB_FAILED and method != "Jobs_Execute":
            raise InvalidSpecError("inject(): JobFailed applies to the Jobs_Execute operation")
        if method == "Jobs_Execute" and error != JOB_FAILED:
            raise InvalidSpecError("inject(): Jobs_Execute takes the JobFailed fault only")
        self.faults.inject(method, error, times)

    def set_latency(self, method: str, seconds: float) -> None:
        """Delay every call of an operation (0 removes the delay)."""
        if seconds < 0:
            raise InvalidSpecError(f"latency must be at least 0 seconds, got {seconds}")
        with self.lock:
            if seconds:
                self._latency[method] = seconds
            else:
                self._latency.pop(method, None)

    # --- reset and close ---------------------------------------------------------------------

    def _join_background(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                threads = [t for t in self._threads if t is not threading.current_thread()]
            if not threads or time.monotonic() > deadline:
                return
            threads[0].join(max(0.0, deadline - time.monotonic()))

    def reset(self) -> None:
        """Stop everything running and forget every resource and fault. Blocks."""
        with self.lock:
            self._generation += 1
        for family in self._families:
            family.reset()
        self._join_background()
        with self.lock:
            self.state.clear()
            self._operations.clear()
            self._latency.clear()
        self.faults.reset()
        self.azurite.clear()
        self.create_containers()

    def close(self) -> None:
        """Stop everything running. Blocks."""
        with self.lock:
            self._generation += 1
        for family in self._families:
            with contextlib.suppress(Exception):
                family.close()
        self._join_background()

    # --- dispatch ----------------------------------------------------------------------------

    def dispatch(self, request: Request) -> Response | None:
        """Answer one request (None: drop the connection without an answer)."""
        try:
            return self._dispatch(request)
        except ApiError as exc:
            return Response(exc.status, exc.body(), exc.headers)
        except Exception as exc:
            _log.exception("%s %s failed", request.method, request.path)
            return Response(
                500,
                ApiError(500, "InternalServerError", f"The emulator failed: {exc}").body(),
            )

    def _dispatch(self, request: Request) -> Response | None:
        found = self.router.match(request.method, request.path)
        if found is None:
            _log.info("no route for %s %s", request.method, request.path)
            raise ApiError(
                404,
                "NoRegisteredProviderFound",
                f"The Azure ML emulator does not implement {request.method} {request.path}.",
            )
        route, params = found
        request.params = params
        if route.arm:
            self._authenticate(request)
            self._check_scope(params)
        with self.lock:
            latency = self._latency.get(route.operation, 0.0)
        if latency:
            time.sleep(latency)
        fault = self.faults.take(route.operation)
        if fault is None:
            return route.handler(request)
        if isinstance(fault, str) and fault == DROP_RESPONSE_AFTER_COMMIT:
            route.handler(request)
            return None
        raise self._fault_error(fault)

    def _fault_error(self, fault: InjectedError) -> ApiError:
        if isinstance(fault, str):
            status, code, message = _FAULTS[fault]
            headers = {"Retry-After": "0"} if status in (429, 503) else {}
            return ApiError(status, code, message, headers=headers)
        if isinstance(fault, ApiError):
            return fault
        exc = fault() if isinstance(fault, type) else fault
        return ApiError(500, "InternalServerError", f"{type(exc).__name__}: {exc}")

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer ") or not header[7:].strip():
            raise ApiError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            )

    def _check_scope(self, params: dict[str, str]) -> None:
        s = self.settings
        sub = params.get("subscription")
        if sub is not None and sub.lower() != s.subscription_id.lower():
            raise ApiError(
                404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found."
            )
        group = params.get("group")
        if group is not None and group.lower() != s.resource_group.lower():
            raise ApiError(
                404, "ResourceGroupNotFound", f"Resource group '{group}' could not be found."
            )
        workspace = params.get("workspace")
        if workspace is not None and workspace.lower() != s.workspace_name.lower():
            raise ApiError(
                404,
                "ResourceNotFound",
                f"The Resource '{PROVIDER}/workspaces/{workspace}' under resource group "
                f"'{s.resource_group}' was not found.",
            )

    # --- routes ------------------------------------------------------------------------------

    WS = (
        "/subscriptions/{subscription}/resourceGroups/{group}/providers/"
        "Microsoft.MachineLearningServices/workspaces/{workspace}"
    )

    def route(
        self, method: str, template: str, operation: str, handler: Callable[[Request], Response]
    ) -> None:
        """Add an ARM route; ``template`` starts with ``{ws}`` for the workspace's path."""
        self.router.add(method, template.replace("{ws}", self.WS), operation, handler)

    def _register_common_routes(self) -> None:
        location = (
            "/subscriptions/{subscription}/providers/Microsoft.MachineLearningServices"
            "/locations/{location}"
        )
        self.router.add(
            "GET",
            location + "/mfeOperationsStatus/{operation}",
            "OperationStatus_Get",
            self._operation_status,
        )
        self.router.add(
            "GET",
            location + "/mfeOperationResults/{operation}",
            "OperationResults_Get",
            self._operation_result,
        )

        control = CONTROL_PREFIX
        self.router.add("POST", control + "/reset", "Control_Reset", self._control_reset, arm=False)
        self.router.add(
            "POST", control + "/faults", "Control_Faults", self._control_faults, arm=False
        )
        self.router.add(
            "POST", control + "/latency", "Control_Latency", self._control_latency, arm=False
        )
        self.router.add(
            "GET",
            control + "/operations",
            "Control_Operations",
            self._control_operations,
            arm=False,
        )

    # --- control API -------------------------------------------------------------------------

    def _control_reset(self, request: Request) -> Response:
        self.reset()
        return Response(204)

    def _control_faults(self, request: Request) -> Response:
        body = request.json_object()
        try:
            self.inject(
                str(body.get("operation") or ""),
                str(body.get("error") or ""),
                int(body.get("times", 1)),
            )
        except (InvalidSpecError, ValueError) as exc:
            raise ApiError(400, "BadRequest", str(exc)) from None
        return Response(204)

    def _control_latency(self, request: Request) -> Response:
        body = request.json_object()
        try:
            self.set_latency(str(body.get("operation") or ""), float(body.get("seconds", 0)))
        except (InvalidSpecError, ValueError) as exc:
            raise ApiError(400, "BadRequest", str(exc)) from None
        return Response(204)

    def _control_operations(self, request: Request) -> Response:
        names = sorted(
            {r.operation for r in self.router.routes if not r.operation.startswith("Control_")}
            | {"Jobs_Execute"}
        )
        return Response(200, {"operations": names, "faults": list(ACCEPTED_FAULTS)})
