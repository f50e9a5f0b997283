"""AWS errors met by the SageMaker provider, mapped onto :mod:`mlport.errors`.

A service error arrives as botocore's ``ClientError`` with an error code (:data:`BY_CODE`). Some
codes mean different things depending on the call or the message, as the AWS API references
document them:

- ``ValidationException`` is also how SageMaker says a resource does not exist ("Could not find
  endpoint ...") or already exists ("Cannot create already existing endpoint ...");
- ``ResourceInUse`` is a taken name on a create, and a resource busy in another state otherwise.

Errors raised before a request is answered (no connection, a dropped connection, a timeout) are
transient; missing credentials or region are configuration errors.
"""

from __future__ import annotations

import re
from typing import Any

from mlport.errors import (
    AlreadyExistsError,
    ConfigError,
    ConflictError,
    InvalidSpecError,
    MlportError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    ThrottledError,
    TransientError,
)

__all__ = ["BY_CODE", "translate"]

BY_CODE: dict[str, type[MlportError]] = {
    # SageMaker, Application Auto Scaling, CloudWatch Logs
    "ValidationException": InvalidSpecError,
    "ValidationError": InvalidSpecError,
    "InvalidParameterException": InvalidSpecError,
    "InvalidParameterValue": InvalidSpecError,
    "InvalidParameterValueException": InvalidSpecError,
    "InvalidRequest": InvalidSpecError,
    "ModelError": InvalidSpecError,
    "ResourceNotFound": NotFoundError,
    "ResourceNotFoundException": NotFoundError,
    "ObjectNotFoundException": NotFoundError,
    "ResourceInUse": ConflictError,
    "ResourceInUseException": ConflictError,
    "ConflictException": ConflictError,
    "ConcurrentUpdateException": ConflictError,
    "ResourceAlreadyExistsException": AlreadyExistsError,
    "ResourceLimitExceeded": QuotaExceededError,
    "LimitExceededException": QuotaExceededError,
    "ServiceQuotaExceededException": QuotaExceededError,
    "ThrottlingException": ThrottledError,
    "Throttling": ThrottledError,
    "TooManyRequestsException": ThrottledError,
    "RequestLimitExceeded": ThrottledError,
    "ProvisionedThroughputExceededException": ThrottledError,
    "SlowDown": ThrottledError,
    "AccessDeniedException": PermissionDeniedError,
    "AccessDenied": PermissionDeniedError,
    "UnauthorizedOperation": PermissionDeniedError,
    "UnrecognizedClientException": PermissionDeniedError,
    "InvalidClientTokenId": PermissionDeniedError,
    "InvalidAccessKeyId": PermissionDeniedError,
    "SignatureDoesNotMatch": PermissionDeniedError,
    "ExpiredToken": PermissionDeniedError,
    "ExpiredTokenException": PermissionDeniedError,
    "MissingAuthenticationToken": PermissionDeniedError,
    "InternalFailure": TransientError,
    "InternalFailureException": TransientError,
    "InternalServerError": TransientError,
    "InternalServerException": TransientError,
    "InternalError": TransientError,
    "InternalDependencyException": TransientError,
    "ServiceUnavailable": TransientError,
    "ServiceUnavailableException": TransientError,
    "ModelNotReadyException": TransientError,
    "RequestTimeout": TransientError,
    "RequestTimeoutException": TransientError,
    # S3
    "NoSuchKey": NotFoundError,
    "NoSuchBucket": NotFoundError,
    "NoSuchUpload": NotFoundError,
    "NotFound": NotFoundError,
    "404": NotFoundError,
    "403": PermissionDeniedError,
    "BucketAlreadyExists": AlreadyExistsError,
    "InvalidBucketName": InvalidSpecError,
    "EntityTooLarge": InvalidSpecError,
}
"""AWS error code -> the mlport error it becomes (before the message rules below)."""

_MISSING = re.compile(
    r"could not find|not found|does not exist|cannot find|recordnotfound", re.IGNORECASE
)
_EXISTING = re.compile(r"already exist", re.IGNORECASE)


def _status(response: dict[str, Any]) -> int:
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _retry_after(response: dict[str, Any]) -> float | None:
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders") or {}
    value = headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _client_error(error: Any) -> MlportError:
    response: dict[str, Any] = error.response or {}
    details = response.get("Error", {})
    code = str(details.get("Code") or _status(response) or "Unknown")
    message = str(details.get("Message") or "").strip()
    operation = str(getattr(error, "operation_name", "") or "call")
    text = f"SageMaker {operation}: {code}: {message}" if message else f"{operation}: {code}"
    cls = BY_CODE.get(code)
    if code in {"ValidationException", "ValidationError"}:
        if _MISSING.search(message):
            cls = NotFoundError
        elif _EXISTING.search(message):
            cls = AlreadyExistsError
    elif code in {"ResourceInUse", "ResourceInUseException"} and operation.startswith("Create"):
        cls = AlreadyExistsError
    if cls is None:
        status = _status(response)
        if status == 429:
            cls = ThrottledError
        elif status >= 500:
            cls = TransientError
        elif status == 404:
            cls = NotFoundError
        elif status == 403:
            cls = PermissionDeniedError
        else:
            cls = MlportError
    return cls(text, retry_after=_retry_after(response))


def translate(error: Exception) -> MlportError | None:
    """The mlport error for a botocore/boto3 error; None for anything else."""
    module = type(error).__module__
    if not module.startswith(("botocore", "boto3", "s3transfer")):
        return None
    from botocore import exceptions as bx

    if isinstance(error, bx.ClientError):
        return _client_error(error)
    if isinstance(error, bx.NoCredentialsError | bx.PartialCredentialsError):
        return PermissionDeniedError(
            f"no usable AWS credentials ({error}); configure them with `aws configure`, "
            "AWS_PROFILE or profile_name in the sagemaker profile"
        )
    if isinstance(error, bx.NoRegionError):
        return ConfigError("no AWS region: set region = '...' in the sagemaker profile")
    if isinstance(error, bx.ProfileNotFound):
        return ConfigError(f"{error}; check profile_name in the sagemaker profile")
    if isinstance(error, bx.ParamValidationError):
        return InvalidSpecError(f"SageMaker request refused before sending: {error}")
    if isinstance(error, bx.ConnectionError | bx.HTTPClientError):
        return TransientError(f"AWS connection failed: {error}")
    return None
