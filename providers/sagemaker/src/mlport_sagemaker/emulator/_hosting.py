"""Endpoints that really serve: each production variant runs the portable model server.

CreateEndpoint (and UpdateEndpoint) download each variant's ``model.tar.gz`` from the local S3,
extract it and start ``python -m mlport.serving`` on 127.0.0.1 with a token; the endpoint is
InService once every variant answers ``/ping``. InvokeEndpoint picks a variant by weight (or
``TargetVariant``), forwards the body to the server's ``/invocations`` and answers with the
model's response. Data capture records go to S3 in SageMaker's capture format.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import http.client
import json
import random
import re
import secrets
import shutil
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlport.processes import ProcessExitedError, ProcessRecord, spawn, stop
from mlport_sagemaker.emulator._aws import AwsError, Call, Response
from mlport_sagemaker.emulator._s3 import Storage, extract_tar, split_uri
from mlport_sagemaker.emulator._training import LogTail, enum_error, instance_types, now

if TYPE_CHECKING:
    from mlport_sagemaker.emulator.server import SageMakerEmulator

__all__ = ["MANIFEST_ENV", "Endpoints", "ModelServer", "start_model_server"]

ENDPOINT_LOG_GROUP = "/aws/sagemaker/Endpoints"
"""CloudWatch Logs group prefix of the endpoints' model servers (``<group>/<endpoint>``)."""

MANIFEST_ENV = "MLPORT_MANIFEST_SHA256"
"""A model's container Environment entry holding its package manifest's sha256 (checked)."""

_START_TIMEOUT = 120.0
_INVOKE_TIMEOUT = 70.0
_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_MANIFEST = "mlport-model.json"


class StartAborted(Exception):
    """A model server's start was abandoned (its job was stopped)."""


def container_key(container: dict[str, Any]) -> str:
    """What decides what a container serves: equal keys serve the same model the same way."""
    fields = ("Image", "ModelDataUrl", "ModelDataSource", "Environment")
    return json.dumps({k: container.get(k) for k in fields}, sort_keys=True, default=str)


@dataclass
class ModelServer:
    """A running ``mlport.serving`` process for one model."""

    record: ProcessRecord
    port: int
    token: str
    folder: Path
    key: str = ""
    tails: list[LogTail] = field(default_factory=list)

    def invoke(
        self, body: bytes, content_type: str, accept: str | None, custom: str | None
    ) -> tuple[int, str, bytes]:
        """POST ``body`` to ``/invocations``; return status, content type, body.

        Raises:
            OSError: The server did not answer.
        """
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=_INVOKE_TIMEOUT)
        headers = {"Content-Type": content_type, "Authorization": f"Bearer {self.token}"}
        if accept:
            headers["Accept"] = accept
        if custom:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = custom
        try:
            connection.request("POST", "/invocations", body=body, headers=headers)
            answer = connection.getresponse()
            data = answer.read()
            return answer.status, answer.getheader("Content-Type") or "application/json", data
        finally:
            connection.close()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL)."""
        stop(self.record, grace=3.0)


def _find_package(root: Path) -> Path:
    if (root / _MANIFEST).is_file():
        return root
    found = sorted(path.parent for path in root.glob(f"*/{_MANIFEST}"))
    if len(found) == 1:
        return found[0]
    children = [path for path in root.iterdir() if not path.name.startswith(".")]
    if len(children) == 1 and children[0].is_dir():
        return children[0]
    return root


def start_model_server(
    storage: Storage,
    container: dict[str, Any],
    folder: Path,
    *,
    name: str,
    abort: threading.Event | None = None,
) -> ModelServer:
    """Download a model's artefacts and start the portable model server for them.

    Blocks until the server answers ``/ping`` (model loaded).

    Args:
        storage: The emulator's S3.
        container: The model's container definition (``ModelDataUrl``, ``Environment``...).
        folder: A new working folder for this server.
        name: The endpoint name the server reports.
        abort: Set to abandon the start (the server is stopped, :class:`StartAborted` raised).

    Raises:
        AwsError: The artefacts are missing or the server did not start (the message says why).
        StartAborted: ``abort`` was set.
    """
    folder.mkdir(parents=True, exist_ok=True)
    model_dir = folder / "model"
    url = container.get("ModelDataUrl")
    source = (container.get("ModelDataSource") or {}).get("S3DataSource") or {}
    if url:
        archive = folder / "model.tar.gz"
        archive.write_bytes(storage.read(url))
        try:
            extract_tar(archive, model_dir)
        except Exception as error:
            raise AwsError(
                "ValidationException", f"could not extract the model archive {url}: {error}"
            ) from None
    elif source.get("S3Uri"):
        if storage.download_prefix(source["S3Uri"], model_dir) == 0:
            raise AwsError("ValidationException", f"no model files under {source['S3Uri']}")
    else:
        raise AwsError(
            "ValidationException",
            "the local SageMaker emulator serves models with ModelDataUrl (model.tar.gz) or an "
            "uncompressed ModelDataSource; this container has neither",
        )
    package = _find_package(model_dir)
    environment = container.get("Environment") or {}
    digest = environment.get(MANIFEST_ENV)
    variant: dict[str, Any] = {"path": str(package), "weight": 1.0}
    if digest:
        variant["manifest_sha256"] = digest
    else:
        # The emulator plays the serving container the user chose to deploy, which runs it.
        variant["trust"] = True
    token = secrets.token_urlsafe(24)
    token_file = folder / "token"
    token_file.touch(mode=0o600)
    token_file.write_text(token)
    config = {
        "endpoint": name,
        "host": "127.0.0.1",
        "port": 0,
        "token_file": str(token_file),
        "workers": 1,
        "variants": {"model": variant},
        "hosting": "none",
        "ready_file": str(folder / "ready.json"),
        "status_file": str(folder / "status.json"),
        "graceful_seconds": 2.0,
    }
    (folder / "server.json").write_text(json.dumps(config, indent=2))
    env = {str(k): str(v) for k, v in environment.items()}
    popen, record = spawn(
        [sys.executable, "-m", "mlport.serving", "--config", str(folder / "server.json")],
        name="server",
        log_dir=folder,
        cwd=folder,
        env=env,
        detach=False,
    )
    try:
        ready_file = folder / "ready.json"
        deadline = time.monotonic() + _START_TIMEOUT
        while not ready_file.exists():
            if abort is not None and abort.is_set():
                raise StartAborted
            if popen.poll() is not None:
                from mlport.processes import _tail

                raise ProcessExitedError(
                    "the model server exited", stderr_tail=_tail(record.stderr_path)
                )
            if time.monotonic() > deadline:
                raise AwsError("ValidationException", "the model server did not start in time")
            time.sleep(0.02)
        ready = json.loads(ready_file.read_text())
        server = ModelServer(
            record=record,
            port=int(ready["port"]),
            token=token,
            folder=folder,
            key=container_key(container),
            tails=[LogTail(Path(record.stdout_path)), LogTail(Path(record.stderr_path))],
        )
        _await_ping(server, popen, abort)
        return server
    except ProcessExitedError as error:
        stop(record, grace=1.0)
        raise AwsError("ValidationException", _startup_failure(error.stderr_tail)) from None
    except BaseException:
        stop(record, grace=1.0)
        raise


def _startup_failure(tail: str) -> str:
    lines = [line for line in tail.splitlines() if line.strip()]
    detail = lines[-1] if lines else "the model server exited"
    return (
        f"The primary container for production variant did not pass the ping health check: {detail}"
    )


def _await_ping(server: ModelServer, popen: Any, abort: threading.Event | None) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    while True:
        if abort is not None and abort.is_set():
            raise StartAborted
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=1.0)
        try:
            connection.request("GET", "/ping")
            answer = connection.getresponse()
            answer.read()
            if answer.status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        if popen.poll() is not None:
            from mlport.processes import _tail

            raise ProcessExitedError(
                "the model server exited", stderr_tail=_tail(server.record.stderr_path)
            )
        if time.monotonic() > deadline:
            raise AwsError("ValidationException", "the model server did not answer /ping in time")
        time.sleep(0.05)


@dataclass
class _Capture:
    """Buffers SageMaker data capture records of one endpoint configuration."""

    destination: str
    endpoint: str
    percent: float
    capture_input: bool
    capture_output: bool
    csv_types: tuple[str, ...]
    json_types: tuple[str, ...]
    pending: dict[str, list[tuple[dt.datetime, str]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_config(cls, config: dict[str, Any] | None, endpoint: str) -> _Capture | None:
        if not config or not config.get("EnableCapture", True):
            return None
        options = {item.get("CaptureMode") for item in config.get("CaptureOptions") or []}
        headers = config.get("CaptureContentTypeHeader") or {}
        return cls(
            destination=str(config["DestinationS3Uri"]).rstrip("/"),
            endpoint=endpoint,
            percent=float(config.get("InitialSamplingPercentage", 100)),
            capture_input=not options or bool(options & {"Input", "InputAndOutput"}),
            capture_output=not options or bool(options & {"Output", "InputAndOutput"}),
            csv_types=tuple(headers.get("CsvContentTypes") or ()),
            json_types=tuple(headers.get("JsonContentTypes") or ()),
        )

    def _part(self, mode: str, content_type: str, data: bytes) -> dict[str, str]:
        base_type = content_type.split(";", 1)[0].strip()
        if base_type in self.csv_types:
            encoding, text = "CSV", data.decode("utf-8", errors="replace")
        elif base_type in self.json_types:
            encoding, text = "JSON", data.decode("utf-8", errors="replace")
        else:
            encoding, text = "BASE64", base64.b64encode(data).decode()
        return {
            "observedContentType": content_type,
            "mode": mode,
            "data": text,
            "encoding": encoding,
        }

    def offer(
        self,
        variant: str,
        request: tuple[str, bytes],
        response: tuple[str, bytes],
        inference_id: str | None,
    ) -> None:
        if random.uniform(0, 100) >= self.percent:
            return
        moment = now()
        capture: dict[str, Any] = {}
        if self.capture_input:
            capture["endpointInput"] = self._part("INPUT", *request)
        if self.capture_output:
            capture["endpointOutput"] = self._part("OUTPUT", *response)
        metadata = {
            "eventId": str(uuid.uuid4()),
            "inferenceTime": moment.strftime("%Y-%m-%dT%H:%M:%S.")
            + f"{moment.microsecond // 1000:03d}Z",
        }
        if inference_id:
            metadata["inferenceId"] = inference_id
        line = json.dumps(
            {"captureData": capture, "eventMetadata": metadata, "eventVersion": "0"},
            separators=(",", ":"),
        )
        with self.lock:
            self.pending.setdefault(variant, []).append((moment, line))

    def flush(self, storage: Storage) -> None:
        with self.lock:
            pending, self.pending = self.pending, {}
        for variant, records in pending.items():
            by_hour: dict[str, list[tuple[dt.datetime, str]]] = {}
            for moment, line in records:
                by_hour.setdefault(moment.strftime("%Y/%m/%d/%H"), []).append((moment, line))
            for hour, lines in by_hour.items():
                first = lines[0][0]
                name = f"{first:%M-%S}-{first.microsecond // 1000:03d}-{uuid.uuid4()}.jsonl"
                uri = f"{self.destination}/{self.endpoint}/{variant}/{hour}/{name}"
                storage.write(uri, ("\n".join(line for _, line in lines) + "\n").encode())


@dataclass
class _Deployment:
    """The servers of one endpoint configuration."""

    config_name: str
    servers: dict[str, ModelServer]
    capture: _Capture | None


@dataclass
class _Endpoint:
    region: str
    name: str
    live: _Deployment | None = None
    busy: threading.Thread | None = None
    generation: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    abort: threading.Event = field(default_factory=threading.Event)


class Endpoints:
    """CreateEndpoint / UpdateEndpoint / DeleteEndpoint / weights, and InvokeEndpoint."""

    def __init__(self, emulator: SageMakerEmulator) -> None:
        self._emu = emulator
        self._endpoints: dict[tuple[str, str], _Endpoint] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._streams: set[tuple[str, str]] = set()
        self._flusher = threading.Thread(target=self._flush_loop, name="capture-flush", daemon=True)
        self._flusher.start()
        emulator.register(
            "sagemaker",
            {
                "CreateEndpointConfig": self.create_config,
                "CreateEndpoint": self.create,
                "UpdateEndpoint": self.update,
                "DeleteEndpoint": self.delete,
                "UpdateEndpointWeightsAndCapacities": self.update_weights,
            },
        )
        emulator.register("sagemaker-runtime", {"InvokeEndpoint": self.invoke})

    # -- helpers -----------------------------------------------------------------------------

    def _arn(self, region: str, kind: str, name: str) -> str:
        from mlport_sagemaker.emulator.server import ACCOUNT_ID

        return f"arn:aws:sagemaker:{region}:{ACCOUNT_ID}:{kind}/{name}"

    def _storage(self, region: str) -> Storage:
        return Storage(self._emu.client("s3", region))

    def _entry(self, region: str, name: str) -> _Endpoint:
        with self._lock:
            return self._endpoints.setdefault((region, name), _Endpoint(region, name))

    # -- API ---------------------------------------------------------------------------------

    def create_config(self, call: Call) -> Response:
        """CreateEndpointConfig: SageMaker's name and instance type checks, then moto."""
        params = call.params()
        name = params.get("EndpointConfigName", "")
        backend = self._emu.backend(call.region)
        if name in backend.endpoint_configs:
            raise AwsError(
                "ValidationException",
                "Cannot create already existing endpoint configuration "
                f'"{self._arn(call.region, "endpoint-config", name)}".',
            )
        allowed = instance_types("ProductionVariantInstanceType")
        for index, variant in enumerate(params.get("ProductionVariants") or [], start=1):
            kind = variant.get("InstanceType")
            if kind is not None and kind not in allowed:
                raise enum_error(kind, f"productionVariants.{index}.member.instanceType", allowed)
            if not _NAME.match(str(variant.get("VariantName", ""))):
                raise AwsError(
                    "ValidationException",
                    f"Variant name {variant.get('VariantName')!r} is not valid.",
                )
        capture = params.get("DataCaptureConfig")
        if capture:
            split_uri(capture.get("DestinationS3Uri", ""))
        return self._emu.forward(call)

    def create(self, call: Call) -> Response:
        """CreateEndpoint: Creating, start a server per variant, then InService or Failed."""
        params = call.params()
        name = params.get("EndpointName", "")
        config_name = params.get("EndpointConfigName", "")
        if not _NAME.match(str(name)):
            raise AwsError("ValidationException", f"Endpoint name {name!r} is not valid.")
        backend = self._emu.backend(call.region)
        if name in backend.endpoints:
            raise AwsError(
                "ValidationException",
                f'Cannot create already existing endpoint "{self._arn(call.region, "endpoint", name)}".',
            )
        config = self._config(call.region, config_name)
        response = self._emu.forward(call)
        if response.status != 200:
            return response
        moment = now()
        with self._emu.lock:
            endpoint = backend.endpoints[name]
            endpoint.endpoint_status = "Creating"
            endpoint.failure_reason = None
            endpoint.production_variants = None
            endpoint.last_modified_time = moment
        entry = self._entry(call.region, name)
        with entry.lock:
            entry.generation += 1
            generation = entry.generation
            thread = threading.Thread(
                target=self._deploy,
                args=(entry, config, generation, False),
                name=f"endpoint-{name}",
                daemon=True,
            )
            entry.busy = thread
        thread.start()
        return response

    def update(self, call: Call) -> Response:
        """UpdateEndpoint: Updating, start the new servers, switch (or roll back), InService."""
        params = call.params()
        name = params.get("EndpointName", "")
        backend = self._emu.backend(call.region)
        with self._emu.lock:
            endpoint = backend.endpoints.get(name)
            if endpoint is None:
                raise AwsError(
                    "ValidationException",
                    f'Could not find endpoint "{self._arn(call.region, "endpoint", name)}".',
                )
            if endpoint.endpoint_status != "InService":
                raise AwsError(
                    "ValidationException",
                    f'Cannot update in-progress endpoint "{self._arn(call.region, "endpoint", name)}".',
                )
        config = self._config(call.region, params.get("EndpointConfigName", ""))
        with self._emu.lock:
            endpoint.endpoint_status = "Updating"
            endpoint.last_modified_time = now()
        entry = self._entry(call.region, name)
        with entry.lock:
            entry.generation += 1
            thread = threading.Thread(
                target=self._deploy,
                args=(entry, config, entry.generation, True),
                name=f"endpoint-{name}",
                daemon=True,
            )
            entry.busy = thread
        thread.start()
        return Response.json({"EndpointArn": endpoint.arn})

    def delete(self, call: Call) -> Response:
        """DeleteEndpoint: moto forgets it; its servers stop and its capture is flushed."""
        name = call.params().get("EndpointName", "")
        backend = self._emu.backend(call.region)
        if name not in backend.endpoints:
            raise AwsError(
                "ValidationException",
                f'Could not find endpoint "{self._arn(call.region, "endpoint", name)}".',
            )
        response = self._emu.forward(call)
        with self._lock:
            entry = self._endpoints.pop((call.region, name), None)
        if entry is not None:
            self._retire(entry)
        return response

    def update_weights(self, call: Call) -> Response:
        """UpdateEndpointWeightsAndCapacities: Updating, the new weights, InService."""
        params = call.params()
        name = params.get("EndpointName", "")
        backend = self._emu.backend(call.region)
        desired = params.get("DesiredWeightsAndCapacities") or []
        with self._emu.lock:
            endpoint = backend.endpoints.get(name)
            if endpoint is None:
                raise AwsError(
                    "ValidationException",
                    f'Could not find endpoint "{self._arn(call.region, "endpoint", name)}".',
                )
            if endpoint.endpoint_status != "InService":
                raise AwsError(
                    "ValidationException",
                    f'Cannot update in-progress endpoint "{self._arn(call.region, "endpoint", name)}".',
                )
            variants = {v["VariantName"]: v for v in endpoint.production_variants or []}
            seen: set[str] = set()
            for item in desired:
                variant = item.get("VariantName")
                if variant in seen:
                    raise AwsError(
                        "ValidationException",
                        f'The variant name "{variant}" was non-unique within the request.',
                    )
                seen.add(variant)
                if variant not in variants:
                    raise AwsError(
                        "ValidationException",
                        f'The variant name(s) "{variant}" is/are not present within endpoint '
                        f'configuration "{endpoint.endpoint_config_name}".',
                    )
                weight = item.get("DesiredWeight")
                if weight is not None and float(weight) < 0:
                    raise AwsError("ValidationException", "DesiredWeight must be >= 0.")
            updated = []
            for current in endpoint.production_variants:
                variant = dict(current)
                change = next(
                    (d for d in desired if d["VariantName"] == variant["VariantName"]), None
                )
                if change is not None:
                    if change.get("DesiredWeight") is not None:
                        variant["DesiredWeight"] = float(change["DesiredWeight"])
                    if change.get("DesiredInstanceCount") is not None:
                        variant["DesiredInstanceCount"] = int(change["DesiredInstanceCount"])
                updated.append(variant)
            if updated and sum(v.get("DesiredWeight", 0.0) for v in updated) <= 0:
                raise AwsError(
                    "ValidationException",
                    "The sum of the variant weights must be greater than 0.",
                )
            endpoint.production_variants = updated
            endpoint.endpoint_status = "Updating"
            endpoint.last_modified_time = now()

        def settle() -> None:
            if self._emu.delay:
                time.sleep(self._emu.delay)
            with self._emu.lock:
                current = backend.endpoints.get(name)
                if current is not endpoint:
                    return
                endpoint.production_variants = [
                    {
                        **variant,
                        "CurrentWeight": variant.get("DesiredWeight", 0.0),
                        "CurrentInstanceCount": variant.get("DesiredInstanceCount", 1),
                    }
                    for variant in endpoint.production_variants
                ]
                endpoint.endpoint_status = "InService"
                endpoint.last_modified_time = now()

        threading.Thread(target=settle, name=f"weights-{name}", daemon=True).start()
        return Response.json({"EndpointArn": endpoint.arn})

    def invoke(self, call: Call) -> Response:
        """InvokeEndpoint: the model's own answer, from a variant picked by weight."""
        from mlport_sagemaker.emulator.server import ACCOUNT_ID

        parts = call.path.strip("/").split("/")
        name = parts[1] if len(parts) >= 3 else ""
        backend = self._emu.backend(call.region)
        not_found = AwsError(
            "ValidationError", f"Endpoint {name} of account {ACCOUNT_ID} not found."
        )
        with self._emu.lock:
            endpoint = backend.endpoints.get(name)
            variants = [dict(v) for v in (endpoint.production_variants or [])] if endpoint else []
        entry = self._endpoints.get((call.region, name))
        live = entry.live if entry is not None else None
        if endpoint is None or live is None:
            raise not_found
        target = call.headers.get("x-amzn-sagemaker-target-variant")
        if target:
            if target not in live.servers:
                raise AwsError(
                    "ValidationError",
                    f"Invalid target variant name: {target} is not a valid variant of endpoint "
                    f"{name}.",
                )
            chosen = target
        else:
            weights = [
                (v["VariantName"], float(v.get("CurrentWeight", 0.0)))
                for v in variants
                if v["VariantName"] in live.servers
            ]
            total = sum(weight for _, weight in weights)
            if total <= 0:
                raise AwsError("ValidationError", f"Endpoint {name} has no variant with weight.")
            chosen = random.choices([n for n, _ in weights], [w for _, w in weights])[0]
        server = live.servers[chosen]
        content_type = call.headers.get("content-type") or "application/octet-stream"
        accept = call.headers.get("accept")
        custom = call.headers.get("x-amzn-sagemaker-custom-attributes")
        log_url = (
            f"https://{call.region}.console.aws.amazon.com/cloudwatch/home?region={call.region}"
            f"#logEventViewer:group=/aws/sagemaker/Endpoints/{name} in account {ACCOUNT_ID}"
        )
        try:
            status, answer_type, body = server.invoke(call.body, content_type, accept, custom)
        except OSError as error:
            raise AwsError(
                "ModelError",
                f'Received server error (0) from primary with message "{error}". See {log_url} '
                "for more information.",
                extra={"OriginalStatusCode": 0, "OriginalMessage": str(error)},
            ) from None
        if status >= 400:
            text = body.decode("utf-8", errors="replace")
            kind = "client" if status < 500 else "server"
            raise AwsError(
                "ModelError",
                f'Received {kind} error ({status}) from primary with message "{text}". See '
                f"{log_url} for more information.",
                extra={
                    "OriginalStatusCode": status,
                    "OriginalMessage": text,
                    "LogStreamArn": f"arn:aws:logs:{call.region}:{ACCOUNT_ID}:log-group:"
                    f"/aws/sagemaker/Endpoints/{name}",
                },
            )
        if live.capture is not None:
            live.capture.offer(
                chosen,
                (content_type, call.body),
                (answer_type, body),
                call.headers.get("x-amzn-sagemaker-inference-id"),
            )
        return Response(
            200,
            [
                ("Content-Type", answer_type),
                ("x-Amzn-Invoked-Production-Variant", chosen),
                ("x-amzn-RequestId", str(uuid.uuid4())),
            ],
            body,
        )

    # -- deployments -------------------------------------------------------------------------

    def _config(self, region: str, name: str) -> dict[str, Any]:
        backend = self._emu.backend(region)
        with self._emu.lock:
            config = backend.endpoint_configs.get(name)
            if config is None:
                raise AwsError(
                    "ValidationException",
                    "Could not find endpoint configuration "
                    f'"{self._arn(region, "endpoint-config", name)}".',
                )
            return {
                "EndpointConfigName": name,
                "ProductionVariants": [dict(v) for v in config.production_variants],
                "DataCaptureConfig": config.data_capture_config or None,
            }

    def _deploy(
        self, entry: _Endpoint, config: dict[str, Any], generation: int, update: bool
    ) -> None:
        region, name = entry.region, entry.name
        backend = self._emu.backend(region)
        storage = self._storage(region)
        if self._emu.delay:
            time.sleep(self._emu.delay)
        folder = self._emu.workdir / "endpoints" / region / name / str(generation)
        servers: dict[str, ModelServer] = {}
        failure: str | None = None
        variants = config["ProductionVariants"]

        # A variant whose container is unchanged keeps its running server (as good as a fresh
        # instance, and seconds faster); the others get new ones.
        reusable = list(entry.live.servers.values()) if entry.live is not None else []
        reused: dict[str, ModelServer] = {}
        for variant in variants:
            key = container_key(self._model(region, variant["ModelName"]))
            match = next((s for s in reusable if s.key == key), None)
            if match is not None:
                reusable.remove(match)
                reused[variant["VariantName"]] = match

        def start(variant: dict[str, Any]) -> tuple[str, ModelServer]:
            model = self._model(region, variant["ModelName"])
            server = start_model_server(
                storage, model, folder / variant["VariantName"], name=name, abort=entry.abort
            )
            return variant["VariantName"], server

        fresh = [v for v in variants if v["VariantName"] not in reused]
        with ThreadPoolExecutor(max_workers=max(1, len(fresh))) as pool:
            futures = [pool.submit(start, variant) for variant in fresh]
            for variant, future in zip(fresh, futures, strict=True):
                try:
                    key, server = future.result()
                    servers[key] = server
                except StartAborted:
                    failure = failure or "the endpoint was deleted meanwhile"
                except AwsError as error:
                    failure = failure or error.message.replace(
                        "production variant", f"production variant {variant['VariantName']}", 1
                    )
                except Exception as error:
                    failure = failure or (
                        f"The primary container for production variant {variant['VariantName']} "
                        f"did not start: {type(error).__name__}: {error}"
                    )
        if entry.abort.is_set() or entry.generation != generation:
            failure = failure or "the endpoint was deleted or updated meanwhile"
        if failure is not None:
            for server in servers.values():
                server.stop()
            servers = {}
            with self._emu.lock:
                endpoint = backend.endpoints.get(name)
                if endpoint is not None:
                    endpoint.failure_reason = failure
                    endpoint.endpoint_status = "InService" if update else "Failed"
                    endpoint.last_modified_time = now()
            return
        deployment = _Deployment(
            config_name=config["EndpointConfigName"],
            servers={
                v["VariantName"]: (reused.get(v["VariantName"]) or servers[v["VariantName"]])
                for v in variants
            },
            capture=_Capture.from_config(config.get("DataCaptureConfig"), name),
        )
        moment = now()
        production = []
        for variant in variants:
            model = self._model(region, variant["ModelName"])
            weight = float(variant.get("InitialVariantWeight", 1.0))
            count = int(variant.get("InitialInstanceCount", 1))
            production.append(
                {
                    "VariantName": variant["VariantName"],
                    "DeployedImages": [
                        {
                            "SpecifiedImage": model.get("Image", ""),
                            "ResolvedImage": model.get("Image", ""),
                            "ResolutionTime": moment,
                        }
                    ],
                    "CurrentWeight": weight,
                    "DesiredWeight": weight,
                    "CurrentInstanceCount": count,
                    "DesiredInstanceCount": count,
                }
            )
        stale: _Deployment | None
        with self._emu.lock:
            endpoint = backend.endpoints.get(name)
            if endpoint is None:
                stale = deployment
            else:
                stale = entry.live
                entry.live = deployment
                endpoint.endpoint_config_name = config["EndpointConfigName"]
                endpoint.production_variants = production
                endpoint.data_capture_config = _capture_summary(config.get("DataCaptureConfig"))
                endpoint.failure_reason = None
                endpoint.endpoint_status = "InService"
                endpoint.last_modified_time = moment
        if stale is not None:
            kept = (
                {id(server) for server in deployment.servers.values()}
                if stale is not deployment
                else set()
            )
            self._stop_deployment(stale, region, keep=kept)

    def _model(self, region: str, model_name: str) -> dict[str, Any]:
        backend = self._emu.backend(region)
        with self._emu.lock:
            model = backend._models.get(model_name)
            if model is None:
                raise AwsError(
                    "ValidationException",
                    f'Could not find model "{self._arn(region, "model", model_name)}".',
                )
            container = model.primary_container or (model.containers or [{}])[0]
            return dict(container or {})

    def _stop_deployment(
        self, deployment: _Deployment, region: str, keep: set[int] | None = None
    ) -> None:
        for server in deployment.servers.values():
            if id(server) not in (keep or set()):
                server.stop()
        if deployment.capture is not None:
            with contextlib.suppress(Exception):
                deployment.capture.flush(self._storage(region))

    def _retire(self, entry: _Endpoint) -> None:
        entry.abort.set()
        with entry.lock:
            entry.generation += 1
            busy = entry.busy
        if busy is not None:
            busy.join(timeout=_START_TIMEOUT)
        live, entry.live = entry.live, None
        if live is not None:
            self._stop_deployment(live, entry.region)

    def _flush_loop(self) -> None:
        while not self._stopping.wait(self._emu.capture_flush_seconds):
            self.flush()

    def flush(self) -> None:
        """Write every buffered capture record to S3, and the servers' output to CloudWatch."""
        with self._lock:
            entries = list(self._endpoints.values())
        for entry in entries:
            live = entry.live
            if live is None:
                continue
            if live.capture is not None:
                with contextlib.suppress(Exception):
                    live.capture.flush(self._storage(entry.region))
            with contextlib.suppress(Exception):
                self._forward_logs(entry, live)

    def _forward_logs(self, entry: _Endpoint, live: _Deployment) -> None:
        group = f"{ENDPOINT_LOG_GROUP}/{entry.name}"
        logs = self._emu.client("logs", entry.region)
        for variant, server in live.servers.items():
            lines = [line for tail in server.tails for line in tail.read()]
            if not lines:
                continue
            stream = f"{variant}/{server.folder.parent.name}-{server.record.pid}"
            if (group, stream) not in self._streams:
                with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
                    logs.create_log_group(logGroupName=group)
                with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
                    logs.create_log_stream(logGroupName=group, logStreamName=stream)
                self._streams.add((group, stream))
            stamp = int(time.time() * 1000)
            logs.put_log_events(
                logGroupName=group,
                logStreamName=stream,
                logEvents=[{"timestamp": stamp, "message": line} for line in lines[:10000]],
            )

    # -- component ---------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop every server (flushing capture) and the flusher."""
        with self._lock:
            entries = list(self._endpoints.values())
            self._endpoints.clear()
        for entry in entries:
            self._retire(entry)

    def clear(self) -> None:
        """Forget the log streams made (moto's state was reset)."""
        self._streams.clear()

    def close(self) -> None:
        """Stop the flusher thread."""
        self._stopping.set()
        self._flusher.join(timeout=5)
        shutil.rmtree(self._emu.workdir / "endpoints", ignore_errors=True)


def _capture_summary(config: dict[str, Any] | None) -> dict[str, Any] | None:
    if not config:
        return None
    return {
        "EnableCapture": bool(config.get("EnableCapture", True)),
        "CaptureStatus": "Started" if config.get("EnableCapture", True) else "Stopped",
        "CurrentSamplingPercentage": int(config.get("InitialSamplingPercentage", 100)),
        "DestinationS3Uri": config.get("DestinationS3Uri"),
    }
