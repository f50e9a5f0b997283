""":class:`VertexEmulator`: the local Vertex AI, a gRPC server over TLS plus a storage emulator."""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Mapping
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped, unused-ignore]

from mlport.errors import InvalidSpecError
from mlport.processes import ProcessRecord
from mlport.testing.ca import ca_env, issue_server_cert
from mlport.testing.emulator import EmulatorBase, InjectedError
from mlport_vertex.emulator._rpc import ApiError, RpcRouter, check_injectable
from mlport_vertex.emulator.control import control_handler
from mlport_vertex.emulator.endpoints import EndpointService
from mlport_vertex.emulator.jobs import JobService
from mlport_vertex.emulator.models import ModelService
from mlport_vertex.emulator.notebooks import NotebookService
from mlport_vertex.emulator.operations import OperationsService
from mlport_vertex.emulator.prediction import PredictionService
from mlport_vertex.emulator.serving import ModelRuntime
from mlport_vertex.emulator.state import Delays, EmulatorState
from mlport_vertex.emulator.storage import Gcs, StorageEmulator
from mlport_vertex.emulator.workers import Workers

__all__ = ["OFFLINE_AUTH_ENV", "VertexEmulator"]

OFFLINE_AUTH_ENV: dict[str, str] = {
    # google-auth probes the GCE metadata server (169.254.169.254) when it looks for default
    # credentials or a project; these make it skip the probe and, if it still asks, ask a
    # closed local port instead of the network.
    "NO_GCE_CHECK": "True",
    "GCE_METADATA_HOST": "127.0.0.1:9",
    "GCE_METADATA_IP": "127.0.0.1:9",
}

_log = logging.getLogger("mlport_vertex.emulator")


class VertexEmulator(EmulatorBase):
    """A stateful local Vertex AI that the google-cloud-aiplatform SDK drives unpatched.

    Starts in ``__init__`` (about a second): a fresh TLS certificate signed by the shared local
    CA, the gcp-storage-emulator as a child process, and a gRPC server on ``host:port`` serving
    JobService, ModelService, EndpointService, PredictionService, the Workbench NotebookService,
    ``google.longrunning.Operations`` and the emulator's control API. Use it as a context manager
    or call :meth:`close`.

    Point the SDK at it (before ``google.cloud.aiplatform`` opens its first channel)::

        with VertexEmulator() as emu:
            os.environ.update(emu.env)
            aiplatform.init(project=emu.project, location=emu.location,
                            api_endpoint=emu.api_endpoint, credentials=emu.credentials,
                            staging_bucket=emu.staging_bucket)

    Args:
        host: Interface to bind.
        port: Port to bind (0: any free port).
        project: The project id the emulator plays.
        project_number: The number Vertex AI puts into the resource names it returns.
        location: The default location (any region name is accepted in requests).
        delays: Lifecycle and long-running-operation delays (zero by default).
        work_dir: Where downloads, job runs and logs go (default: a temporary directory removed
            on close).
        serving_image: The mlport serving image URI (besides any ``*/mlport-serving`` image).

    Raises:
        MlportError: The storage emulator did not start.
        MissingDependencyError: ``cryptography`` is missing (``pip install mlport[testing]``).
    """

    provider = "vertex"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        project: str = "mlport-local",
        project_number: str = "123456789012",
        location: str = "us-central1",
        delays: Delays | None = None,
        work_dir: str | Path | None = None,
        serving_image: str | None = None,
    ) -> None:
        if not project_number.isdigit():
            raise InvalidSpecError(f"project_number must be digits, got {project_number!r}")
        self.project = project
        self.project_number = project_number
        self.location = location
        self._own_dir = work_dir is None
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="mlport-vertex-")).resolve()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._closed = False
        self._lock = threading.Lock()
        self._server: grpc.Server | None = None
        self._storage: StorageEmulator | None = None
        self._workers = Workers(self.work_dir / "logs")
        try:
            self._start(host, port, delays or Delays(), serving_image)
        except BaseException:
            self.close()
            raise

    def _start(self, host: str, port: int, delays: Delays, serving_image: str | None) -> None:
        cert = issue_server_cert(self.work_dir / "tls")
        self.ca_file = str(cert.ca_file)
        self._env = ca_env(cert.ca_file)
        self._storage = StorageEmulator(self.work_dir / "logs")
        self.storage_host = self._storage.url
        self.staging_bucket = f"gs://{self.project}-vertex-staging"
        gcs = Gcs(self.storage_host, self.project)
        gcs.ensure_bucket(self.staging_bucket[5:])
        self.state = EmulatorState(
            project=self.project,
            project_number=self.project_number,
            location=self.location,
            delays=delays,
            work_dir=self.work_dir,
            gcs=gcs,
            workers=self._workers,
        )
        self.router = RpcRouter()
        runtime = ModelRuntime(self.state, serving_image)
        models = ModelService(self.state)
        endpoints = EndpointService(self.state, models, runtime)
        self._jobs = JobService(self.state, models, endpoints, runtime)
        services = [
            OperationsService(self.state).handler(self.router),
            models.handler(self.router),
            endpoints.handler(self.router),
            self._jobs.handler(self.router),
            PredictionService(self.state, endpoints, models, runtime).handler(self.router),
            NotebookService(self.state).handler(self.router),
            control_handler(
                {
                    "Inject": lambda body: self.inject(
                        str(body["method"]), str(body["error"]), int(body.get("times", 1))
                    ),
                    "SetLatency": lambda body: self.set_latency(
                        str(body["method"]), float(body["seconds"])
                    ),
                    "FailJob": lambda body: self.fail_job(
                        str(body["name"]), str(body.get("message", ""))
                    ),
                    "Reset": lambda body: self.reset(),
                }
            ),
        ]
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="vertex-emulator"),
            handlers=services,
            options=[
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
                ("grpc.so_reuseport", 0),
            ],
        )
        credentials = grpc.ssl_server_credentials(
            [(cert.key_file.read_bytes(), cert.bundle_file.read_bytes())]
        )
        try:
            self.port = server.add_secure_port(f"{host}:{port}", credentials)
        except RuntimeError as exc:  # grpc raises when the address cannot be bound
            raise InvalidSpecError(f"cannot listen on {host}:{port}: {exc}") from None
        if not self.port:
            raise InvalidSpecError(f"cannot listen on {host}:{port}")
        server.start()
        self._server = server
        self.host = host
        # The certificate names localhost and the loopback addresses, not a wildcard bind.
        reachable = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
        self.api_endpoint = f"{reachable}:{self.port}"
        _log.info("Vertex AI emulator on %s, storage on %s", self.api_endpoint, self.storage_host)

    @property
    def delays(self) -> Delays:
        """The lifecycle and operation delays; assign new ones at any time (not reset)."""
        return self.state.delays

    @delays.setter
    def delays(self, value: Delays) -> None:
        self.state.delays = value

    @property
    def processes(self) -> list[ProcessRecord]:
        """The child processes doing real work now: training replicas and model servers (the
        storage emulator is not listed)."""
        return self._workers.records()

    def job_logs(self, name: str) -> dict[str, str]:
        """What each replica of a CustomJob wrote, stdout then stderr, by replica
        (``"workerpool0-0"``...). Empty until the replicas start; kept after the job ends, until
        a reset.

        Raises:
            InvalidSpecError: No such job.
        """
        try:
            full = self.state.resource_name(name, "customJobs")
        except ApiError as exc:
            raise InvalidSpecError(exc.message) from None
        with self.state.lock:
            if full not in self.state.table("customJobs"):
                raise InvalidSpecError(f"no CustomJob {name!r} in the emulator")
            paths = dict(self.state.extra.get("job_logs", {}).get(full, {}))
        logs = {}
        for replica, (stdout, stderr) in sorted(paths.items()):
            texts = []
            for path in (stdout, stderr):
                try:
                    texts.append(Path(path).read_text(errors="replace"))
                except FileNotFoundError:
                    texts.append("")
            logs[replica] = "".join(texts)
        return logs

    # The Emulator protocol ------------------------------------------------------------------

    @property
    def credentials(self) -> Any:
        """``google.auth.credentials.AnonymousCredentials`` for ``aiplatform.init``."""
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials()  # type: ignore[no-untyped-call]

    @property
    def env(self) -> Mapping[str, str]:
        """What the SDKs need: the CA bundle for gRPC and HTTPS and the storage emulator; and
        google-auth kept off the network (no GCE metadata server probe)."""
        return {
            **self._env,
            "STORAGE_EMULATOR_HOST": self.storage_host,
            "GOOGLE_CLOUD_PROJECT": self.project,
            **OFFLINE_AUTH_ENV,
        }

    @property
    def connect_kwargs(self) -> Mapping[str, Any]:
        """What ``mlport.connect("vertex", ...)`` will take to use this emulator."""
        return {
            "project": self.project,
            "location": self.location,
            "api_endpoint": self.api_endpoint,
            "staging_bucket": self.staging_bucket,
            "credentials": self.credentials,
        }

    def inject(self, method: str, error: InjectedError, times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` fail with ``error``.

        Args:
            method: A gRPC method name (``"CreateCustomJob"``, ``"Predict"``, ``"GetOperation"``,
                ``"CreateInstance"``...).
            error: A gRPC status code name (``"RESOURCE_EXHAUSTED"``, ``"UNAVAILABLE"``,
                ``"INTERNAL"``...), ``"drop_response_after_commit"`` (the call takes effect,
                then the client gets UNAVAILABLE), ``"JOB_FAILED"`` (for ``CreateCustomJob`` and
                ``CreateBatchPredictionJob``: the job is created and ends FAILED), or an
                exception (a ``google.api_core`` exception keeps its status code; others are
                INTERNAL).
            times: How many calls fail.

        Raises:
            InvalidSpecError: ``times`` < 1, or an error this emulator cannot answer with.
        """
        check_injectable(method, error)
        self.router.faults.inject(method, error, times)

    def set_latency(self, method: str, seconds: float) -> None:
        """Delay every call of ``method`` (``"*"``: every method) by ``seconds``; 0 removes it.

        Raises:
            InvalidSpecError: ``seconds`` is negative.
        """
        self.router.set_latency(method, seconds)

    def fail_job(self, name: str, message: str = "") -> None:
        """End a running CustomJob or BatchPredictionJob FAILED with ``message``.

        Its processes are stopped. Returns at once; the job reaches FAILED moments later.

        Raises:
            InvalidSpecError: No such job, or it has ended.
        """
        try:
            self._jobs.fail_job(name, message)
        except ApiError as exc:
            raise InvalidSpecError(exc.message) from None

    def reset(self) -> None:
        """Forget every resource, operation, fault and latency; stop every process; empty the
        storage emulator (the staging bucket is made again). Blocks until done."""
        self.state.reset()
        self.router.reset()
        self._workers.stop_all()
        if self._storage is not None:
            self._storage.wipe()
            self.state.gcs.ensure_bucket(self.staging_bucket[5:])
        for folder in ("models", "jobs", "servers"):
            shutil.rmtree(self.work_dir / folder, ignore_errors=True)

    def close(self) -> None:
        """Stop the server, every process it started and the storage emulator. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._server is not None:
            self._server.stop(grace=1.0).wait()
        state = getattr(self, "state", None)
        if state is not None:
            state.reset()
        self._workers.stop_all()
        if self._storage is not None:
            self._storage.close()
        if self._own_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __repr__(self) -> str:
        return f"VertexEmulator(api_endpoint={getattr(self, 'api_endpoint', None)!r})"
