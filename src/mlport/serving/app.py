"""The model server's HTTP application: one ASGI callable for every hosting contract.

=======================================  ======  =================================================
route                                    auth    answers
=======================================  ======  =================================================
``GET /``                                open    ``Healthy`` (Azure ML liveness and readiness)
``GET /ping``                            open    SageMaker health
``GET /health`` (``AIP_HEALTH_ROUTE``)   open    Vertex AI health
``GET /v2/health/live``, ``.../ready``   open    Open Inference Protocol health
``GET /v2/models/{name}[/versions/{v}]/ready``  open  model readiness
``POST /invocations``                    token   SageMaker: JSON or CSV rows -> ``{"predictions"}``
``POST /predict`` (``AIP_PREDICT_ROUTE``)  token  Vertex AI: ``{"instances"}`` -> ``{"predictions"}``
``POST /score``                          token   Azure ML: MLflow ``input_data`` or plain JSON -> list
``POST /v2/models/{name}[/versions/{v}]/infer``  token  Open Inference Protocol tensors
``GET /v2``, ``GET /v2/models/{name}[/versions/{v}]``  token  server and model metadata
``GET /metrics``                         token   Prometheus text
=======================================  ======  =================================================

Under a cloud's hosting contract no route needs the token. A request may pin a variant with
``X-Mlport-Variant: <version>`` (a version in the V2 path pins it too); every prediction answer
names its variant in ``X-Mlport-Variant`` and its request id (``X-Request-Id``, echoed when the
client sent one) in ``X-Request-Id``. Errors are ``{"error": "..."}``: 400 malformed body,
401 no or wrong token, 404 unknown route, model or variant, 405 wrong method, 413 body too
large, 415 wrong content type, 422 rows the model refuses, 500 (generic message, logged) when
the model itself fails, 504 when it did not answer within the prediction timeout.
"""

from __future__ import annotations

import hmac
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from mlport.errors import NotFoundError
from mlport.serving import formats
from mlport.serving.batching import Batcher, PredictTimeout
from mlport.serving.capture import CaptureWriter, Sampler
from mlport.serving.config import BatchingConfig
from mlport.serving.hosting import DEFAULT_HEALTH_ROUTE, DEFAULT_PREDICT_ROUTE, Hosting
from mlport.serving.metrics import Metrics
from mlport.serving.model import InputError
from mlport.serving.variants import Variant, VariantSet

__all__ = ["ServingApp"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
# status, body, content type, extra headers, variant label (for metrics)
Answer = tuple[int, bytes, bytes, list[tuple[bytes, bytes]], str]

_log = logging.getLogger("mlport.serving")

_JSON = b"application/json"
_TEXT = b"text/plain; charset=utf-8"
_CSV = b"text/csv"
_MAX_REQUEST_ID = 100
_V2_DATATYPES = {
    "b": "BOOL",
    "f2": "FP16",
    "f4": "FP32",
    "f8": "FP64",
    "i1": "INT8",
    "i2": "INT16",
    "i4": "INT32",
    "i8": "INT64",
    "u1": "UINT8",
    "u2": "UINT16",
    "u4": "UINT32",
    "u8": "UINT64",
}


class _HTTPError(Exception):
    def __init__(
        self, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


class _Disconnected(Exception):
    pass


def _error(
    status: int, message: str, variant: str = "", headers: list[tuple[bytes, bytes]] | None = None
) -> Answer:
    return status, formats.dumps({"error": message}), _JSON, headers or [], variant


def _media_type(value: bytes | None) -> bytes:
    if not value:
        return b""
    return value.split(b";", 1)[0].strip().lower()


def _v2_datatype(dtype: str) -> str:
    try:
        import numpy as np

        kind = np.dtype(dtype)
    except (TypeError, ImportError):
        return "BYTES"
    key = "b" if kind.kind == "b" else f"{kind.kind}{kind.itemsize}"
    return _V2_DATATYPES.get(key, "BYTES")


class _Route:
    __slots__ = ("family", "handler", "methods", "open")

    def __init__(
        self,
        family: str,
        methods: tuple[str, ...],
        handler: Callable[..., Awaitable[Answer]],
        open_: bool,
    ) -> None:
        self.family = family
        self.methods = methods
        self.handler = handler
        self.open = open_


class ServingApp:
    """The ASGI application of one worker.

    Args:
        endpoint: The endpoint's name (the V2 model name).
        variants: The variants to serve; replace :attr:`variants` to swap in a reloaded set.
        token: The bearer token requests must carry; None serves every route openly.
        hosting: The cloud's hosting contract, if any (Vertex AI's routes come from it).
        batching: Micro-batching settings.
        max_body_bytes: Larger bodies are answered 413.
        metrics: This worker's metrics.
        capture: The data capture writer, if capturing.
        capture_percent: Share of successful predictions to capture.
        predict_timeout: Seconds a predict call may run before its requests are answered 504
            (None: no limit).
        on_predict_timeout: Called after a predict call timed out (the server replaces the
            worker process, whose abandoned call cannot be stopped).
    """

    def __init__(
        self,
        *,
        endpoint: str,
        variants: VariantSet,
        token: str | None,
        hosting: Hosting | None = None,
        batching: BatchingConfig | None = None,
        max_body_bytes: int = 10 * 1024 * 1024,
        metrics: Metrics | None = None,
        capture: CaptureWriter | None = None,
        capture_percent: float = 0.0,
        predict_timeout: float | None = None,
        on_predict_timeout: Callable[[], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.variants = variants
        self.metrics = metrics if metrics is not None else Metrics()
        self.metrics.generation = variants.generation
        self.metrics.weights = variants.weights()
        self.batcher = Batcher(
            batching or BatchingConfig(),
            self.metrics,
            timeout=predict_timeout,
            on_timeout=on_predict_timeout,
        )
        self.capture = capture
        self._sample = (
            Sampler(capture_percent) if capture is not None and capture_percent > 0 else None
        )
        self._token = token.encode() if token is not None else None
        self._max_body = max_body_bytes
        self._request_prefix = uuid.uuid4().hex[:12] + "-"
        self._request_numbers = itertools.count(1)
        health = hosting.health_route if hosting is not None else DEFAULT_HEALTH_ROUTE
        predict = hosting.predict_route if hosting is not None else DEFAULT_PREDICT_ROUTE
        self._routes: dict[str, _Route] = {
            "/": _Route("health", ("GET", "HEAD"), self._healthy_text, True),
            "/ping": _Route("health", ("GET", "HEAD"), self._healthy, True),
            "/v2/health/live": _Route("health", ("GET", "HEAD"), self._live, True),
            "/v2/health/ready": _Route("health", ("GET", "HEAD"), self._ready, True),
            "/metrics": _Route("metrics", ("GET",), self._metrics, False),
            "/v2": _Route("metadata", ("GET",), self._server_metadata, False),
            "/invocations": _Route("invocations", ("POST",), self._invocations, False),
            "/score": _Route("score", ("POST",), self._score, False),
        }
        self._v2_routes = {
            "infer": _Route("v2_infer", ("POST",), self._v2_infer, False),
            "ready": _Route("health", ("GET", "HEAD"), self._v2_model_ready, True),
            "": _Route("metadata", ("GET",), self._v2_model_metadata, False),
        }
        self._routes[health] = _Route("health", ("GET", "HEAD"), self._healthy, True)
        self._routes[predict] = _Route("predict", ("POST",), self._vertex, False)

    def swap(self, variants: VariantSet) -> None:
        """Serve ``variants`` from now on; requests already running finish on the old set."""
        self.variants = variants
        self.metrics.generation = variants.generation
        self.metrics.weights = variants.weights()

    # --- the ASGI entry point ----------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one ASGI connection scope (``http``; ``lifespan`` is acknowledged)."""
        kind = scope["type"]
        if kind != "http":
            if kind == "lifespan":
                await self._lifespan(receive, send)
            return
        start = time.perf_counter()
        path: str = scope["path"]
        method: str = scope["method"]
        route = self._routes.get(path)
        v2: tuple[str, str | None, str] | None = None
        if route is None and path.startswith("/v2/models/"):
            v2 = _v2_path(path)
            if v2 is not None:
                route = self._v2_routes.get(v2[2])
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers[name] = value
        family = route.family if route is not None else "other"
        try:
            if route is None:
                answer = (
                    self._unauthorized()
                    if self._token is not None and not self._authorized(headers)
                    else _error(404, f"no route {method} {path}")
                )
            elif method not in route.methods:
                answer = _error(
                    405,
                    f"{method} is not allowed on {path}; use {' or '.join(route.methods)}",
                    headers=[(b"allow", ", ".join(route.methods).encode())],
                )
            elif not route.open and self._token is not None and not self._authorized(headers):
                answer = self._unauthorized()
            elif v2 is not None:
                answer = await route.handler(receive, headers, v2[0], v2[1])
            else:
                answer = await route.handler(receive, headers)
        except _Disconnected:
            return
        except Exception:
            _log.exception("unexpected error answering %s %s", method, path)
            answer = _error(500, "internal server error; the server log has the details")
        status, body, content_type, extra, variant = answer
        response_headers = [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            *extra,
        ]
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
        self.metrics.request(
            family, variant, status, time.perf_counter() - start if variant else None
        )

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        value = headers.get(b"authorization")
        if value is None or self._token is None or value[:7].lower() != b"bearer ":
            return False
        return hmac.compare_digest(value[7:].strip(), self._token)

    @staticmethod
    def _unauthorized() -> Answer:
        return _error(
            401,
            "this route needs 'Authorization: Bearer <token>' with the server's token",
            headers=[(b"www-authenticate", b"Bearer")],
        )

    # --- health and metadata ----------------------------------------------------------------------

    async def _healthy_text(self, receive: Receive, headers: dict[bytes, bytes]) -> Answer:
        return 200, b"Healthy", _TEXT, [], ""

    async def _healthy(self, receive: Receive, headers: dict[bytes, bytes]) -> Answer:
        return 200, b'{"status":"ok"}', _JSON, [], ""

    async def _live(self, receive: Receive, headers: dict[bytes, bytes]) -> Answer:
        return 200, b'{"live":true}', _JSON, [], ""

    async def _ready(self, receive: Receive, headers: dict[bytes, bytes]) -> Answer:
        return 200, b'{"ready":true}', _JSON, [], ""

    async def _metrics(self, receive: Receive, headers: dict[bytes, bytes]) -> Answer:
        return 200, self.metrics.render(), b"text/plain; version=0.0.4; charset=utf-8", [], ""

    async def _server_metadata(self, receive: Receive, headers: dict[bytes, bytes]) -> Answer:
        from mlport import __version__

        body = {"name": "mlport", "version": __version__, "extensions": []}
        return 200, formats.dumps(body), _JSON, [], ""

    def _v2_variant(self, variants: VariantSet, name: str, version: str | None) -> Variant | None:
        if name != self.endpoint:
            raise _HTTPError(404, f"no model {name!r}; this server serves {self.endpoint!r}")
        if version is None:
            return None
        try:
            return variants.get(version)
        except NotFoundError as exc:
            raise _HTTPError(404, str(exc)) from None

    async def _v2_model_ready(
        self, receive: Receive, headers: dict[bytes, bytes], name: str, version: str | None
    ) -> Answer:
        try:
            self._v2_variant(self.variants, name, version)
        except _HTTPError as exc:
            return _error(exc.status, exc.message)
        return 200, b'{"ready":true}', _JSON, [], ""

    async def _v2_model_metadata(
        self, receive: Receive, headers: dict[bytes, bytes], name: str, version: str | None
    ) -> Answer:
        variants = self.variants
        try:
            variant = self._v2_variant(variants, name, version)
        except _HTTPError as exc:
            return _error(exc.status, exc.message)
        if variant is None:
            variant = max(variants.variants.values(), key=lambda v: (v.config.weight, v.version))
        body = {
            "name": self.endpoint,
            "versions": [version] if version is not None else list(variants.versions),
            "platform": variant.model.framework or variant.model.loader or "unknown",
            "inputs": _v2_inputs(variant),
            "outputs": _v2_outputs_metadata(variant),
        }
        return 200, formats.dumps(body), _JSON, [(b"x-mlport-variant", variant.header)], ""

    # --- predictions ------------------------------------------------------------------------------

    async def _invocations(self, receive: Receive, headers: dict[bytes, bytes]) -> Answer:
        return await self._prediction(receive, headers, "invocations", None)

    async def _vertex(self, receive: Receive, headers: dict[bytes, bytes]) -> Answer:
        return await self._prediction(receive, headers, "predict", None)

    async def _score(self, receive: Receive, headers: dict[bytes, bytes]) -> Answer:
        return await self._prediction(receive, headers, "score", None)

    async def _v2_infer(
        self, receive: Receive, headers: dict[bytes, bytes], name: str, version: str | None
    ) -> Answer:
        try:
            self._v2_variant(self.variants, name, None)
        except _HTTPError as exc:
            return _error(exc.status, exc.message)
        return await self._prediction(receive, headers, "v2_infer", version)

    def _pick(
        self, variants: VariantSet, headers: dict[bytes, bytes], pinned: str | None
    ) -> Variant:
        if pinned is None:
            pin = headers.get(b"x-mlport-variant")
            if pin is None:
                try:
                    return variants.choose()
                except NotFoundError as exc:
                    raise _HTTPError(404, str(exc)) from None
            pinned = pin.decode("latin-1").strip()
        try:
            return variants.get(pinned)
        except NotFoundError as exc:
            raise _HTTPError(404, str(exc)) from None

    async def _body(self, receive: Receive, headers: dict[bytes, bytes]) -> bytes:
        limit = self._max_body
        too_large = f"the request body is larger than the server's limit of {limit} bytes"
        close = [(b"connection", b"close")]
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                raise _HTTPError(400, "Content-Length is not a number", close) from None
            if size > limit:
                raise _HTTPError(413, too_large, close)
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            if len(body) > limit:
                raise _HTTPError(413, too_large, close)
            return body
        parts = [body]
        size = len(body)
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _HTTPError(413, too_large, close)
            parts.append(chunk)
            if not message.get("more_body", False):
                return b"".join(parts)

    def _rows(
        self, family: str, body: bytes, headers: dict[bytes, bytes], variant: Variant
    ) -> tuple[list[Any], Any]:
        media = _media_type(headers.get(b"content-type"))
        if media == b"text/csv" and family == "invocations":
            return formats.csv_rows(body, variant.model.feature_names), None
        if media and media != b"application/json" and not media.endswith(b"+json"):
            allowed = "application/json" + (" or text/csv" if family == "invocations" else "")
            raise _HTTPError(
                415, f"Content-Type must be {allowed}, not {media.decode('latin-1')!r}"
            )
        try:
            document = formats.loads(body)
        except ValueError as exc:
            raise formats.FormatError(f"the body is not valid JSON: {exc}") from None
        if family == "v2_infer":
            return formats.v2_rows(document, variant.model.feature_names), document
        return formats.json_rows(document), document

    def _request_id(self, headers: dict[bytes, bytes]) -> str:
        given = headers.get(b"x-request-id")
        if given is not None and 0 < len(given) <= _MAX_REQUEST_ID and given.isascii():
            text = given.decode("ascii")
            if text.isprintable():
                return text
        return f"{self._request_prefix}{next(self._request_numbers)}"

    async def _prediction(
        self, receive: Receive, headers: dict[bytes, bytes], family: str, pinned: str | None
    ) -> Answer:
        variants = self.variants
        label = ""
        batcher = self.batcher
        batcher.announce()
        announced = True
        try:
            variant = self._pick(variants, headers, pinned)
            label = variant.version
            body = await self._body(receive, headers)
            rows, document = self._rows(family, body, headers, variant)
            model = variant.model
            try:
                inputs = model.validate(rows)
                count = model.size(inputs)
            except InputError as exc:
                return _error(422, str(exc), label)
            except Exception as exc:
                return _error(
                    422, f"the rows do not fit the model: {type(exc).__name__}: {exc}", label
                )
            announced = False
            try:
                outputs = await batcher.predict(variant, inputs, count)
            except InputError as exc:
                return _error(422, str(exc), label)
            except PredictTimeout as exc:
                return _error(
                    504,
                    f"{exc}; the request was abandoned. Raise the limit with "
                    "predict_timeout_seconds in the server's configuration (mlport serve "
                    "--predict-timeout SECONDS)",
                    label,
                )
            except Exception:
                _log.exception("variant %s failed to predict", label)
                return _error(
                    500, "the model failed to predict; the server log has the details", label
                )
        except _HTTPError as exc:
            return _error(exc.status, exc.message, label, exc.headers)
        except formats.FormatError as exc:
            return _error(400, str(exc), label)
        finally:
            if announced:
                batcher.withdraw()
        request_id = self._request_id(headers)
        if self._sample is not None and self._sample():
            assert self.capture is not None
            if self.capture.offer(label, request_id, inputs, outputs):
                self.metrics.capture_records += 1
            else:
                self.metrics.capture_dropped += 1
        extra = [(b"x-mlport-variant", variant.header), (b"x-request-id", request_id.encode())]
        if family == "score":
            return 200, formats.dumps(outputs), _JSON, extra, label
        if family == "v2_infer":
            response: dict[str, Any] = {
                "model_name": self.endpoint,
                "model_version": label,
                "id": document.get("id", request_id) if isinstance(document, dict) else request_id,
                "parameters": {},
                "outputs": formats.v2_outputs(outputs),
            }
            return 200, formats.dumps(response), _JSON, extra, label
        if family == "invocations" and b"text/csv" in headers.get(b"accept", b""):
            return 200, formats.predictions_csv(outputs), _CSV, extra, label
        return 200, formats.dumps({"predictions": outputs}), _JSON, extra, label


def _v2_path(path: str) -> tuple[str, str | None, str] | None:
    parts = path.split("/")[3:]
    if not parts or not parts[0]:
        return None
    name, rest = parts[0], parts[1:]
    version = None
    if len(rest) >= 2 and rest[0] == "versions" and rest[1]:
        version, rest = rest[1], rest[2:]
    if len(rest) > 1:
        return None
    return name, version, rest[0] if rest else ""


def _v2_inputs(variant: Variant) -> list[dict[str, Any]]:
    model = variant.model
    specs = (variant.signature or {}).get("inputs")
    if isinstance(specs, list) and specs and all(isinstance(s, dict) for s in specs):
        names = [s.get("name") for s in specs]
        types = [_v2_datatype(str(s.get("dtype", "float64"))) for s in specs]
        if all(isinstance(n, str) and n for n in names):
            return [
                {"name": n, "datatype": t, "shape": [-1, 1]}
                for n, t in zip(names, types, strict=True)
            ]
        common = types[0] if len(set(types)) == 1 else "BYTES"
        return [{"name": "input-0", "datatype": common, "shape": [-1, len(specs)]}]
    if model.feature_names:
        return [{"name": n, "datatype": "FP64", "shape": [-1, 1]} for n in model.feature_names]
    width = model.n_features if model.n_features is not None else -1
    return [{"name": "input-0", "datatype": "FP64", "shape": [-1, width]}]


def _v2_outputs_metadata(variant: Variant) -> list[dict[str, Any]]:
    specs = (variant.signature or {}).get("outputs")
    datatype = "FP64"
    if isinstance(specs, list) and len(specs) == 1 and isinstance(specs[0], dict):
        datatype = _v2_datatype(str(specs[0].get("dtype", "float64")))
    return [{"name": "predict", "datatype": datatype, "shape": [-1]}]
