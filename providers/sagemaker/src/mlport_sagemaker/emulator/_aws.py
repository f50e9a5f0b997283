"""The AWS wire protocols the emulator speaks: which operation a request calls, and errors.

Requests all arrive on one address; the SigV4 credential scope in ``Authorization`` names the
service (``sagemaker`` for both the SageMaker API and sagemaker-runtime, ``s3``, ``logs``,
``application-autoscaling``) and the region. Errors are answered in each protocol's own shape
so that botocore raises ``ClientError`` with the code:

- JSON protocol (SageMaker, CloudWatch Logs, Application Auto Scaling): the code in the body's
  ``__type`` and in ``x-amzn-ErrorType``;
- REST-JSON (sagemaker-runtime): ``x-amzn-ErrorType`` and a JSON body with ``message``;
- REST-XML (S3): an ``<Error><Code>`` document.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

__all__ = [
    "ERROR_STATUS",
    "AwsError",
    "Call",
    "Response",
    "error_response",
    "identify",
]

ERROR_STATUS: dict[str, int] = {
    # https://docs.aws.amazon.com/sagemaker/latest/APIReference/CommonErrors.html
    "AccessDeniedException": 400,
    "IncompleteSignature": 400,
    "InternalFailure": 500,
    "InvalidAction": 400,
    "InvalidParameterCombination": 400,
    "InvalidParameterValue": 400,
    "InvalidQueryParameter": 400,
    "MissingAction": 400,
    "MissingParameter": 400,
    "NotAuthorized": 400,
    "RequestExpired": 400,
    "ServiceUnavailable": 503,
    "ThrottlingException": 400,
    "ValidationError": 400,
    "ValidationException": 400,
    # SageMaker's own, https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_Operations.html
    "ConflictException": 400,
    "ResourceInUse": 400,
    "ResourceLimitExceeded": 400,
    "ResourceNotFound": 400,
    # sagemaker-runtime, https://docs.aws.amazon.com/sagemaker/latest/APIReference/API_runtime_InvokeEndpoint.html
    "InternalDependencyException": 530,
    "ModelError": 424,
    "ModelNotReadyException": 429,
    # S3, https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html
    "AccessDenied": 403,
    "InternalError": 500,
    "NoSuchBucket": 404,
    "NoSuchKey": 404,
    "SlowDown": 503,
    # CloudWatch Logs and Application Auto Scaling
    "ResourceNotFoundException": 400,
    "ServiceUnavailableException": 500,
    "InvalidParameterException": 400,
    "LimitExceededException": 400,
    "ObjectNotFoundException": 400,
    "ConcurrentUpdateException": 400,
    "InternalServiceException": 400,
}
"""Every error code the emulator answers, with its HTTP status (the AWS references')."""


class AwsError(Exception):
    """An error answered to the client in the protocol of the service called.

    Attributes:
        code: The AWS error code (``ValidationException``...).
        message: The message.
        status: The HTTP status (default: the code's own, else 400).
        extra: More fields for the JSON body (e.g. ModelError's ``OriginalStatusCode``).
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status if status is not None else ERROR_STATUS.get(code, 400)
        self.extra = extra or {}


@dataclass
class Response:
    """A complete HTTP answer."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    @classmethod
    def json(cls, data: Any, status: int = 200, content_type: str | None = None) -> Response:
        """Return a JSON answer (``application/x-amz-json-1.1`` unless told)."""
        body = json.dumps(data, default=_json_default).encode()
        return cls(
            status,
            [
                ("Content-Type", content_type or "application/x-amz-json-1.1"),
                ("x-amzn-RequestId", str(uuid.uuid4())),
            ],
            body,
        )


def _json_default(value: Any) -> Any:
    import datetime as dt

    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.timestamp()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


@dataclass
class Call:
    """One request, as far as the emulator needs to know it.

    Attributes:
        service: The signing name (``sagemaker``, ``s3``, ``logs``...); ``sagemaker-runtime``
            for InvokeEndpoint, which signs as ``sagemaker``.
        operation: The AWS operation name (``CreateTrainingJob``, ``PutObject``...), or ``""``.
        region: The region of the credential scope.
        protocol: ``json``, ``rest-json`` or ``rest-xml``.
        method: HTTP method.
        path: The decoded path.
        query: Query parameters.
        headers: Request headers, lower-cased names.
        body: The request body.
    """

    service: str
    operation: str
    region: str
    protocol: str
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    environ: dict[str, Any] = field(repr=False, default_factory=dict)

    def params(self) -> dict[str, Any]:
        """The JSON body as a dict (empty if none).

        Raises:
            AwsError: The body is not a JSON object.
        """
        if not self.body:
            return {}
        try:
            data = json.loads(self.body)
        except ValueError:
            raise AwsError("SerializationException", "the request body is not JSON") from None
        if not isinstance(data, dict):
            raise AwsError("SerializationException", "the request body is not a JSON object")
        return data


_S3_BUCKET_SUBRESOURCES = {
    "tagging": "BucketTagging",
    "policy": "BucketPolicy",
    "versioning": "BucketVersioning",
    "lifecycle": "BucketLifecycleConfiguration",
    "cors": "BucketCors",
    "encryption": "BucketEncryption",
    "acl": "BucketAcl",
    "notification": "BucketNotificationConfiguration",
}


def _s3_operation(
    method: str, path: str, query: dict[str, list[str]], headers: dict[str, str]
) -> str:
    parts = path.lstrip("/").split("/", 1)
    bucket = parts[0]
    key = parts[1] if len(parts) > 1 else ""
    if not bucket:
        return "ListBuckets" if method == "GET" else ""
    if key:
        if method == "PUT":
            if "uploadId" in query:
                return "UploadPartCopy" if "x-amz-copy-source" in headers else "UploadPart"
            if "tagging" in query:
                return "PutObjectTagging"
            return "CopyObject" if "x-amz-copy-source" in headers else "PutObject"
        if method == "POST":
            if "uploads" in query:
                return "CreateMultipartUpload"
            return "CompleteMultipartUpload" if "uploadId" in query else ""
        if method == "GET":
            if "uploadId" in query:
                return "ListParts"
            return "GetObjectTagging" if "tagging" in query else "GetObject"
        if method == "HEAD":
            return "HeadObject"
        if method == "DELETE":
            return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
        return ""
    for name, suffix in _S3_BUCKET_SUBRESOURCES.items():
        if name in query:
            verb = {"GET": "Get", "PUT": "Put", "DELETE": "Delete"}.get(method)
            return f"{verb}{suffix}" if verb else ""
    if method == "PUT":
        return "CreateBucket"
    if method == "HEAD":
        return "HeadBucket"
    if method == "DELETE":
        return "DeleteBucket"
    if method == "POST":
        return "DeleteObjects" if "delete" in query else ""
    if method == "GET":
        if query.get("list-type") == ["2"]:
            return "ListObjectsV2"
        if "uploads" in query:
            return "ListMultipartUploads"
        if "versions" in query:
            return "ListObjectVersions"
        if "location" in query:
            return "GetBucketLocation"
        return "ListObjects"
    return ""


def identify(environ: dict[str, Any], body: bytes, default_region: str) -> Call:
    """Tell which service and operation a request calls, from its headers and path."""
    headers = {
        key[5:].replace("_", "-").lower(): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    if "CONTENT_TYPE" in environ:
        headers["content-type"] = str(environ["CONTENT_TYPE"])
    path = unquote(str(environ.get("PATH_INFO", "/")))
    query = parse_qs(str(environ.get("QUERY_STRING", "")), keep_blank_values=True)
    method = str(environ.get("REQUEST_METHOD", "GET")).upper()
    service, region = "", default_region
    auth = headers.get("authorization", "")
    scope = ""
    if "Credential=" in auth:
        scope = auth.split("Credential=", 1)[1].split(",", 1)[0]
    elif "X-Amz-Credential" in query:
        scope = query["X-Amz-Credential"][0]
    scope_parts = scope.split("/")
    if len(scope_parts) == 5:
        region, service = scope_parts[2], scope_parts[3].lower()
    target = headers.get("x-amz-target", "")
    operation = ""
    protocol = "json"
    if target:
        operation = target.rsplit(".", 1)[-1]
    elif service == "sagemaker" and path.startswith("/endpoints/"):
        service, protocol = "sagemaker-runtime", "rest-json"
        if path.endswith("/async-invocations"):
            operation = "InvokeEndpointAsync"
        elif path.endswith("/invocations-response-stream"):
            operation = "InvokeEndpointWithResponseStream"
        elif path.endswith("/invocations"):
            operation = "InvokeEndpoint"
    elif service == "s3" or (not service and not target):
        service, protocol = "s3", "rest-xml"
        operation = _s3_operation(method, path, query, headers)
    return Call(
        service=service,
        operation=operation,
        region=region,
        protocol=protocol,
        method=method,
        path=path,
        query=query,
        headers=headers,
        body=body,
        environ=environ,
    )


def error_response(call: Call, error: AwsError) -> Response:
    """Answer ``error`` in the protocol of ``call``'s service."""
    request_id = str(uuid.uuid4())
    if call.protocol == "rest-xml":
        from xml.sax.saxutils import escape

        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{escape(error.code)}</Code><Message>{escape(error.message)}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        ).encode()
        return Response(
            error.status,
            [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)],
            body,
        )
    content_type = (
        "application/json" if call.protocol == "rest-json" else "application/x-amz-json-1.1"
    )
    payload = {"__type": error.code, "message": error.message, **error.extra}
    if error.code == "ThrottlingException":
        payload.setdefault("Message", error.message)
    return Response(
        error.status,
        [
            ("Content-Type", content_type),
            ("x-amzn-RequestId", request_id),
            ("x-amzn-ErrorType", error.code),
        ],
        json.dumps(payload).encode(),
    )
