"""Running a BatchPredictionJob: read the instances from ``gs://``, predict, write the files.

Output as https://cloud.google.com/vertex-ai/docs/predictions/get-batch-predictions describes
it: a folder ``prediction-<model display name>-<UTC time>`` under ``output_uri_prefix`` with
``predictions_00001.jsonl`` (one ``{"instance": ..., "prediction": ...}`` per line) and
``errors_00001.jsonl`` (``{"instance": ..., "status": {...}}`` for instances that failed).
Inputs: ``jsonl`` (one instance per line) and ``csv`` (a header line, then one instance per row,
sent as a list of values; cells that read as numbers are sent as numbers). ``gs://`` URIs may end
in a ``*`` wildcard.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.cloud.aiplatform_v1.types import batch_prediction_job as bpj
from google.protobuf import json_format  # type: ignore[import-untyped, unused-ignore]

from mlport_vertex.emulator.state import EmulatorState, now
from mlport_vertex.emulator.storage import split_gs
from mlport_vertex.emulator.workers import ModelServer, ModelServerError

__all__ = ["BatchOutcome", "predict_batch", "read_instances"]

_CHUNK = 64


@dataclass(frozen=True)
class BatchOutcome:
    """How a batch run ended."""

    succeeded: int
    failed: int
    output_directory: str
    message: str = ""


def _number(cell: str) -> Any:
    try:
        return int(cell)
    except ValueError:
        pass
    try:
        return float(cell)
    except ValueError:
        return cell


def _expand(state: EmulatorState, uri: str) -> list[str]:
    if "*" not in uri:
        return [uri]
    bucket, pattern = split_gs(uri)
    prefix = pattern.split("*", 1)[0]
    return [
        f"gs://{bucket}/{blob.name}"
        for blob in state.gcs.client.list_blobs(bucket, prefix=prefix)
        if fnmatch.fnmatch(blob.name, pattern)
    ]


def read_instances(state: EmulatorState, uris: list[str], fmt: str) -> list[Any]:
    """Every instance of the input files, in order.

    Raises:
        ValueError: A line is not JSON, or no file matched.
    """
    files = [u for uri in uris for u in _expand(state, uri)]
    if not files:
        raise ValueError(f"No input files match {uris}.")
    instances: list[Any] = []
    for uri in files:
        text = state.gcs.read(uri).decode("utf-8")
        if fmt == "jsonl":
            for number, line in enumerate(text.splitlines(), start=1):
                if line.strip():
                    try:
                        instances.append(json.loads(line))
                    except ValueError as exc:
                        raise ValueError(f"{uri} line {number} is not JSON: {exc}") from None
        else:
            rows = list(csv.reader(io.StringIO(text)))
            instances.extend([_number(c) for c in row] for row in rows[1:] if row)
    return instances


def predict_batch(
    state: EmulatorState,
    job: bpj.BatchPredictionJob,
    server: ModelServer,
    display_name: str,
    alive: Callable[[], bool],
) -> BatchOutcome:
    """Predict every instance through ``server`` and write the output files.

    Raises:
        ValueError: The input cannot be read.
    """
    instances = read_instances(
        state, list(job.input_config.gcs_source.uris), job.input_config.instances_format
    )
    stamp = now().strftime("%Y_%m_%dT%H_%M_%S_") + f"{now().microsecond // 1000:03d}Z"
    safe_name = "".join(c if c.isalnum() or c in "-_" else "_" for c in display_name)
    prefix = job.output_config.gcs_destination.output_uri_prefix.rstrip("/")
    directory = f"{prefix}/prediction-{safe_name}-{stamp}"
    job_pb = bpj.BatchPredictionJob.pb(job)
    params = (
        json_format.MessageToDict(job_pb.model_parameters)
        if job_pb.HasField("model_parameters")
        else None
    )
    predictions: list[str] = []
    errors: list[str] = []
    for start in range(0, len(instances), _CHUNK):
        if not alive():
            break
        chunk = instances[start : start + _CHUNK]
        payload: dict[str, Any] = {"instances": chunk}
        if params is not None:
            payload["parameters"] = params
        try:
            status, body = server.predict(json.dumps(payload).encode())
        except ModelServerError as exc:
            status, body = 503, json.dumps({"error": str(exc)}).encode()
        if status == 200:
            answers = json.loads(body)["predictions"]
            for instance, prediction in zip(chunk, answers, strict=True):
                predictions.append(json.dumps({"instance": instance, "prediction": prediction}))
        else:
            for instance in chunk:
                # One request per instance, so one bad row does not fail its neighbours.
                single = {**payload, "instances": [instance]}
                status, body = server.predict(json.dumps(single).encode())
                if status == 200:
                    prediction = json.loads(body)["predictions"][0]
                    predictions.append(json.dumps({"instance": instance, "prediction": prediction}))
                else:
                    message = _error_text(body)
                    errors.append(
                        json.dumps(
                            {"instance": instance, "status": {"code": 3, "message": message}}
                        )
                    )
    state.gcs.write(
        f"{directory}/predictions_00001.jsonl",
        "".join(line + "\n" for line in predictions).encode(),
        "application/jsonl",
    )
    state.gcs.write(
        f"{directory}/errors_00001.jsonl",
        "".join(line + "\n" for line in errors).encode(),
        "application/jsonl",
    )
    return BatchOutcome(len(predictions), len(errors), directory)


def _error_text(body: bytes) -> str:
    try:
        data = json.loads(body)
        return str(data.get("error", data)) if isinstance(data, dict) else str(data)
    except ValueError:
        return body[:500].decode(errors="replace")
