"""The HTTPS server under the emulator: routing, ARM error envelopes, dropped answers.

The standard library's ``ThreadingHTTPServer`` with its listening socket wrapped in TLS; one
thread per connection, HTTP/1.1 keep-alive. Handlers receive a :class:`Request` and return a
:class:`Response`, or raise :class:`ApiError`, which is answered in ARM's error envelope
``{"error": {"code", "message", "target", "details", "additionalInfo"}}``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "ApiError",
    "HttpsServer",
    "Request",
    "Response",
    "Route",
    "Router",
]

_log = logging.getLogger("mlport_azureml.emulator")


class ApiError(Exception):
    """An error answered in ARM's envelope.

    Attributes:
        status: HTTP status.
        code: ARM error code (``"UserError"``, ``"ResourceNotFound"``, ``"Conflict"``...).
        message: Human-readable message.
        target: The field or resource the error is about.
        details: Inner errors, each ``{"code", "message", "target"}``.
        headers: Extra response headers (``Retry-After``).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        target: str | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.target = target
        self.details = details or []
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """Return the ARM error envelope."""
        error: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "details": self.details,
            "additionalInfo": [],
        }
        if self.target is not None:
            error["target"] = self.target
        return {"error": error}


def bad_request(message: str, target: str, code: str = "UserError") -> ApiError:
    """A 400 naming the bad field, with the field's own ``BadArgument`` detail as Azure ML does."""
    return ApiError(
        400,
        code,
        message,
        target=target,
        details=[{"code": "BadArgument", "message": message, "target": target}],
    )


def not_found(kind: str, name: str, where: str = "") -> ApiError:
    """A 404 for a missing resource, in ARM's words."""
    suffix = f" {where}" if where else ""
    return ApiError(
        404,
        "ResourceNotFound",
        f"The Resource '{kind}/{name}'{suffix} was not found.",
        details=[{"code": "UserError", "message": f"{kind} {name} not found"}],
    )


def conflict(message: str, code: str = "Conflict") -> ApiError:
    """A 409."""
    return ApiError(409, code, message)


@dataclass
class Request:
    """One HTTP request.

    Attributes:
        method: HTTP method, upper case.
        path: URL path, unquoted as sent.
        query: Query parameters (last value wins).
        headers: Request headers, keys lower-cased.
        body: Raw body.
        params: Named groups of the route's pattern.
        base_url: ``https://host:port`` the client used.
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    base_url: str
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """Parse the body as JSON.

        Raises:
            ApiError: 400 when the body is not JSON.
        """
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise bad_request(f"The request body is not valid JSON: {exc}", "body") from None

    def json_object(self) -> dict[str, Any]:
        """Parse the body as a JSON object.

        Raises:
            ApiError: 400 when the body is not a JSON object.
        """
        data = self.json()
        if not isinstance(data, dict):
            raise bad_request("The request body must be a JSON object.", "body")
        return data


@dataclass
class Response:
    """One HTTP answer.

    Attributes:
        status: HTTP status.
        body: A JSON-serialisable value, raw bytes, or None for no body.
        headers: Extra headers.
        content_type: Content type of a bytes body.
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=utf-8"


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    """A handler for one REST operation.

    Attributes:
        method: HTTP method.
        pattern: Compiled path pattern (named groups become ``Request.params``).
        operation: The operation's name in the REST reference (``"Jobs_CreateOrUpdate"``),
            which is what faults are injected on.
        handler: The function answering it.
        arm: Whether the route is an ARM call (needs a bearer token).
    """

    method: str
    pattern: re.Pattern[str]
    operation: str
    handler: Handler
    arm: bool = True


_PLACEHOLDER = re.compile(r"\{(\w+)\}")


class Router:
    """Routes in registration order; path templates use ``{name}`` for one path segment."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(
        self, method: str, template: str, operation: str, handler: Handler, *, arm: bool = True
    ) -> None:
        """Register a handler; ``template`` is matched case-insensitively, as ARM does."""
        regex = _PLACEHOLDER.sub(lambda m: f"(?P<{m.group(1)}>[^/]+)", template)
        pattern = re.compile(f"^{regex}/?$", re.IGNORECASE)
        self.routes.append(Route(method.upper(), pattern, operation, handler, arm))

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """Find the route for a request; None if no route matches the path and method.

        Raises:
            ApiError: 405 when the path is known but not with this method.
        """
        path_known = False
        for route in self.routes:
            found = route.pattern.match(path)
            if found is None:
                continue
            path_known = True
            if route.method == method:
                return route, found.groupdict()
        if path_known:
            raise ApiError(
                405, "MethodNotAllowed", f"The method {method} is not allowed on {path}."
            )
        return None


Dispatcher = Callable[[Request], "Response | None"]
"""Answers a request; None means: drop the connection without answering."""


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HttpsServer

    def log_message(self, format: str, *args: Any) -> None:
        # Paths only: headers (tokens, keys) are never logged.
        _log.debug("%s %s", self.address_string(), format % args)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked()
        parts = urlsplit(self.path)
        host = self.headers.get("Host") or f"127.0.0.1:{self.server.server_port}"
        request = Request(
            method=self.command.upper(),
            path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers={key.lower(): value for key, value in self.headers.items()},
            body=body,
            base_url=f"https://{host}",
        )
        response = self.server.dispatch(request)
        if response is None:
            self._drop()
            return
        self._send(response)

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        while True:
            size = int(self.rfile.readline().strip().split(b";")[0], 16)
            if size == 0:
                self.rfile.readline()
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, response: Response) -> None:
        if response.body is None:
            payload = b""
        elif isinstance(response.body, bytes):
            payload = response.body
        else:
            payload = json.dumps(response.body).encode()
        self.send_response(response.status)
        headers = dict(response.headers)
        if response.body is not None:
            headers.setdefault("Content-Type", response.content_type)
        headers["Content-Length"] = str(len(payload))
        headers.setdefault("x-ms-request-id", self.server.next_request_id())
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = _serve
    do_PUT = _serve
    do_POST = _serve
    do_DELETE = _serve
    do_PATCH = _serve
    do_HEAD = _serve


class HttpsServer(ThreadingHTTPServer):
    """A threaded HTTPS server answering every request through ``dispatch``."""

    daemon_threads = True
    allow_reuse_address = False

    def __init__(
        self,
        host: str,
        port: int,
        *,
        cert_file: str,
        key_file: str,
        dispatch: Dispatcher,
    ) -> None:
        super().__init__((host, port), _RequestHandler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.dispatch = dispatch
        self._counter = 0
        self._counter_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def next_request_id(self) -> str:
        """A request id for the ``x-ms-request-id`` header."""
        with self._counter_lock:
            self._counter += 1
            return f"{int(time.time()):x}-{self._counter:08d}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up (dropped answers, closed keep-alive sockets) are not errors.
        _log.debug("connection from %s ended with an error", client_address, exc_info=True)

    def start(self) -> None:
        """Serve on a daemon thread. Does not block."""
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.name = "azureml-emulator-https"
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket. Blocks until the serving thread ends."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()
