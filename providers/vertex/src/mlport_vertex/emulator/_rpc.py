"""gRPC plumbing shared by the emulator's services: errors, faults, latency, handlers.

Every method a service serves goes through :meth:`RpcRouter.unary`, which applies the faults and
latency injected for it, turns :class:`ApiError` into a gRPC status with the
``google.rpc.BadRequest`` details Vertex AI sends for a wrong field, and logs the call.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import grpc  # type: ignore[import-untyped, unused-ignore]
from google.protobuf import any_pb2  # type: ignore[import-untyped, unused-ignore]
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped, unused-ignore]
from grpc_status import rpc_status  # type: ignore[import-untyped, unused-ignore]

from mlport.errors import InvalidSpecError
from mlport.testing.emulator import DROP_RESPONSE_AFTER_COMMIT, FaultInjector, InjectedError

__all__ = [
    "JOB_FAILED",
    "ApiError",
    "RpcRouter",
    "job_failure_requested",
]

_log = logging.getLogger("mlport_vertex.emulator")

JOB_FAILED: Final = "JOB_FAILED"
"""Fault for a job-creating method: the call succeeds but the job it creates ends FAILED."""

_JOB_CREATES = frozenset({"CreateCustomJob", "CreateBatchPredictionJob"})

_job_failure: contextvars.ContextVar[bool] = contextvars.ContextVar("job_failure", default=False)


def job_failure_requested() -> bool:
    """Whether the call being served was injected with :data:`JOB_FAILED`."""
    return _job_failure.get()


class ApiError(Exception):
    """An error answered to the client, with the status code Vertex AI uses for it.

    Args:
        code: The gRPC status code.
        message: The message the client sees.
        field: For INVALID_ARGUMENT, the request field at fault (sent as a
            ``google.rpc.BadRequest`` field violation, as Vertex AI does).
    """

    def __init__(self, code: grpc.StatusCode, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def status(self) -> grpc.Status:
        """The rich gRPC status for this error."""
        details = []
        if self.field is not None:
            bad = error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=self.field, description=self.message
                    )
                ]
            )
            packed = any_pb2.Any()
            packed.Pack(bad)
            details.append(packed)
        code_value = self.code.value[0]
        return rpc_status.to_status(
            status_pb2.Status(code=code_value, message=self.message, details=details)
        )


def invalid(field: str, message: str) -> ApiError:
    """An INVALID_ARGUMENT error naming ``field``."""
    return ApiError(grpc.StatusCode.INVALID_ARGUMENT, message, field=field)


def not_found(what: str) -> ApiError:
    """A NOT_FOUND error for the resource ``what`` (its full name)."""
    return ApiError(grpc.StatusCode.NOT_FOUND, f'The resource "{what}" was not found.')


def check_injectable(method: str, error: InjectedError) -> None:
    """Refuse at ``inject`` time a fault this emulator cannot answer with.

    Raises:
        InvalidSpecError: The error is not a gRPC status code name (other than OK), not
            ``drop_response_after_commit``, not ``JOB_FAILED`` on a job-creating method, and not
            an exception.
    """
    if isinstance(error, BaseException) or (
        isinstance(error, type) and issubclass(error, BaseException)
    ):
        return
    if error == DROP_RESPONSE_AFTER_COMMIT:
        return
    if error == JOB_FAILED:
        if method not in _JOB_CREATES:
            raise InvalidSpecError(
                f"JOB_FAILED applies to {sorted(_JOB_CREATES)}, not to {method!r}"
            )
        return
    if error not in grpc.StatusCode.__members__ or error == "OK":
        raise InvalidSpecError(
            f"{error!r} is not a gRPC status code Vertex AI answers with (use e.g. "
            "'RESOURCE_EXHAUSTED', 'UNAVAILABLE', 'INTERNAL'), 'drop_response_after_commit' or "
            "'JOB_FAILED'"
        )


def _error_from_fault(error: InjectedError, method: str) -> ApiError:
    if isinstance(error, str):
        return ApiError(grpc.StatusCode[error], f"{method}: {error} (injected by the emulator)")
    exc = error() if isinstance(error, type) else error
    code = getattr(exc, "grpc_status_code", None)
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.INTERNAL
    message = getattr(exc, "message", None) or str(exc)
    return ApiError(code, message or f"{method}: {type(exc).__name__} (injected)")


Handler = Callable[[Any], Any]


class RpcRouter:
    """Builds the gRPC method handlers of the emulator's services.

    Holds the fault queue and the latency table the handlers consult on every call. Thread-safe.
    """

    def __init__(self) -> None:
        self.faults = FaultInjector()
        self._latency: dict[str, float] = {}
        self._lock = threading.Lock()

    def set_latency(self, method: str, seconds: float) -> None:
        """Delay every call of ``method`` (``"*"``: every method) by ``seconds`` (0 removes it).

        Raises:
            InvalidSpecError: ``seconds`` is negative.
        """
        if seconds < 0:
            raise InvalidSpecError(f"latency must be 0 or more seconds, got {seconds}")
        with self._lock:
            if seconds == 0:
                self._latency.pop(method, None)
            else:
                self._latency[method] = seconds

    def reset(self) -> None:
        """Drop pending faults and latencies."""
        self.faults.reset()
        with self._lock:
            self._latency.clear()

    def _delay(self, method: str) -> float:
        with self._lock:
            return self._latency.get(method, 0.0) + self._latency.get("*", 0.0)

    def unary(
        self,
        method: str,
        handler: Handler,
        deserialize: Callable[[bytes], Any],
        serialize: Callable[[Any], bytes],
    ) -> grpc.RpcMethodHandler:
        """A unary-unary handler for ``method`` that applies faults and latency first."""

        def serve(request: Any, context: grpc.ServicerContext) -> Any:
            delay = self._delay(method)
            if delay:
                time.sleep(delay)
            fault = self.faults.take(method)
            token = _job_failure.set(fault == JOB_FAILED)
            try:
                if fault is not None and fault not in (DROP_RESPONSE_AFTER_COMMIT, JOB_FAILED):
                    raise _error_from_fault(fault, method)
                response = handler(request)
                if fault == DROP_RESPONSE_AFTER_COMMIT:
                    _log.info("%s committed; dropping its answer (injected)", method)
                    raise ApiError(
                        grpc.StatusCode.UNAVAILABLE,
                        f"{method}: the connection was lost after the call took effect "
                        "(injected by the emulator)",
                    )
                return response
            except ApiError as exc:
                _log.info("%s -> %s: %s", method, exc.code.name, exc.message)
                context.abort_with_status(exc.status())
            except Exception as exc:
                _log.exception("%s failed inside the emulator", method)
                context.abort(grpc.StatusCode.INTERNAL, f"{method}: emulator error: {exc}")
            finally:
                _job_failure.reset(token)
            raise AssertionError("unreachable")  # abort() always raises

        return grpc.unary_unary_rpc_method_handler(
            serve, request_deserializer=deserialize, response_serializer=serialize
        )

    def service(
        self,
        name: str,
        methods: dict[str, tuple[Handler, Callable[[bytes], Any], Callable[[Any], bytes]]],
    ) -> grpc.GenericRpcHandler:
        """A generic handler for the service ``name`` serving ``methods``."""
        return grpc.method_handlers_generic_handler(
            name,
            {
                method: self.unary(method, handler, deserialize, serialize)
                for method, (handler, deserialize, serialize) in methods.items()
            },
        )


def proto_plus(
    request_type: Any, response_type: Any, handler: Handler
) -> tuple[Handler, Callable[[bytes], Any], Callable[[Any], bytes]]:
    """A method table entry for a proto-plus request type and a proto-plus (or protobuf, such
    as ``google.longrunning.Operation``) response type."""
    serialize = getattr(response_type, "serialize", None)
    if serialize is None:
        return (handler, request_type.deserialize, lambda message: message.SerializeToString())
    return (handler, request_type.deserialize, serialize)


def raw_pb(
    request_type: Any, handler: Handler
) -> tuple[Handler, Callable[[bytes], Any], Callable[[Any], bytes]]:
    """A method table entry for plain protobuf request and response messages."""
    return (handler, request_type.FromString, lambda message: message.SerializeToString())
