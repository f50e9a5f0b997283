"""The local SageMaker endpoint: moto in a threaded WSGI server, extended, with fault injection.

One address answers the SageMaker API, sagemaker-runtime, S3, CloudWatch Logs and Application
Auto Scaling. A WSGI middleware in front of moto's application reads each request's operation
(see :mod:`._aws`), answers injected faults, and routes the operations the emulator implements
itself (real training runs, real endpoints, APIs moto lacks) to its components; everything else
goes to moto unchanged.

moto keeps its state in the process (``moto.backends``), so every emulator in one process shares
the same resources, and :meth:`SageMakerEmulator.reset` empties them for all of them.
"""

from __future__ import annotations

import contextlib
import io
import logging
import secrets
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from mlport.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidSpecError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    ThrottledError,
    TransientError,
)
from mlport.testing.emulator import (
    DROP_RESPONSE_AFTER_COMMIT,
    EmulatorBase,
    FaultInjector,
    InjectedError,
)
from mlport_sagemaker._images import TELEMETRY_OPT_OUT
from mlport_sagemaker.emulator._aws import (
    ERROR_STATUS,
    AwsError,
    Call,
    Response,
    error_response,
    identify,
)

if TYPE_CHECKING:
    from werkzeug.serving import BaseWSGIServer

__all__ = ["ACCOUNT_ID", "EMULATOR_ROLE", "SageMakerEmulator"]

ACCOUNT_ID: Final = "123456789012"
"""The account every resource of the emulator belongs to (moto's default account)."""

EMULATOR_ROLE: Final = "arn:aws:iam::123456789012:role/mlport-emulator"
"""The execution role the emulator's ``connect_kwargs`` name; any role ARN is accepted."""

_FAKE_KEY_ID: Final = "AKIAMLPORTEMULATOR00"
_FAKE_SECRET: Final = "mlport-emulator-fake-secret-key"
_INTERNAL_HEADER: Final = "x-mlport-emulator-internal"
_SDK_CONFIG: Final = "sagemaker-config.yaml"
_LOG = logging.getLogger("mlport_sagemaker.emulator")

Handler = Callable[[Call], Response]
"""Answers one operation."""

_EXCEPTION_CODES: tuple[tuple[type[BaseException], str], ...] = (
    (ThrottledError, "ThrottlingException"),
    (NotFoundError, "ResourceNotFound"),
    (AlreadyExistsError, "ResourceInUse"),
    (ConflictError, "ResourceInUse"),
    (PermissionDeniedError, "AccessDeniedException"),
    (QuotaExceededError, "ResourceLimitExceeded"),
    (TransientError, "ServiceUnavailable"),
    (InvalidSpecError, "ValidationException"),
    (PermissionError, "AccessDeniedException"),
    (TimeoutError, "ServiceUnavailable"),
    (ConnectionError, "ServiceUnavailable"),
    (ValueError, "ValidationException"),
    (LookupError, "ResourceNotFound"),
)


def _fault_error(error: InjectedError) -> AwsError:
    if isinstance(error, str):
        return AwsError(error, f"injected fault: {error}")
    cls = error if isinstance(error, type) else type(error)
    message = str(error) if isinstance(error, BaseException) and str(error) else cls.__name__
    for base, code in _EXCEPTION_CODES:
        if issubclass(cls, base):
            return AwsError(code, f"injected fault: {message}")
    return AwsError("InternalFailure", f"injected fault: {message}")


class _Application:
    """The WSGI middleware in front of moto."""

    def __init__(self, emulator: SageMakerEmulator, moto_app: Any) -> None:
        self._emulator = emulator
        self._moto = moto_app

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        emulator = self._emulator
        body = _read_body(environ)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        call = identify(environ, body, emulator.region)
        internal = call.headers.get(_INTERNAL_HEADER) == emulator._internal_token
        fault = emulator._faults.take(call.operation) if call.operation and not internal else None
        if fault is not None and fault != DROP_RESPONSE_AFTER_COMMIT:
            response = error_response(call, _fault_error(fault))
        else:
            response = emulator._answer(call)
            if fault == DROP_RESPONSE_AFTER_COMMIT:
                _drop_connection(environ)
        start_response(
            f"{response.status} {_REASONS.get(response.status, 'Status')}", response.headers
        )
        return [response.body]


_REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 403: "Forbidden"}


def _read_body(environ: dict[str, Any]) -> bytes:
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    length = str(environ.get("CONTENT_LENGTH") or "").strip()
    if length.isdigit():
        return bytes(stream.read(int(length))) if int(length) else b""
    if environ.get("wsgi.input_terminated"):
        return bytes(stream.read())
    return b""


def _drop_connection(environ: dict[str, Any]) -> None:
    """Close the client's connection without an answer (the work is already done)."""
    sock = environ.get("werkzeug.socket")
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    # werkzeug treats ConnectionError as a connection the client dropped and writes nothing.
    raise ConnectionResetError("answer dropped after the call took effect (injected fault)")


class SageMakerEmulator(EmulatorBase):
    """A local SageMaker endpoint for tests: moto in server mode, extended to do the real work.

    Starts at construction (use it as a context manager, or call :meth:`close`): a threaded
    HTTP server on ``host``:``port`` (port 0: a free one) in this process, and a bucket. Training
    jobs run their code as child processes, endpoints serve their models with the portable
    model server; every process started is stopped by :meth:`reset` and :meth:`close`.

    Example::

        with SageMakerEmulator() as emu:
            sm = boto3.client("sagemaker", endpoint_url=emu.endpoint_url, region_name=emu.region)
            emu.inject("CreateTrainingJob", "ThrottlingException")

    Attributes:
        region: The default region (clients may use any; each region has its own resources).
        bucket: A bucket the emulator created in its S3.
        workdir: Folder holding the jobs' and endpoints' working directories.
        delay: Seconds each intermediate state of a job or endpoint lasts (default 0).
    """

    def __init__(
        self,
        region: str = "us-east-1",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bucket: str = "mlport-emulator",
        workdir: str | Path | None = None,
        delay: float = 0.0,
        capture_flush_seconds: float = 1.0,
    ) -> None:
        """Start the emulator.

        Args:
            region: The default region.
            host: Interface to bind (keep 127.0.0.1).
            port: Port to bind; 0 picks a free one.
            bucket: Name of the bucket to create.
            workdir: Folder for working directories (default: a new temporary folder, removed
                by :meth:`close`).
            delay: Seconds each intermediate state (``Starting``, ``Downloading``,
                ``Creating``...) lasts at least.
            capture_flush_seconds: Data capture records are written to S3 at least this often.

        Raises:
            InvalidSpecError: A negative delay or a bad region.
            OSError: The port could not be bound.
        """
        if delay < 0 or capture_flush_seconds <= 0:
            raise InvalidSpecError("delay must be >= 0 and capture_flush_seconds > 0")
        if not region or "/" in region:
            raise InvalidSpecError(f"region {region!r} is not a region name")
        self.region = region
        self.bucket = bucket
        self.delay = float(delay)
        self.capture_flush_seconds = float(capture_flush_seconds)
        self._owns_workdir = workdir is None
        self.workdir = Path(
            tempfile.mkdtemp(prefix="mlport-sagemaker-emulator-") if workdir is None else workdir
        ).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / _SDK_CONFIG).write_text(TELEMETRY_OPT_OUT)
        self._faults = FaultInjector()
        self._internal_token = secrets.token_hex(16)
        # Held while moto's SageMaker backend answers and while components change its objects,
        # so that moto never serialises an object half-changed.
        self.lock = threading.RLock()
        self._handlers: dict[tuple[str, str], Handler] = {}
        self._closed = False
        self._clients: dict[tuple[str, str], Any] = {}
        self._clients_lock = threading.Lock()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._components: list[Any] = []
        self._url = ""
        self._start(host, port)

    # -- the Emulator protocol ---------------------------------------------------------------

    @property
    def provider(self) -> str:
        """``"sagemaker"``."""
        return "sagemaker"

    @property
    def endpoint_url(self) -> str:
        """The ``http://127.0.0.1:PORT`` address every AWS client is given."""
        return self._url

    @property
    def env(self) -> Mapping[str, str]:
        """Variables that point boto3 (and sagemaker-core) at the emulator, fake credentials."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": _FAKE_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": _FAKE_SECRET,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
            "SAGEMAKER_VALIDATE_ROLE": "false",
            # sagemaker-core reads its telemetry opt-out only from a config file.
            "SAGEMAKER_USER_CONFIG_OVERRIDE": str(self.workdir / _SDK_CONFIG),
        }

    @property
    def connect_kwargs(self) -> Mapping[str, Any]:
        """What to pass to ``mlport.connect("sagemaker", ...)``."""
        return {
            "region": self.region,
            "endpoint_url": self.endpoint_url,
            "bucket": self.bucket,
            "role": EMULATOR_ROLE,
        }

    def inject(self, method: str, error: InjectedError, times: int = 1) -> None:
        """Make the next ``times`` calls of the AWS operation ``method`` fail with ``error``.

        Does not block.

        Args:
            method: The operation (``CreateTrainingJob``, ``InvokeEndpoint``, ``PutObject``...).
            error: An AWS error code (see the README for each code's HTTP status), an exception
                (mapped: ``ThrottledError`` -> ``ThrottlingException``...), or
                ``"drop_response_after_commit"``: the call takes effect and the connection is
                closed without an answer.
            times: How many calls fail.

        Raises:
            InvalidSpecError: ``times`` < 1, no method, or an error code the emulator does not
                know.
        """
        if isinstance(error, str) and error != DROP_RESPONSE_AFTER_COMMIT:
            if error not in ERROR_STATUS:
                raise InvalidSpecError(
                    f"inject(): {error!r} is not an error code the emulator answers; use one of "
                    f"{', '.join(sorted(ERROR_STATUS))} or {DROP_RESPONSE_AFTER_COMMIT!r}"
                )
        elif not isinstance(error, str) and not (
            isinstance(error, BaseException)
            or (isinstance(error, type) and issubclass(error, BaseException))
        ):
            raise InvalidSpecError(f"inject(): {error!r} is neither an error code nor an exception")
        self._faults.inject(method, error, times)

    def reset(self) -> None:
        """Stop every process it started, forget every resource and fault, recreate the bucket.

        Blocks until the processes have stopped (a few seconds at most).
        """
        self._faults.reset()
        for component in reversed(self._components):
            component.shutdown()
        from moto.moto_api._internal.models import moto_api_backend

        with self.lock:
            moto_api_backend.reset()
        for component in self._components:
            component.clear()
        self._create_bucket()

    def close(self) -> None:
        """Stop every process it started and the server; remove a temporary workdir.

        Idempotent; blocks until everything has stopped.
        """
        if self._closed:
            return
        self._closed = True
        for component in reversed(self._components):
            with contextlib.suppress(Exception):
                component.shutdown()
            closer = getattr(component, "close", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    closer()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = None
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __repr__(self) -> str:
        state = "closed" if self._closed else self.endpoint_url
        return f"SageMakerEmulator({state}, region={self.region!r}, bucket={self.bucket!r})"

    # -- for the components ------------------------------------------------------------------

    def backend(self, region: str) -> Any:
        """moto's SageMaker backend of ``region``."""
        from moto.sagemaker.models import sagemaker_backends

        return sagemaker_backends[ACCOUNT_ID][region]

    def client(self, service: str, region: str | None = None) -> Any:
        """A boto3 client of the emulator's own services whose calls are never faulted."""
        key = (service, region or self.region)
        with self._clients_lock:
            found = self._clients.get(key)
            if found is None:
                import boto3
                from botocore.config import Config

                found = boto3.session.Session().client(
                    service,
                    endpoint_url=self.endpoint_url,
                    region_name=key[1],
                    aws_access_key_id=_FAKE_KEY_ID,
                    aws_secret_access_key=_FAKE_SECRET,
                    config=Config(retries={"max_attempts": 2, "mode": "standard"}),
                )
                token = self._internal_token

                def mark(request: Any, **_: Any) -> None:
                    request.headers[_INTERNAL_HEADER] = token

                found.meta.events.register("before-sign", mark)
                self._clients[key] = found
            return found

    def forward(self, call: Call) -> Response:
        """Let moto answer ``call`` (under :attr:`lock` for SageMaker calls)."""
        environ = dict(call.environ)
        environ["wsgi.input"] = io.BytesIO(call.body)
        environ["CONTENT_LENGTH"] = str(len(call.body))
        captured: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> Any:
            captured["status"] = int(status.split(" ", 1)[0])
            captured["headers"] = list(headers)
            return lambda data: None

        guard = self.lock if call.service == "sagemaker" else contextlib.nullcontext()
        with guard:
            result = self._moto(environ, start_response)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        return Response(captured.get("status", 500), captured.get("headers", []), body)

    def register(self, service: str, operations: Mapping[str, Handler]) -> None:
        """Answer ``operations`` of ``service`` with the given handlers instead of moto."""
        for operation, handler in operations.items():
            self._handlers[(service, operation)] = handler

    # -- internals ---------------------------------------------------------------------------

    def _answer(self, call: Call) -> Response:
        handler = self._handlers.get((call.service, call.operation))
        try:
            if handler is not None:
                return handler(call)
            return self.forward(call)
        except AwsError as error:
            return error_response(call, error)
        except Exception as error:
            _LOG.exception("the emulator failed to answer %s %s", call.service, call.operation)
            return error_response(
                call,
                AwsError(
                    "InternalFailure", f"the emulator failed: {type(error).__name__}: {error}"
                ),
            )

    def _start(self, host: str, port: int) -> None:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        class _QuietHandler(MotoRequestHandler):
            def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
                return

            def log(self, type: str, message: str, *args: Any) -> None:
                if type == "error":
                    _LOG.debug(message, *args)

        self._moto = DomainDispatcherApplication(create_backend_app)
        app = _Application(self, self._moto)
        self._server = make_server(host, port, app, threaded=True, request_handler=_QuietHandler)
        bound_host, bound_port = self._server.server_address[:2]
        if isinstance(bound_host, bytes):
            bound_host = bound_host.decode()
        self._url = f"http://{bound_host}:{bound_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="sagemaker-emulator", daemon=True
        )
        self._thread.start()
        try:
            from mlport_sagemaker.emulator._extensions import install

            self._components = install(self)
            self._create_bucket()
        except BaseException:
            self.close()
            raise

    def _create_bucket(self) -> None:
        s3 = self.client("s3")
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if self.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(**kwargs)
