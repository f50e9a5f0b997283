"""Batch transform jobs that really predict, with the portable model server.

CreateTransformJob downloads the input (an S3 prefix or object), starts a model server for the
model, sends the records to ``/invocations`` as SageMaker batch transform does (``SplitType``
Line or None; ``BatchStrategy`` MultiRecord packs lines up to ``MaxPayloadInMB``, SingleRecord
sends one line per request) and writes ``<input file>.out`` per input file under
``TransformOutput.S3OutputPath`` (``AssembleWith`` Line puts each answer on its own line).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlport_sagemaker.emulator._aws import AwsError, Call, Response
from mlport_sagemaker.emulator._hosting import ModelServer, StartAborted, start_model_server
from mlport_sagemaker.emulator._registry import arn
from mlport_sagemaker.emulator._s3 import Storage, join, split_uri
from mlport_sagemaker.emulator._training import enum_error, instance_types, now

if TYPE_CHECKING:
    from mlport_sagemaker.emulator.server import SageMakerEmulator

__all__ = ["TransformJobs"]

_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_MIB = 1024 * 1024


class _Stopped(Exception):
    pass


@dataclass
class _Run:
    name: str
    region: str
    request: dict[str, Any]
    folder: Path
    stop_requested: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    server: ModelServer | None = None


class TransformJobs:
    """CreateTransformJob (a real run) and StopTransformJob."""

    def __init__(self, emulator: SageMakerEmulator) -> None:
        self._emu = emulator
        self._runs: dict[tuple[str, str], _Run] = {}
        self._lock = threading.Lock()
        emulator.register(
            "sagemaker",
            {"CreateTransformJob": self.create, "StopTransformJob": self.stop},
        )

    def shutdown(self) -> None:
        """Stop every run and its model server."""
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            run.stop_requested.set()
        for run in runs:
            if run.thread is not None:
                run.thread.join(timeout=60)

    def clear(self) -> None:
        """Forget the runs."""
        with self._lock:
            self._runs.clear()

    def create(self, call: Call) -> Response:
        """CreateTransformJob: validate, record (moto), run in the background."""
        params = call.params()
        name = params.get("TransformJobName", "")
        if not _NAME.match(str(name)):
            raise AwsError(
                "ValidationException",
                f"1 validation error detected: Value '{name}' at 'transformJobName' failed to "
                "satisfy constraint: Member must satisfy regular expression pattern: "
                "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}",
            )
        backend = self._emu.backend(call.region)
        if name in backend.transform_jobs:
            raise AwsError(
                "ResourceInUse",
                "Job name must be unique within an AWS account and region, and a job with this "
                f"name already exists ({arn(call.region, 'transform-job', name)})",
            )
        model = params.get("ModelName", "")
        if model not in backend._models:
            raise AwsError(
                "ValidationException",
                f'Could not find model "{arn(call.region, "model", model)}".',
            )
        kind = (params.get("TransformResources") or {}).get("InstanceType")
        allowed = instance_types("TransformInstanceType")
        if kind not in allowed:
            raise enum_error(str(kind), "transformResources.instanceType", allowed)
        source = ((params.get("TransformInput") or {}).get("DataSource") or {}).get(
            "S3DataSource"
        ) or {}
        split_uri(source.get("S3Uri", ""))
        split_uri((params.get("TransformOutput") or {}).get("S3OutputPath", ""))
        split = (params.get("TransformInput") or {}).get("SplitType", "None")
        if split not in ("None", "Line"):
            raise AwsError(
                "ValidationException",
                f"the local SageMaker emulator supports SplitType None and Line, not {split}",
            )
        response = self._emu.forward(call)
        if response.status != 200:
            return response
        with self._emu.lock:
            job = backend.transform_jobs[name]
            job.transform_job_status = "InProgress"
            job.failure_reason = None
            job.transform_start_time = None
            job.transform_end_time = None
            job.last_modified_time = now()
        run = _Run(name, call.region, params, self._emu.workdir / "transform" / call.region / name)
        with self._lock:
            self._runs[(call.region, name)] = run
        run.thread = threading.Thread(
            target=self._run, args=(run,), name=f"transform-{name}", daemon=True
        )
        run.thread.start()
        return response

    def stop(self, call: Call) -> Response:
        """StopTransformJob: Stopping, then Stopped."""
        name = call.params().get("TransformJobName", "")
        backend = self._emu.backend(call.region)
        with self._emu.lock:
            job = backend.transform_jobs.get(name)
            if job is None:
                raise AwsError(
                    "ResourceNotFound",
                    f"Could not find transform job '{arn(call.region, 'transform-job', name)}'.",
                )
            if job.transform_job_status != "InProgress":
                return Response.json({})
            job.transform_job_status = "Stopping"
            job.last_modified_time = now()
        with self._lock:
            run = self._runs.get((call.region, name))
        if run is not None:
            run.stop_requested.set()
        return Response.json({})

    def _set(self, run: _Run, **fields: Any) -> None:
        with self._emu.lock:
            job = self._emu.backend(run.region).transform_jobs.get(run.name)
            if job is not None:
                for key, value in fields.items():
                    setattr(job, key, value)
                job.last_modified_time = now()

    def _run(self, run: _Run) -> None:
        storage = Storage(self._emu.client("s3", run.region))
        status, reason = "Completed", None
        try:
            if self._emu.delay:
                run.stop_requested.wait(self._emu.delay)
            self._check(run)
            self._set(run, transform_start_time=now())
            backend = self._emu.backend(run.region)
            with self._emu.lock:
                model = backend._models.get(run.request["ModelName"])
                container = (
                    dict(model.primary_container or (model.containers or [{}])[0]) if model else {}
                )
            if not container:
                raise AwsError("ValidationException", f"model {run.request['ModelName']} is gone")
            container["Environment"] = {
                **(container.get("Environment") or {}),
                **(run.request.get("Environment") or {}),
            }
            run.server = start_model_server(
                storage, container, run.folder / "server", name=run.name, abort=run.stop_requested
            )
            self._check(run)
            self._transform(run, storage, run.server)
        except (_Stopped, StartAborted):
            status = "Stopped"
        except AwsError as error:
            status, reason = "Failed", f"ClientError: {error.message}"
        except Exception as error:
            status, reason = "Failed", f"ClientError: {type(error).__name__}: {error}"
        finally:
            if run.server is not None:
                run.server.stop()
        self._set(run, transform_job_status=status, failure_reason=reason, transform_end_time=now())

    def _check(self, run: _Run) -> None:
        if run.stop_requested.is_set():
            raise _Stopped

    def _transform(self, run: _Run, storage: Storage, server: ModelServer) -> None:
        request = run.request
        transform_input = request["TransformInput"]
        source = transform_input["DataSource"]["S3DataSource"]
        output = request["TransformOutput"]
        inputs = run.folder / "input"
        if storage.download_prefix(source["S3Uri"], inputs) == 0:
            raise AwsError("ValidationException", f"No S3 objects found under {source['S3Uri']}")
        content_type = transform_input.get("ContentType") or "application/octet-stream"
        accept = output.get("Accept")
        split = transform_input.get("SplitType", "None")
        strategy = request.get("BatchStrategy", "MultiRecord")
        limit = int(request.get("MaxPayloadInMB", 6)) * _MIB
        assemble = output.get("AssembleWith", "None")
        for path in sorted(p for p in inputs.rglob("*") if p.is_file()):
            data = path.read_bytes()
            if split == "Line":
                records = [line + b"\n" for line in data.splitlines() if line.strip()]
                batches = _batches(records, limit if strategy == "MultiRecord" else 0)
            else:
                batches = [data]
            answers = []
            for batch in batches:
                self._check(run)
                if len(batch) > limit:
                    raise AwsError(
                        "ValidationException",
                        f"{path.name}: a request of {len(batch)} bytes exceeds MaxPayloadInMB",
                    )
                status, _, body = server.invoke(batch, content_type, accept, None)
                if status >= 400:
                    raise AwsError(
                        "ValidationException",
                        f"{path.relative_to(inputs)}: the model answered {status}: "
                        f"{body.decode('utf-8', errors='replace')}",
                    )
                answers.append(body)
            if assemble == "Line":
                result = b"".join(a if a.endswith(b"\n") else a + b"\n" for a in answers)
            else:
                result = b"".join(answers)
            relative = path.relative_to(inputs).as_posix()
            storage.write(join(output["S3OutputPath"], relative + ".out"), result)


def _batches(records: list[bytes], limit: int) -> list[bytes]:
    """Group records into payloads of at most ``limit`` bytes (0: one record each)."""
    if limit <= 0:
        return records
    batches: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for record in records:
        if current and size + len(record) > limit:
            batches.append(b"".join(current))
            current, size = [], 0
        current.append(record)
        size += len(record)
    if current:
        batches.append(b"".join(current))
    return batches
