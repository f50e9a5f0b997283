"""MLflow, HTTP and file-system errors of the on-prem provider, mapped onto :mod:`mlport.errors`.

MLflow reports every failure as an ``MlflowException`` whose ``error_code`` names what happened
(:data:`BY_CODE` maps those codes). A connection failure to a tracking server arrives as an
``MlflowException`` raised while handling the ``requests``/``urllib3`` error, so the chain of
causes is searched for one first. File-system errors come from the local artifact store.

``INTERNAL_ERROR`` is what MLflow uses both for a server's HTTP 500 and, by default, for any error
it raises locally without a code; only the former is worth a retry, so a local one stays a plain
:class:`~mlport.errors.MlportError`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

from mlport.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidSpecError,
    MlportError,
    NotFoundError,
    NotSupportedError,
    PermissionDeniedError,
    QuotaExceededError,
    ThrottledError,
    TransientError,
)

__all__ = ["BY_CODE", "translate"]

BY_CODE: dict[str, type[MlportError]] = {
    "RESOURCE_DOES_NOT_EXIST": NotFoundError,
    "NOT_FOUND": NotFoundError,
    "RESOURCE_ALREADY_EXISTS": AlreadyExistsError,
    "ALREADY_EXISTS": AlreadyExistsError,
    "INVALID_PARAMETER_VALUE": InvalidSpecError,
    "BAD_REQUEST": InvalidSpecError,
    "MALFORMED_REQUEST": InvalidSpecError,
    "INVALID_STATE": ConflictError,
    "INVALID_STATE_TRANSITION": ConflictError,
    "RESOURCE_CONFLICT": ConflictError,
    "ABORTED": ConflictError,
    "DIRECTORY_NOT_EMPTY": ConflictError,
    "PERMISSION_DENIED": PermissionDeniedError,
    "UNAUTHENTICATED": PermissionDeniedError,
    "CUSTOMER_UNAUTHORIZED": PermissionDeniedError,
    "REQUEST_LIMIT_EXCEEDED": ThrottledError,
    "RESOURCE_EXHAUSTED": ThrottledError,
    "QUOTA_EXCEEDED": QuotaExceededError,
    "RESOURCE_LIMIT_EXCEEDED": QuotaExceededError,
    "TEMPORARILY_UNAVAILABLE": TransientError,
    "SERVICE_UNDER_MAINTENANCE": TransientError,
    "WORKSPACE_TEMPORARILY_UNAVAILABLE": TransientError,
    "DEADLINE_EXCEEDED": TransientError,
    "COULD_NOT_ACQUIRE_LOCK": TransientError,
    "INTERNAL_ERROR": TransientError,
    "ENDPOINT_NOT_FOUND": NotSupportedError,
    "NOT_IMPLEMENTED": NotSupportedError,
    "FEATURE_DISABLED": NotSupportedError,
}
"""``MlflowException.error_code`` -> the mlport error it becomes (``INTERNAL_ERROR``: see above)."""

# Explains the two codes whose MLflow message is about the server rather than the resource.
_HINTS = {
    "ENDPOINT_NOT_FOUND": "the MLflow server does not offer this API; it may be older than "
    "the MLflow client (upgrade the server)",
    "FEATURE_DISABLED": "the feature is turned off on the MLflow server",
}

_MAX_CHAIN = 10


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen and len(seen) < _MAX_CHAIN:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_connection_error(error: BaseException) -> bool:
    # Imported here: requests and urllib3 come with MLflow, and this module must import without it.
    try:
        import requests
    except ImportError:  # pragma: no cover - MLflow requires requests
        requests_errors: tuple[type[BaseException], ...] = ()
    else:
        requests_errors = (requests.ConnectionError, requests.Timeout)
    try:
        import urllib3.exceptions
    except ImportError:  # pragma: no cover - requests requires urllib3
        urllib3_errors: tuple[type[BaseException], ...] = ()
    else:
        urllib3_errors = (
            urllib3.exceptions.ProtocolError,
            urllib3.exceptions.NewConnectionError,
            urllib3.exceptions.MaxRetryError,
            urllib3.exceptions.TimeoutError,
        )
    return isinstance(error, (ConnectionError, TimeoutError, *requests_errors, *urllib3_errors))


def _mlflow_exceptions() -> Any:
    # An MlflowException exists only once MLflow is imported; importing it here would start
    # MLflow (and its telemetry) just to translate an unrelated error.
    return sys.modules.get("mlflow.exceptions")


def _answered_by_server(error: Any) -> bool:
    """True when an HTTP server sent this error, as opposed to MLflow raising it in-process."""
    module = _mlflow_exceptions()
    if module is not None and isinstance(error, module.RestException):
        return True
    # A reply without a JSON body becomes a plain MlflowException with this message.
    return str(error).startswith("API request to endpoint")


def _message(error: Any) -> str:
    message = str(getattr(error, "message", None) or error)
    code = str(getattr(error, "error_code", ""))
    # RestException prefixes the code, which the mlport class already says.
    prefix = f"{code}: "
    if code and message.startswith(prefix):
        message = message[len(prefix) :]
    return message


def _from_mlflow(error: Any) -> MlportError:
    code = str(getattr(error, "error_code", "") or "INTERNAL_ERROR")
    message = _message(error)
    if code == "INTERNAL_ERROR" and not _answered_by_server(error):
        return MlportError(f"MLflow: {message}")
    cls = BY_CODE.get(code)
    if cls is None:
        return MlportError(f"MLflow ({code}): {message}")
    hint = _HINTS.get(code)
    return cls(f"MLflow: {message}" + (f" ({hint})" if hint else ""))


def _from_os_error(error: OSError) -> MlportError | None:
    where = error.filename if error.filename is not None else None
    what = error.strerror or str(error)
    if isinstance(error, FileNotFoundError):
        return NotFoundError(
            f"{where} does not exist" if where is not None else what,
            resource=None if where is None else str(where),
        )
    if isinstance(error, PermissionError):
        return PermissionDeniedError(
            f"permission denied: {where}" if where is not None else what,
            resource=None if where is None else str(where),
        )
    return None


def translate(error: Exception) -> MlportError | None:
    """Map an error raised while using MLflow onto the mlport hierarchy.

    Args:
        error: What MLflow, ``requests`` or the file system raised.

    Returns:
        The mlport error to raise instead (the caller chains the original), or None for an error
        this table does not know, which is then raised as it is.
    """
    for cause in _chain(error):
        if _is_connection_error(cause):
            return TransientError(f"cannot reach the MLflow tracking server: {error}")
    module = _mlflow_exceptions()
    if module is not None and isinstance(error, module.MlflowException):
        return _from_mlflow(error)
    if isinstance(error, OSError):
        return _from_os_error(error)
    return None
