"""Command jobs that really run: inputs downloaded from Azurite, outputs uploaded back.

A job moves NotStarted -> Queued -> Preparing -> Running -> Finalizing -> Completed (or Failed,
or CancelRequested -> Canceled), pausing ``Settings.job_step_seconds`` between states. While
Preparing, its code and inputs are downloaded into a job folder; its command, with
``${{inputs.x}}`` and ``${{outputs.y}}`` replaced by local paths, runs in ``bash`` in the code
folder as a child process (output in ``user_logs/std_log.txt``, uploaded to the artifact store as
Azure ML does, so ``jobs.stream`` and ``jobs.download`` find it); then outputs are uploaded.

The run-history calls ``jobs.stream`` makes (``/discovery``, ``runs/{id}/details``) are served
here too.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlport.processes import ProcessRecord, spawn, stop
from mlport_azureml.emulator._arm import PROVIDER, check_name, now_iso, page, system_data
from mlport_azureml.emulator._http import (
    ApiError,
    Request,
    Response,
    bad_request,
    conflict,
    not_found,
)
from mlport_azureml.emulator._service import JOB_FAILED, Service
from mlport_azureml.emulator.storage import BlobLocation, asset_reference, locate

__all__ = ["TERMINAL", "Jobs", "known_instance_type", "parse_duration"]

TERMINAL = ("Completed", "Failed", "Canceled", "NotResponding", "Paused")
_IN_PROGRESS = (
    "NotStarted",
    "Starting",
    "Provisioning",
    "Queued",
    "Preparing",
    "Running",
    "Finalizing",
    "CancelRequested",
)
_INPUT_TYPES = (
    "literal",
    "uri_file",
    "uri_folder",
    "mltable",
    "custom_model",
    "mlflow_model",
    "triton_model",
)
_OUTPUT_TYPES = (
    "uri_file",
    "uri_folder",
    "mltable",
    "custom_model",
    "mlflow_model",
    "triton_model",
)
_REFERENCE = re.compile(r"\$\{\{\s*(inputs|outputs)\.([A-Za-z0-9_]+)\s*\}\}")
_OPTIONAL = re.compile(r"\[([^\[\]]*)\]")
_DURATION = re.compile(
    r"^P(?:(?P<days>\d+(?:\.\d+)?)D)?(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?"
    r"(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
# Sizes Azure ML documents beyond the compute catalog (older DS-series used in its examples).
_EXTRA_SIZES = {
    "standard_ds1_v2",
    "standard_ds2_v2",
    "standard_ds3_v2",
    "standard_ds4_v2",
    "standard_ds5_v2",
    "standard_ds11_v2",
    "standard_ds12_v2",
    "standard_ds13_v2",
    "standard_d2_v2",
    "standard_d3_v2",
    "standard_d4_v2",
    "standard_d2as_v4",
    "standard_d4as_v4",
    "standard_nc6s_v3",
    "standard_nc12s_v3",
    "standard_nc24s_v3",
    "standard_e4s_v3",
    "standard_f4s_v2",
}
_LOG_NAME = "user_logs/std_log.txt"
_LOG_UPLOAD_SECONDS = 0.5
_DETAILS_HOLD_SECONDS = 1.0


def known_instance_type(name: str) -> bool:
    """Whether ``name`` is a VM size Azure ML offers (the compute catalog, plus DS-series)."""
    from mlport.compute import catalog

    if name.lower() in _EXTRA_SIZES:
        return True
    return any(row.name.lower() == name.lower() for row in catalog("azureml").types)


def parse_duration(value: Any, field_name: str) -> float | None:
    """Seconds of an ISO 8601 duration (``PT30M``) or a number; None for none.

    Raises:
        ApiError: 400 when the value is neither.
    """
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    found = _DURATION.match(str(value))
    if not found or str(value) in ("P", "PT"):
        raise bad_request(f"{value!r} is not an ISO 8601 duration.", field_name)
    parts = {k: float(v) for k, v in found.groupdict().items() if v}
    return (
        parts.get("days", 0) * 86400
        + parts.get("hours", 0) * 3600
        + parts.get("minutes", 0) * 60
        + parts.get("seconds", 0)
    )


@dataclass
class _Run:
    resource: dict[str, Any]
    directory: Path
    cancel: threading.Event = field(default_factory=threading.Event)
    record: ProcessRecord | None = None
    error: dict[str, Any] | None = None
    started: str | None = None
    ended: str | None = None
    warnings: list[dict[str, Any]] = field(default_factory=list)


class Jobs:
    """Command jobs: create, get, list, cancel, delete, and their run history."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self._changed = threading.Condition()
        service.route("PUT", "{ws}/jobs/{id}", "Jobs_CreateOrUpdate", self.put)
        service.route("GET", "{ws}/jobs/{id}", "Jobs_Get", self.get)
        service.route("GET", "{ws}/jobs", "Jobs_List", self.list)
        service.route("DELETE", "{ws}/jobs/{id}", "Jobs_Delete", self.delete)
        service.route("POST", "{ws}/jobs/{id}/cancel", "Jobs_Cancel", self.cancel)
        history = "/history/v1.0" + service.WS
        service.router.add("GET", history + "/runs/{id}/details", "Runs_GetDetails", self.details)
        service.router.add("GET", history + "/runs/{id}", "Runs_GetById", self.run)
        service.router.add(
            "GET", history + "/experimentids/{experiment}/runs/{id}", "Runs_Get", self.run
        )
        service.router.add("POST", history + "/rundata", "Runs_GetRunData", self.run_data)
        service.router.add(
            "POST",
            "/data/v1.0" + service.WS + "/dataversion/batchGetResolvedUris",
            "DataVersion_BatchGetResolvedUris",
            self.resolve_data_uris,
        )
        service.router.add(
            "POST",
            "/modelregistry/v1.0" + service.WS + "/models/batchGetResolvedUris",
            "Models_BatchGetResolvedUris",
            self.resolve_model_uris,
        )
        service.router.add("GET", "/discovery", "Discovery_Get", self.discovery, arm=False)
        service.add_family(self, "jobs")

    # --- lifecycle ---------------------------------------------------------------------------

    def _runs(self) -> dict[str, _Run]:
        return self.service.table("jobs")

    def reset(self) -> None:
        """Cancel and stop every job's process."""
        self._stop_all()

    def close(self) -> None:
        """Stop every job's process."""
        self._stop_all()

    def _stop_all(self) -> None:
        with self.service.lock:
            runs = list(self._runs().values())
        for run in runs:
            run.cancel.set()
            if run.record is not None:
                stop(run.record, grace=2.0)
        with self._changed:
            self._changed.notify_all()

    # --- REST --------------------------------------------------------------------------------

    def _find(self, name: str) -> _Run:
        with self.service.lock:
            run = self._runs().get(name)
        if run is None:
            raise not_found(f"{PROVIDER}/workspaces/jobs", name)
        return run

    def get(self, request: Request) -> Response:
        """Jobs_Get."""
        return Response(200, self._find(request.params["id"]).resource)

    def list(self, request: Request) -> Response:
        """Jobs_List (``listViewType``, ``jobType``, ``tag`` filters), newest first."""
        with self.service.lock:
            items = [run.resource for run in self._runs().values()]
        view = request.query.get("listViewType", "ActiveOnly")
        if view != "All":
            archived = view == "ArchivedOnly"
            items = [j for j in items if bool(j["properties"].get("isArchived")) == archived]
        kind = request.query.get("jobType")
        if kind:
            items = [j for j in items if j["properties"]["jobType"].lower() == kind.lower()]
        tag = request.query.get("tag")
        if tag:
            items = [j for j in items if tag in (j["properties"].get("tags") or {})]
        items.sort(key=lambda j: j["systemData"]["createdAt"], reverse=True)
        return page(request, items)

    def put(self, request: Request) -> Response:
        """Jobs_CreateOrUpdate: a new job starts running; an existing one may change only its
        description, tags, display name and archive flag."""
        name = request.params["id"]
        check_name("job", name, "id")
        body = request.json_object()
        properties = body.get("properties")
        if not isinstance(properties, dict):
            raise bad_request("The field properties is required.", "properties")
        with self.service.lock:
            existing = self._runs().get(name)
        if existing is not None:
            return self._update(existing, properties)
        self._validate(properties)
        resource = self._resource(name, properties, request)
        directory = self.service.work_dir / "jobs" / name
        run = _Run(resource=resource, directory=directory)
        with self.service.lock:
            if name in self._runs():
                raise conflict(f"A job named {name} already exists.")
            self._runs()[name] = run
        generation = self.service.generation
        self.service.run_background(lambda: self._execute(run, generation), f"job-{name}")
        return Response(201, resource)

    def submit(self, name: str, properties: dict[str, Any], request: Request) -> dict[str, Any]:
        """Start a job the service itself makes (a batch scoring run); returns its resource.

        Raises:
            ApiError: 409 when a job of that name exists, 400 for inputs pointing nowhere.
        """
        check_name("job", name, "name")
        for key, spec in (properties.get("inputs") or {}).items():
            if spec.get("jobInputType") == "literal":
                continue
            locate(
                self.service,
                str(spec["uri"]),
                field=f"inputs.{key}",
                kind_hint="models" if "model" in spec["jobInputType"] else "data",
            )
        resource = self._resource(name, properties, request)
        run = _Run(resource=resource, directory=self.service.work_dir / "jobs" / name)
        with self.service.lock:
            if name in self._runs():
                raise conflict(f"A job named {name} already exists.")
            self._runs()[name] = run
        generation = self.service.generation
        self.service.run_background(lambda: self._execute(run, generation), f"job-{name}")
        return resource

    def _update(self, run: _Run, properties: dict[str, Any]) -> Response:
        current = run.resource["properties"]
        fixed = ("command", "codeId", "environmentId", "computeId", "inputs", "jobType")
        changed = [
            key
            for key in fixed
            if key in properties and _comparable(properties[key]) != _comparable(current.get(key))
        ]
        if changed:
            raise conflict(
                f"A job named {run.resource['name']} already exists with a different "
                f"{', '.join(changed)}; only description, tags, displayName and isArchived of a "
                "job can be changed.",
                code="UserError",
            )
        with self.service.lock:
            for key in ("description", "tags", "displayName", "isArchived", "properties"):
                if key in properties and properties[key] is not None:
                    current[key] = properties[key]
            run.resource["systemData"] = system_data(run.resource["systemData"])
        return Response(200, run.resource)

    def delete(self, request: Request) -> Response:
        """Jobs_Delete: a long-running operation; a running job is canceled first."""
        name = request.params["id"]
        with self.service.lock:
            run = self._runs().get(name)
        if run is None:
            return Response(204)

        def work() -> None:
            self._cancel_run(run)
            with self.service.lock:
                self._runs().pop(name, None)

        operation = self.service.start_operation(work, name=f"delete-job-{name}")
        return Response(202, None, self.service.lro_headers(request, operation))

    def cancel(self, request: Request) -> Response:
        """Jobs_Cancel: 202 and a Location to poll; the job ends Canceled."""
        run = self._find(request.params["id"])
        status = run.resource["properties"]["status"]
        if status in TERMINAL:
            raise bad_request(
                f"The job {run.resource['name']} is {status} and cannot be canceled.", "id"
            )

        def work() -> None:
            self._cancel_run(run)

        operation = self.service.start_operation(work, name=f"cancel-{run.resource['name']}")
        return Response(202, None, self.service.lro_headers(request, operation))

    def _cancel_run(self, run: _Run) -> None:
        if run.resource["properties"]["status"] in TERMINAL:
            return
        self._set_status(run, "CancelRequested")
        run.cancel.set()
        if run.record is not None:
            stop(run.record, grace=2.0)
        deadline = time.monotonic() + 10
        while run.resource["properties"]["status"] not in TERMINAL:
            if time.monotonic() > deadline:
                self._finish(run, "Canceled")
                return
            with self._changed:
                self._changed.wait(0.1)

    # --- run history -------------------------------------------------------------------------

    def discovery(self, request: Request) -> Response:
        """The workspace discovery document: every data-plane service lives here."""
        base = request.base_url
        keys = (
            "api",
            "catalog",
            "experimentation",
            "gallery",
            "history",
            "hyperdrive",
            "labeling",
            "modelmanagement",
            "pipelines",
            "studiotrace",
        )
        return Response(200, {key: base for key in keys})

    def details(self, request: Request) -> Response:
        """Runs_GetDetails: status, times, log files and error, as run history answers.

        While the job is in progress the answer waits up to a second for its status to
        change, so log streaming neither spins nor lags.
        """
        run = self._find(request.params["id"])
        status = run.resource["properties"]["status"]
        if status not in TERMINAL:
            with self._changed:
                self._changed.wait_for(
                    lambda: run.resource["properties"]["status"] != status,
                    timeout=_DETAILS_HOLD_SECONDS,
                )
        return Response(200, self._details(run))

    def _output_asset_id(self, job: str, output: str, model: bool) -> str:
        kind = "models" if model else "data"
        return (
            f"azureml://locations/{self.service.settings.location}/workspaces/"
            f"{self.service.workspace_id}/{kind}/azureml_{job}_output_{output}/versions/1"
        )

    def _output_assets(self) -> dict[str, str]:
        """Asset id of every job output -> its URI."""
        found: dict[str, str] = {}
        with self.service.lock:
            runs = list(self._runs().values())
        for run in runs:
            for key, spec in run.resource["properties"]["outputs"].items():
                model = "model" in spec["jobOutputType"]
                found[self._output_asset_id(run.resource["name"], key, model)] = spec["uri"]
        return found

    def run_data(self, request: Request) -> Response:
        """Runs_GetRunData: the job's outputs as run history records them."""
        body = request.json_object()
        run = self._find(str(body.get("runId") or ""))
        kinds = {
            "custom_model": "CustomModel",
            "mlflow_model": "MLFlowModel",
            "triton_model": "TritonModel",
        }
        outputs = {}
        for key, spec in run.resource["properties"]["outputs"].items():
            model = spec["jobOutputType"] in kinds
            outputs[key] = {
                "assetId": self._output_asset_id(run.resource["name"], key, model),
                "type": kinds.get(spec["jobOutputType"], spec["jobOutputType"]),
            }
        details = self._details(run)
        return Response(200, {"runMetadata": {**details, "outputs": outputs}})

    def resolve_data_uris(self, request: Request) -> Response:
        """DataVersion_BatchGetResolvedUris for job outputs."""
        wanted = request.json_object().get("values") or []
        known = self._output_assets()
        return Response(200, {"values": {i: {"uri": known[i]} for i in wanted if i in known}})

    def resolve_model_uris(self, request: Request) -> Response:
        """Models_BatchGetResolvedUris for job outputs."""
        wanted = request.json_object().get("values") or []
        known = self._output_assets()
        return Response(200, {"values": {i: {"path": known[i]} for i in wanted if i in known}})

    def run(self, request: Request) -> Response:
        """Runs_GetById."""
        return Response(200, self._details(self._find(request.params["id"])))

    def _details(self, run: _Run) -> dict[str, Any]:
        properties = run.resource["properties"]
        body: dict[str, Any] = {
            "runId": run.resource["name"],
            "runUuid": run.resource["name"],
            "status": properties["status"],
            "startTimeUtc": run.started,
            "endTimeUtc": run.ended,
            "target": properties.get("computeId"),
            "properties": properties.get("properties") or {},
            "inputDatasets": [],
            "outputDatasets": [],
            "logFiles": {},
            "warnings": run.warnings,
        }
        if run.error:
            body["error"] = {"error": run.error}
        return body

    # --- validation --------------------------------------------------------------------------

    def validate(self, properties: dict[str, Any], prefix: str = "properties") -> None:
        """Check a command job's properties as ``Jobs_CreateOrUpdate`` does.

        Args:
            properties: The job's ``properties``.
            prefix: What error targets start with instead of ``properties`` (a schedule's
                ``properties.action.jobDefinition``).

        Raises:
            ApiError: 400 naming the bad field.
        """
        try:
            self._validate(properties)
        except ApiError as exc:
            if prefix != "properties" and exc.target and exc.target.startswith("properties"):
                target = prefix + exc.target[len("properties") :]
                raise bad_request(exc.message, target) from None
            raise

    def _validate(self, properties: dict[str, Any]) -> None:
        kind = properties.get("jobType")
        if kind != "Command":
            raise bad_request(
                f"jobType {kind!r} is not supported by the emulator; it runs Command jobs.",
                "properties.jobType",
            )
        command = properties.get("command")
        if not isinstance(command, str) or not command.strip():
            raise bad_request("The field command is required.", "properties.command")
        inputs = properties.get("inputs") or {}
        outputs = properties.get("outputs") or {}
        for name, spec in inputs.items():
            target = f"properties.inputs.{name}"
            if not isinstance(spec, dict) or spec.get("jobInputType") not in _INPUT_TYPES:
                raise bad_request(
                    f"Input {name} needs a jobInputType among {', '.join(_INPUT_TYPES)}.", target
                )
            if spec["jobInputType"] == "literal":
                if "value" not in spec:
                    raise bad_request(f"Literal input {name} needs a value.", target)
            else:
                if not spec.get("uri"):
                    raise bad_request(f"Input {name} needs a uri.", target)
                locate(
                    self.service,
                    str(spec["uri"]),
                    field=target,
                    kind_hint="models" if "model" in spec["jobInputType"] else "data",
                )
        for name, spec in outputs.items():
            target = f"properties.outputs.{name}"
            if not isinstance(spec, dict) or spec.get("jobOutputType") not in _OUTPUT_TYPES:
                raise bad_request(
                    f"Output {name} needs a jobOutputType among {', '.join(_OUTPUT_TYPES)}.",
                    target,
                )
            if spec.get("uri"):
                locate(self.service, str(spec["uri"]), field=target)
        required = _OPTIONAL.sub("", command)
        for kind_name, ref in _REFERENCE.findall(required):
            pool = inputs if kind_name == "inputs" else outputs
            if ref not in pool:
                raise bad_request(
                    f"The command references ${{{{{kind_name}.{ref}}}}}, which is not defined in "
                    f"the job's {kind_name}.",
                    "properties.command",
                )
        self._check_environment(properties.get("environmentId"))
        code = properties.get("codeId")
        if code:
            reference = asset_reference(str(code))
            if reference is None or reference[0] not in ("codes", ""):
                raise bad_request(f"codeId {code} is not a code asset id.", "properties.codeId")
            self._asset("codes", reference[1], reference[2], "properties.codeId")
        self._check_compute(properties)
        parse_duration((properties.get("limits") or {}).get("timeout"), "properties.limits.timeout")

    def _asset(self, kind: str, name: str, version: str, target: str) -> dict[str, Any]:
        from mlport_azureml.emulator.assets import Assets

        assets: Assets = self.service.families["assets"]  # type: ignore[assignment]
        try:
            return assets.version(kind, name, version)
        except ApiError:
            raise bad_request(f"The {kind[:-1]} {name}:{version} does not exist.", target) from None

    def _check_environment(self, environment: Any) -> None:
        target = "properties.environmentId"
        if not environment:
            raise bad_request("The field environmentId is required.", target)
        text = str(environment)
        if text.startswith("azureml://registries/"):
            return
        reference = asset_reference(text)
        if reference is None or reference[0] not in ("environments", ""):
            raise bad_request(f"environmentId {text} is not an environment id.", target)
        self._asset("environments", reference[1], reference[2], target)

    def _check_compute(self, properties: dict[str, Any]) -> None:
        compute = properties.get("computeId")
        if compute:
            name = str(compute).rstrip("/").split("/")[-1]
            families = self.service.families
            if "compute" in families:
                families["compute"].require_target(name)  # type: ignore[attr-defined]
            return
        size = (properties.get("resources") or {}).get("instanceType")
        if size and not known_instance_type(str(size)):
            raise bad_request(
                f"The instance type {size} is not a VM size Azure ML offers.",
                "properties.resources.instanceType",
            )

    # --- the resource ------------------------------------------------------------------------

    def _resource(self, name: str, properties: dict[str, Any], request: Request) -> dict[str, Any]:
        outputs = {
            key: {**spec, "uri": spec.get("uri") or self._default_output(name, key)}
            for key, spec in (properties.get("outputs") or {}).items()
        }
        outputs["default"] = {
            "jobOutputType": "uri_folder",
            "mode": "ReadWriteMount",
            "uri": f"azureml://datastores/workspaceartifactstore/ExperimentRun/dcid.{name}",
        }
        s = self.service.settings
        studio = (
            f"{request.base_url}/studio/runs/{name}?wsid={self.service.workspace_path}"
            f"&tid=00000000-0000-0000-0000-000000000000"
        )
        return {
            "id": self.service.arm_id("jobs", name),
            "name": name,
            "type": f"{PROVIDER}/workspaces/jobs",
            "systemData": system_data(),
            "properties": {
                **properties,
                "displayName": properties.get("displayName") or name,
                "experimentName": properties.get("experimentName") or "Default",
                "outputs": outputs,
                "status": "NotStarted",
                "isArchived": bool(properties.get("isArchived")),
                "tags": properties.get("tags") or {},
                "properties": properties.get("properties") or {},
                "services": {
                    "Studio": {"jobServiceType": "Studio", "endpoint": studio},
                    "Tracking": {
                        "jobServiceType": "Tracking",
                        "endpoint": f"azureml://{s.location}.api.azureml.ms/mlflow/v1.0"
                        f"{self.service.workspace_path}",
                    },
                },
            },
        }

    def _default_output(self, job: str, output: str) -> str:
        return f"azureml://datastores/workspaceblobstore/paths/azureml/{job}/{output}/"

    # --- running -----------------------------------------------------------------------------

    def _set_status(self, run: _Run, status: str) -> None:
        with self.service.lock:
            run.resource["properties"]["status"] = status
        with self._changed:
            self._changed.notify_all()

    def _finish(self, run: _Run, status: str, error: dict[str, Any] | None = None) -> None:
        if run.resource["properties"]["status"] in TERMINAL:
            return
        run.error = error
        run.ended = now_iso()
        self._set_status(run, status)

    def _step(self, run: _Run, status: str, generation: int) -> bool:
        """Move to ``status`` after the configured pause; False when canceled or reset."""
        if not self.service.sleep(self.service.settings.job_step_seconds, generation):
            return False
        if run.cancel.is_set():
            return False
        self._set_status(run, status)
        return True

    def _execute(self, run: _Run, generation: int) -> None:
        try:
            self._execute_steps(run, generation)
        except ApiError as exc:
            self._finish(run, "Failed", {"code": exc.code, "message": exc.message})
        except Exception as exc:
            self._finish(
                run, "Failed", {"code": "SystemError", "message": f"{type(exc).__name__}: {exc}"}
            )
        finally:
            if run.cancel.is_set():
                self._finish(run, "Canceled")
            with contextlib.suppress(Exception):
                self._upload_log(run)

    def _execute_steps(self, run: _Run, generation: int) -> None:
        name = run.resource["name"]
        properties = run.resource["properties"]
        if not self._step(run, "Queued", generation):
            return
        if self.service.faults.take("Jobs_Execute") == JOB_FAILED:
            run.started = now_iso()
            self._finish(
                run,
                "Failed",
                {"code": "SystemError", "message": f"Job {name} failed (injected fault)."},
            )
            return
        if not self._step(run, "Preparing", generation):
            return
        run.started = now_iso()
        directory = run.directory
        code_dir = directory / "code"
        code_dir.mkdir(parents=True, exist_ok=True)
        log_dir = directory / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        code = properties.get("codeId")
        if code:
            reference = asset_reference(str(code))
            assert reference is not None
            version = self._asset("codes", reference[1], reference[2], "properties.codeId")
            where = locate(self.service, str(version["properties"]["codeUri"]), field="codeId")
            self.service.azurite.download_prefix(where.container, where.prefix, code_dir)
        values, env = self._materialise(run, directory)
        command = _resolve_command(str(properties["command"]), values)
        if not self._step(run, "Running", generation):
            return
        env.update(
            {str(k): str(v) for k, v in (properties.get("environmentVariables") or {}).items()}
        )
        popen, run.record = spawn(
            ["bash", "-c", "exec 2>&1\n" + command],
            name="std_log",
            log_dir=log_dir,
            cwd=code_dir,
            env=env,
            detach=False,
        )
        timeout = parse_duration((properties.get("limits") or {}).get("timeout"), "timeout")
        deadline = time.monotonic() + timeout if timeout else None
        last_upload = 0.0
        timed_out = False
        while popen.poll() is None:
            if run.cancel.is_set() or generation != self.service.generation:
                stop(run.record, grace=2.0)
                break
            if deadline is not None and time.monotonic() > deadline:
                timed_out = True
                stop(run.record, grace=2.0)
                break
            if time.monotonic() - last_upload > _LOG_UPLOAD_SECONDS:
                with contextlib.suppress(Exception):
                    self._upload_log(run)
                last_upload = time.monotonic()
            time.sleep(0.05)
        popen.wait()
        stop(run.record, grace=1.0)
        self._upload_log(run)
        if run.cancel.is_set() or generation != self.service.generation:
            self._finish(run, "Canceled")
            return
        if timed_out:
            self._finish(
                run,
                "Failed",
                {
                    "code": "UserError",
                    "message": f"The job ran longer than its limit of {timeout:g} seconds and "
                    "was stopped.",
                },
            )
            return
        self._set_status(run, "Finalizing")
        self._upload_outputs(run, directory)
        if popen.returncode != 0:
            tail = _tail(directory / "logs" / "std_log.out")
            self._finish(
                run,
                "Failed",
                {
                    "code": "UserError",
                    "message": (
                        f"Execution failed. User process 'bash' exited with status code "
                        f"{popen.returncode}. Please check log file '{_LOG_NAME}' for error "
                        f"details. Error: {tail}"
                    ),
                    "target": name,
                },
            )
            return
        self._finish(run, "Completed")

    def _materialise(self, run: _Run, directory: Path) -> tuple[dict[str, str], dict[str, str]]:
        """Download inputs, create output folders; return the command's values and the env."""
        properties = run.resource["properties"]
        s = self.service.settings
        name = run.resource["name"]
        values: dict[str, str] = {}
        env = {
            "AZUREML_RUN_ID": name,
            "AZUREML_ARM_SUBSCRIPTION": s.subscription_id,
            "AZUREML_ARM_RESOURCEGROUP": s.resource_group,
            "AZUREML_ARM_WORKSPACE_NAME": s.workspace_name,
            "AZUREML_ARM_PROJECT_NAME": str(properties.get("experimentName")),
            "AZUREML_EXPERIMENT_NAME": str(properties.get("experimentName")),
            "AZUREML_CR_EXECUTION_WORKING_DIR_PATH": str(directory / "code"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
        }
        for key, spec in (properties.get("inputs") or {}).items():
            if spec["jobInputType"] == "literal":
                values[f"inputs.{key}"] = str(spec["value"])
                env[f"AZURE_ML_INPUT_{key}"] = str(spec["value"])
                continue
            target = directory / "inputs" / key
            where = locate(
                self.service,
                str(spec["uri"]),
                field=f"inputs.{key}",
                kind_hint="models" if "model" in spec["jobInputType"] else "data",
            )
            count = self.service.azurite.download_prefix(where.container, where.prefix, target)
            if count == 0:
                raise ApiError(
                    400,
                    "UserError",
                    f"Input {key}: nothing is stored at {spec['uri']}.",
                    target=f"inputs.{key}",
                )
            local = target
            if spec["jobInputType"] == "uri_file":
                files = [p for p in target.rglob("*") if p.is_file()]
                local = files[0] if len(files) == 1 else target
            values[f"inputs.{key}"] = str(local)
            env[f"AZURE_ML_INPUT_{key}"] = str(local)
        for key, spec in properties["outputs"].items():
            if key == "default":
                continue
            target = directory / "outputs" / key
            target.mkdir(parents=True, exist_ok=True)
            local = target / "output" if spec["jobOutputType"] == "uri_file" else target
            values[f"outputs.{key}"] = str(local)
            env[f"AZURE_ML_OUTPUT_{key}"] = str(local)
        return values, env

    def _upload_outputs(self, run: _Run, directory: Path) -> None:
        for key, spec in run.resource["properties"]["outputs"].items():
            if key == "default":
                continue
            source = directory / "outputs" / key
            where = locate(self.service, str(spec["uri"]), field=f"outputs.{key}")
            self.service.azurite.upload_dir(where.container, source, where.prefix)
        # The code folder's ./outputs and ./logs become the job's artifacts, as in Azure ML.
        artifacts = self._artifact_location(run)
        for folder in ("outputs", "logs"):
            local = directory / "code" / folder
            if local.is_dir():
                self.service.azurite.upload_dir(
                    artifacts.container, local, f"{artifacts.prefix}/{folder}"
                )

    def _artifact_location(self, run: _Run) -> BlobLocation:
        return BlobLocation(
            self.service.artifact_container, f"ExperimentRun/dcid.{run.resource['name']}"
        )

    def _upload_log(self, run: _Run) -> None:
        log = run.directory / "logs" / "std_log.out"
        if not log.is_file():
            return
        where = self._artifact_location(run)
        self.service.azurite.upload_bytes(
            where.container, f"{where.prefix}/{_LOG_NAME}", log.read_bytes()
        )

    def output_uri(self, name: str, output: str) -> str:
        """Where a job's output is stored.

        Raises:
            ApiError: 404 for a missing job; KeyError for a missing output.
        """
        return str(self._find(name).resource["properties"]["outputs"][output]["uri"])

    def resource(self, name: str) -> dict[str, Any]:
        """A job's resource as ``Jobs_Get`` answers it (for other families).

        Raises:
            ApiError: 404 for a missing job.
        """
        return self._find(name).resource

    def status(self, name: str) -> str:
        """A job's current status (for other families)."""
        return str(self._find(name).resource["properties"]["status"])


def _comparable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items() if v is not None}
    return value


def _resolve_command(command: str, values: dict[str, str]) -> str:
    def optional(found: re.Match[str]) -> str:
        inner = found.group(1)
        refs = _REFERENCE.findall(inner)
        if refs and all(f"{kind}.{ref}" in values for kind, ref in refs):
            return inner
        return "" if refs else found.group(0)

    command = _OPTIONAL.sub(optional, command)
    return _REFERENCE.sub(lambda m: shlex.quote(values[f"{m.group(1)}.{m.group(2)}"]), command)


def _tail(path: Path, lines: int = 10) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])
