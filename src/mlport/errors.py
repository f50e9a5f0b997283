"""The errors mlport raises, on every provider.

Every provider maps its SDK's errors onto this tree (each provider's ``_errors.py``), so code
written against one cloud catches the same exceptions on another. Each class also inherits the
builtin that matches its meaning, so ``except LookupError`` keeps working::

    MlportError (Exception)
    ├── ConfigError              (ValueError)         mlport.toml, profiles, routing
    ├── ProviderNotFoundError    (LookupError)        no such provider installed
    ├── MissingDependencyError   (ImportError)        the provider's SDK is not installed
    ├── InvalidSpecError         (ValueError)         a spec or argument no provider/this provider accepts
    ├── NotFoundError            (LookupError)        the resource does not exist
    ├── AlreadyExistsError       (FileExistsError)    the name is taken by a different spec
    ├── ConflictError            (RuntimeError)       the resource is in a state that forbids the call
    ├── PermissionDeniedError    (PermissionError)    credentials lack the right
    ├── QuotaExceededError       (RuntimeError)       a service limit was reached
    ├── ThrottledError           (RuntimeError)       too many requests; retried by core
    ├── TransientError           (ConnectionError)    a failure worth retrying; retried by core
    ├── NotSupportedError        (NotImplementedError) the provider lacks the feature
    ├── JobFailedError           (RuntimeError)       a waited-on job ended FAILED or CANCELLED
    ├── DeploymentFailedError    (RuntimeError)       an endpoint ended FAILED
    ├── WaitTimeoutError         (TimeoutError)       ``wait(timeout=...)`` ran out
    └── IntegrityError           (ValueError)         a file does not match its recorded sha256

Messages pass through :func:`mlport._redact.redact`, so a credential that slips into an SDK's
message never reaches a log, a traceback or a terminal.
"""

from __future__ import annotations

from typing import Any

from mlport._redact import redact

__all__ = [
    "AlreadyExistsError",
    "ConfigError",
    "ConflictError",
    "DeploymentFailedError",
    "IntegrityError",
    "InvalidSpecError",
    "JobFailedError",
    "MissingDependencyError",
    "MlportError",
    "NotFoundError",
    "NotSupportedError",
    "PermissionDeniedError",
    "ProviderNotFoundError",
    "QuotaExceededError",
    "ThrottledError",
    "TransientError",
    "WaitTimeoutError",
]


class MlportError(Exception):
    """Base of every error mlport raises.

    Args:
        message: What went wrong and, where there is one, how to fix it.
        provider: The provider that raised it, if any.
        resource: The resource name involved, if any.
        retry_after: Seconds the service asked us to wait before retrying, if it said.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        resource: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.message = redact(message)
        self.provider = provider
        self.resource = resource
        self.retry_after = retry_after
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only attributes survive pickling (multiprocessing, pytest-xdist).
        return (
            _rebuild,
            (type(self), self.message, self.provider, self.resource, self.retry_after),
        )


def _rebuild(
    cls: type[MlportError],
    message: str,
    provider: str | None,
    resource: str | None,
    retry_after: float | None,
) -> MlportError:
    return cls(message, provider=provider, resource=resource, retry_after=retry_after)


class ConfigError(MlportError, ValueError):
    """mlport.toml, a profile or a connection argument is wrong."""


class ProviderNotFoundError(MlportError, LookupError):
    """No installed provider has that name."""


class MissingDependencyError(MlportError, ImportError):
    """The provider is installed but an SDK it needs is not."""


class InvalidSpecError(MlportError, ValueError):
    """A spec or argument is invalid for every provider, or for the one that would run it."""


class NotFoundError(MlportError, LookupError):
    """The resource does not exist."""


class AlreadyExistsError(MlportError, FileExistsError):
    """The name is taken by a resource created from a different spec."""


class ConflictError(MlportError, RuntimeError):
    """The resource is in a state that does not allow the operation."""


class PermissionDeniedError(MlportError, PermissionError):
    """The credentials in use are not allowed to do this."""


class QuotaExceededError(MlportError, RuntimeError):
    """A service quota or limit was reached."""


class ThrottledError(MlportError, RuntimeError):
    """The service asked us to slow down. Core retries it with backoff."""


class TransientError(MlportError, ConnectionError):
    """A failure that may go away on retry (connection reset, 5xx). Core retries it."""


class NotSupportedError(MlportError, NotImplementedError):
    """The provider does not offer this feature (see its capability table)."""


class JobFailedError(MlportError, RuntimeError):
    """A job that was waited on ended FAILED or CANCELLED; ``failure_reason`` says why."""

    def __init__(self, message: str, *, failure_reason: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.failure_reason = redact(failure_reason) if failure_reason else failure_reason


class DeploymentFailedError(MlportError, RuntimeError):
    """An endpoint deployment ended FAILED."""


class WaitTimeoutError(MlportError, TimeoutError):
    """``wait(timeout=...)`` ran out before the resource reached a final state."""


class IntegrityError(MlportError, ValueError):
    """A file, model package or manifest does not match the sha256 recorded for it."""


RETRYABLE: tuple[type[MlportError], ...] = (ThrottledError, TransientError)
