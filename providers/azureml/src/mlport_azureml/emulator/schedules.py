"""Schedules: job schedules and model-monitoring schedules, as stored records that fire on demand.

A schedule is kept with its ARM id, ``systemData``, ``provisioningState`` and ``isEnabled``, and
validated as the REST reference describes it (name, trigger, action, a monitor's compute and
signals). Nothing fires on a clock: ``Schedules_Trigger`` (``MLClient.schedules.trigger``) runs a
job schedule's job once, as the service does when the trigger's time comes. Monitoring schedules
are stored and validated; triggering one is refused, because the emulator does not run Azure ML's
monitoring (Spark) jobs.
"""

from __future__ import annotations

import copy
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from mlport_azureml.emulator._arm import PROVIDER, check_name, page, system_data
from mlport_azureml.emulator._http import (
    ApiError,
    Request,
    Response,
    bad_request,
    not_found,
)
from mlport_azureml.emulator._service import Service
from mlport_azureml.emulator.storage import locate

__all__ = ["Schedules"]

_TYPE = f"{PROVIDER}/workspaces/schedules"
_VIEWS = ("EnabledOnly", "DisabledOnly", "All")
_FREQUENCIES = ("Minute", "Hour", "Day", "Week", "Month")
_WEEK_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_ACTIONS = ("CreateJob", "CreateMonitor", "InvokeBatchEndpoint")
_SIGNALS = (
    "DataDrift",
    "PredictionDrift",
    "DataQuality",
    "FeatureAttributionDrift",
    "Custom",
    "GenerationSafetyQuality",
    "GenerationTokenStatistics",
    "ModelPerformance",
)
_DRIFT_METRICS = {
    "Numerical": (
        "JensenShannonDistance",
        "PopulationStabilityIndex",
        "NormalizedWassersteinDistance",
        "TwoSampleKolmogorovSmirnovTest",
    ),
    "Categorical": ("JensenShannonDistance", "PopulationStabilityIndex", "PearsonsChiSquaredTest"),
}
# MonitoringInputDataType: Static, Rolling, Fixed (2025-12-01); azure-ai-ml 1.35 still sends the
# 2023-06-01-preview name Trailing for a rolling window.
_INPUT_DATA_TYPES = ("Static", "Rolling", "Trailing", "Fixed")
_MONITOR_INPUT_TYPES = ("uri_file", "uri_folder", "mltable")
_FEATURE_FILTERS = ("AllFeatures", "FeatureSubset", "TopNByAttribution")
# Serverless Spark instance types and runtime versions Azure ML offers for monitoring jobs.
_SPARK_SIZES = (
    "standard_e4s_v3",
    "standard_e8s_v3",
    "standard_e16s_v3",
    "standard_e32s_v3",
    "standard_e64s_v3",
)
_SPARK_RUNTIME = re.compile(r"^\d+\.\d+$")
_IDENTITIES = ("AmlToken", "ManagedIdentity")
_DEPLOYMENT_ID = re.compile(
    r"/onlineEndpoints/(?P<endpoint>[^/]+)/deployments/(?P<deployment>[^/]+)/?$", re.IGNORECASE
)
_JOB_ID = re.compile(r"/jobs/(?P<job>[^/]+)/?$", re.IGNORECASE)
# Cron fields (MINUTES HOURS DAYS MONTHS DAYS-OF-WEEK) with their ranges; Azure ML ignores DAYS
# and MONTHS (always ``*``), so only their syntax is checked.
_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("MINUTES", 0, 59, ()),
    ("HOURS", 0, 23, ()),
    ("DAYS", -1, -1, ()),
    ("MONTHS", -1, -1, ()),
    ("DAYS-OF-WEEK", 0, 6, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
)
_CRON_PART = re.compile(r"^(?P<range>\*|[A-Za-z0-9]+(?:-[A-Za-z0-9]+)?)(?:/(?P<step>\d+))?$")


def _canonical(value: Any, allowed: tuple[str, ...]) -> str | None:
    """The allowed spelling of ``value``, compared case-insensitively (None if not allowed)."""
    if not isinstance(value, str):
        return None
    for option in allowed:
        if option.lower() == value.lower():
            return option
    return None


class Schedules:
    """Schedules: create, get, list, enable/disable (by update), delete and trigger."""

    def __init__(self, service: Service) -> None:
        self.service = service
        s = "{ws}/schedules/{name}"
        service.route("GET", "{ws}/schedules", "Schedules_List", self.list)
        service.route("GET", s, "Schedules_Get", self.get)
        service.route("PUT", s, "Schedules_CreateOrUpdate", self.put)
        service.route("DELETE", s, "Schedules_Delete", self.delete)
        service.route("POST", s + "/trigger", "Schedules_Trigger", self.trigger)
        service.add_family(self, "schedules")

    def reset(self) -> None:
        """Nothing runs here (triggered jobs belong to the jobs family)."""

    def close(self) -> None:
        """Nothing runs here."""

    def _table(self) -> dict[str, dict[str, Any]]:
        return self.service.table("schedules")

    def _find(self, name: str) -> dict[str, Any]:
        with self.service.lock:
            for key, resource in self._table().items():
                if key.lower() == name.lower():
                    return resource
        raise not_found(_TYPE, name)

    # --- REST --------------------------------------------------------------------------------

    def list(self, request: Request) -> Response:
        """Schedules_List (``listViewType``: EnabledOnly by default, DisabledOnly, All)."""
        view = _canonical(request.query.get("listViewType") or "EnabledOnly", _VIEWS)
        if view is None:
            raise bad_request(f"listViewType must be one of {', '.join(_VIEWS)}.", "listViewType")
        with self.service.lock:
            items = list(self._table().values())
        if view != "All":
            enabled = view == "EnabledOnly"
            items = [i for i in items if bool(i["properties"]["isEnabled"]) == enabled]
        return page(request, sorted(items, key=lambda i: i["name"]))

    def get(self, request: Request) -> Response:
        """Schedules_Get."""
        return Response(200, self._find(request.params["name"]))

    def put(self, request: Request) -> Response:
        """Schedules_CreateOrUpdate: a long-running operation (enable/disable is an update)."""
        name = request.params["name"]
        check_name("schedule", name)
        body = request.json_object()
        properties = body.get("properties")
        if not isinstance(properties, dict):
            raise bad_request("The field properties is required.", "properties")
        properties = copy.deepcopy(properties)
        enabled = properties.get("isEnabled", True)
        if enabled is None:
            enabled = True
        if not isinstance(enabled, bool):
            raise bad_request("isEnabled must be true or false.", "properties.isEnabled")
        properties["trigger"] = self._check_trigger(properties.get("trigger"))
        properties["action"] = self._check_action(properties.get("action"))
        with self.service.lock:
            existing = next(
                (r for key, r in self._table().items() if key.lower() == name.lower()), None
            )
        if existing is not None:
            name = existing["name"]
        resource: dict[str, Any] = {
            "id": self.service.arm_id("schedules", name),
            "name": name,
            "type": _TYPE,
            "systemData": system_data(existing["systemData"] if existing else None),
            "properties": {
                **properties,
                "description": properties.get("description"),
                "displayName": properties.get("displayName") or name,
                "tags": properties.get("tags") or {},
                "properties": properties.get("properties") or {},
                "isEnabled": enabled,
                "provisioningState": "Creating" if existing is None else "Updating",
            },
        }
        with self.service.lock:
            self._table()[name] = resource

        def work() -> None:
            with self.service.lock:
                resource["properties"]["provisioningState"] = "Succeeded"

        operation = self.service.start_operation(work, name=f"schedule-{name}")
        return Response(
            201 if existing is None else 200, resource, self.service.lro_headers(request, operation)
        )

    def delete(self, request: Request) -> Response:
        """Schedules_Delete: the schedule goes; jobs it already started stay."""
        try:
            resource = self._find(request.params["name"])
        except ApiError:
            return Response(204)
        with self.service.lock:
            resource["properties"]["provisioningState"] = "Deleting"

        def work() -> None:
            with self.service.lock:
                self._table().pop(resource["name"], None)

        operation = self.service.start_operation(work, name="schedule-delete")
        return Response(202, None, self.service.lro_headers(request, operation))

    def trigger(self, request: Request) -> Response:
        """Schedules_Trigger: start the schedule's job once, now.

        Answers ``{"submissionId": <job name>, "scheduleActionType": "CreateJob"}``.
        """
        resource = self._find(request.params["name"])
        body = request.json_object()
        stamp = _parse_time(body.get("scheduleTime"), "scheduleTime") or datetime.now(UTC)
        properties = resource["properties"]
        if properties.get("provisioningState") != "Succeeded":
            raise bad_request(
                f"The schedule {resource['name']} is {properties.get('provisioningState')}; "
                "it can be triggered once it has Succeeded.",
                "name",
            )
        if not properties["isEnabled"]:
            raise bad_request(
                f"The schedule {resource['name']} is disabled; enable it before triggering it.",
                "name",
            )
        action = properties["action"]
        kind = action["actionType"]
        if kind != "CreateJob":
            raise bad_request(
                f"Triggering a {kind} schedule is not supported by the emulator: it stores and "
                "validates monitoring and batch-invocation schedules but does not run their jobs.",
                "properties.action.actionType",
            )
        job = self._job_properties(resource["name"], action["jobDefinition"], stamp)
        from mlport_azureml.emulator.jobs import Jobs

        jobs: Jobs = self.service.families["jobs"]  # type: ignore[assignment]
        jobs.validate(job)
        job_name = f"{resource['name'][:200]}-{stamp:%Y%m%d%H%M%S}-{uuid.uuid4().hex[:6]}"
        jobs.submit(job_name, job, request)
        return Response(200, {"submissionId": job_name, "scheduleActionType": kind})

    # --- validation --------------------------------------------------------------------------

    def _check_trigger(self, trigger: Any) -> dict[str, Any]:
        target = "properties.trigger"
        if not isinstance(trigger, dict):
            raise bad_request("The field trigger is required.", target)
        kind = _canonical(trigger.get("triggerType"), ("Cron", "Recurrence"))
        if kind is None:
            raise bad_request(
                f"triggerType must be Cron or Recurrence, got {trigger.get('triggerType')!r}.",
                f"{target}.triggerType",
            )
        checked: dict[str, Any] = {**trigger, "triggerType": kind}
        trigger = checked
        start = _parse_time(trigger.get("startTime"), f"{target}.startTime")
        end = _parse_time(trigger.get("endTime"), f"{target}.endTime")
        if start and end and _naive(end) <= _naive(start):
            raise bad_request("endTime must be later than startTime.", f"{target}.endTime")
        zone = trigger.get("timeZone")
        if zone is not None and (not isinstance(zone, str) or not zone.strip()):
            raise bad_request("timeZone must be a time zone name.", f"{target}.timeZone")
        trigger.setdefault("timeZone", "UTC")
        if kind == "Cron":
            _check_cron(trigger.get("expression"), f"{target}.expression")
            return checked
        frequency = _canonical(trigger.get("frequency"), _FREQUENCIES)
        if frequency is None:
            raise bad_request(
                f"frequency must be one of {', '.join(_FREQUENCIES)}, got "
                f"{trigger.get('frequency')!r}.",
                f"{target}.frequency",
            )
        interval = trigger.get("interval")
        if not isinstance(interval, int) or isinstance(interval, bool) or interval < 1:
            raise bad_request(
                "interval must be a whole number of at least 1.", f"{target}.interval"
            )
        pattern = trigger.get("schedule")
        if pattern is not None:
            _check_recurrence_schedule(pattern, f"{target}.schedule")
        return checked

    def _check_action(self, action: Any) -> dict[str, Any]:
        target = "properties.action"
        if not isinstance(action, dict):
            raise bad_request("The field action is required.", target)
        kind = _canonical(action.get("actionType"), _ACTIONS)
        if kind is None:
            raise bad_request(
                f"actionType must be one of {', '.join(_ACTIONS)}, got {action.get('actionType')!r}.",
                f"{target}.actionType",
            )
        result: dict[str, Any] = {**action, "actionType": kind}
        action = result
        if kind == "CreateJob":
            self._check_job_definition(action.get("jobDefinition"), f"{target}.jobDefinition")
        elif kind == "CreateMonitor":
            self._check_monitor(action.get("monitorDefinition"), f"{target}.monitorDefinition")
        elif not isinstance(action.get("endpointInvocationDefinition"), dict):
            raise bad_request(
                "The field endpointInvocationDefinition is required.",
                f"{target}.endpointInvocationDefinition",
            )
        return result

    def _check_job_definition(self, definition: Any, target: str) -> None:
        if not isinstance(definition, dict):
            raise bad_request("The field jobDefinition is required.", target)
        kind = str(definition.get("jobType") or "")
        if kind.lower() == "command":
            from mlport_azureml.emulator.jobs import Jobs

            jobs: Jobs = self.service.families["jobs"]  # type: ignore[assignment]
            jobs.validate(definition, prefix=target)
            return
        if kind.lower() == "pipeline" and definition.get("sourceJobId"):
            self._source_job(str(definition["sourceJobId"]), f"{target}.sourceJobId")
            return
        raise bad_request(
            f"jobType {kind!r} is not supported by the emulator in a schedule: it runs command "
            "jobs, given inline or as the sourceJobId of an existing job.",
            f"{target}.jobType",
        )

    def _source_job(self, job_id: str, target: str) -> dict[str, Any]:
        found = _JOB_ID.search(job_id)
        name = found["job"] if found else job_id.removeprefix("azureml:")
        try:
            resource: dict[str, Any] = self.service.families["jobs"].resource(name)  # type: ignore[attr-defined]
        except ApiError:
            raise bad_request(f"The source job {job_id} does not exist.", target) from None
        return resource

    def _check_monitor(self, monitor: Any, target: str) -> None:
        if not isinstance(monitor, dict):
            raise bad_request("The field monitorDefinition is required.", target)
        self._check_monitor_compute(
            monitor.get("computeConfiguration"), f"{target}.computeConfiguration"
        )
        monitored = monitor.get("monitoringTarget")
        if monitored is not None:
            self._check_monitoring_target(monitored, f"{target}.monitoringTarget")
        signals = monitor.get("signals")
        if not isinstance(signals, dict) or not signals:
            raise bad_request(
                "The field signals is required (at least one signal).", f"{target}.signals"
            )
        for name, signal in signals.items():
            self._check_signal(signal, f"{target}.signals.{name}")

    def _check_monitor_compute(self, compute: Any, target: str) -> None:
        if not isinstance(compute, dict):
            raise bad_request(
                "The field computeConfiguration is required: monitoring jobs run on serverless "
                "Spark compute.",
                target,
            )
        if _canonical(compute.get("computeType"), ("ServerlessSpark",)) is None:
            raise bad_request(
                f"computeType must be ServerlessSpark, got {compute.get('computeType')!r}.",
                f"{target}.computeType",
            )
        size = compute.get("instanceType")
        if not isinstance(size, str) or size.lower() not in _SPARK_SIZES:
            raise bad_request(
                f"instanceType must be one of {', '.join(_SPARK_SIZES)}, got {size!r}.",
                f"{target}.instanceType",
            )
        runtime = compute.get("runtimeVersion")
        if not isinstance(runtime, str) or not _SPARK_RUNTIME.match(runtime):
            raise bad_request(
                f"runtimeVersion must be a Spark runtime version such as 3.4, got {runtime!r}.",
                f"{target}.runtimeVersion",
            )
        identity = compute.get("computeIdentity")
        if not isinstance(identity, dict) or (
            _canonical(identity.get("computeIdentityType"), _IDENTITIES) is None
        ):
            raise bad_request(
                f"computeIdentity needs a computeIdentityType among {', '.join(_IDENTITIES)}.",
                f"{target}.computeIdentity",
            )

    def _check_monitoring_target(self, monitored: Any, target: str) -> None:
        if not isinstance(monitored, dict):
            raise bad_request("monitoringTarget must be an object.", target)
        if not monitored.get("taskType"):
            raise bad_request("The field taskType is required.", f"{target}.taskType")
        deployment = monitored.get("deploymentId")
        if deployment:
            found = _DEPLOYMENT_ID.search(str(deployment))
            online = self.service.families.get("online")
            if found is None or (
                online is not None
                and not online.has_deployment(found["endpoint"], found["deployment"])  # type: ignore[attr-defined]
            ):
                raise bad_request(
                    f"The online deployment {deployment} does not exist in this workspace.",
                    f"{target}.deploymentId",
                )
        model = monitored.get("modelId")
        if model:
            locate(self.service, str(model), field=f"{target}.modelId", kind_hint="models")

    def _check_signal(self, signal: Any, target: str) -> None:
        if not isinstance(signal, dict):
            raise bad_request("A signal must be an object.", target)
        kind = _canonical(signal.get("signalType"), _SIGNALS)
        if kind is None:
            raise bad_request(
                f"signalType must be one of {', '.join(_SIGNALS)}, got {signal.get('signalType')!r}.",
                f"{target}.signalType",
            )
        signal["signalType"] = kind
        if kind != "DataDrift":
            return
        for key in ("productionData", "referenceData"):
            self._check_monitor_input(signal.get(key), f"{target}.{key}")
        thresholds = signal.get("metricThresholds")
        if not isinstance(thresholds, list) or not thresholds:
            raise bad_request(
                "The field metricThresholds is required (at least one metric).",
                f"{target}.metricThresholds",
            )
        for index, threshold in enumerate(thresholds):
            _check_drift_threshold(threshold, f"{target}.metricThresholds[{index}]")
        features = signal.get("features")
        if features is not None:
            _check_feature_filter(features, f"{target}.features")

    def _check_monitor_input(self, data: Any, target: str) -> None:
        if not isinstance(data, dict):
            raise bad_request("The field is required.", target)
        if _canonical(data.get("inputDataType"), _INPUT_DATA_TYPES) is None:
            raise bad_request(
                f"inputDataType must be one of Static, Rolling, Fixed, got "
                f"{data.get('inputDataType')!r}.",
                f"{target}.inputDataType",
            )
        if data.get("jobInputType") not in _MONITOR_INPUT_TYPES:
            raise bad_request(
                f"jobInputType must be one of {', '.join(_MONITOR_INPUT_TYPES)}, got "
                f"{data.get('jobInputType')!r}.",
                f"{target}.jobInputType",
            )
        uri = data.get("uri")
        if not isinstance(uri, str) or not uri:
            raise bad_request("The field uri is required.", f"{target}.uri")
        locate(self.service, uri, field=f"{target}.uri")

    # --- triggering --------------------------------------------------------------------------

    def _job_properties(
        self, schedule: str, definition: dict[str, Any], stamp: datetime
    ) -> dict[str, Any]:
        if str(definition.get("jobType", "")).lower() == "pipeline":
            source = self._source_job(
                str(definition["sourceJobId"]), "properties.action.jobDefinition.sourceJobId"
            )
            job: dict[str, Any] = copy.deepcopy(source["properties"])
            old = source["name"]
            for key in ("status", "services", "isArchived"):
                job.pop(key, None)
            outputs = {}
            for key, spec in (job.get("outputs") or {}).items():
                if key == "default":
                    continue
                uri = str(spec.get("uri") or "")
                own = f"/paths/azureml/{old}/" in uri
                outputs[key] = {k: v for k, v in spec.items() if not (own and k == "uri")}
            job["outputs"] = outputs
        else:
            job = copy.deepcopy(definition)
        job["jobType"] = "Command"
        job["displayName"] = job.get("displayName") or schedule
        job["properties"] = {
            **(job.get("properties") or {}),
            "mlport.scheduleName": schedule,
            "mlport.scheduleTime": stamp.isoformat(),
        }
        return job


def _naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None)


def _parse_time(value: Any, target: str) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise bad_request("A time must be an ISO 8601 string.", target)
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"{value!r} is not an ISO 8601 time.", target) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _check_cron(expression: Any, target: str) -> None:
    if not isinstance(expression, str) or not expression.strip():
        raise bad_request("The field expression is required for a Cron trigger.", target)
    fields = expression.split()
    if len(fields) != len(_CRON_FIELDS):
        raise bad_request(
            f"The cron expression {expression!r} must have 5 fields: MINUTES HOURS DAYS MONTHS "
            "DAYS-OF-WEEK.",
            target,
        )
    for text, (label, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for part in text.split(","):
            found = _CRON_PART.match(part)
            if found is None:
                raise bad_request(f"The cron field {label} {text!r} is not valid.", target)
            if found["step"] is not None and int(found["step"]) < 1:
                raise bad_request(f"The cron field {label} has a step of 0.", target)
            if found["range"] == "*" or low < 0:
                continue
            for bound in found["range"].split("-"):
                value = _cron_value(bound, names)
                if value is None or not low <= value <= high:
                    raise bad_request(
                        f"The cron field {label} {text!r} is outside {low}-{high}.", target
                    )


def _cron_value(text: str, names: tuple[str, ...]) -> int | None:
    if text.isdigit():
        return int(text)
    if text.upper() in names:
        return names.index(text.upper())
    return None


def _check_recurrence_schedule(pattern: Any, target: str) -> None:
    if not isinstance(pattern, dict):
        raise bad_request("schedule must be an object.", target)
    for key, low, high in (("hours", 0, 23), ("minutes", 0, 59), ("monthDays", 1, 31)):
        values = pattern.get(key)
        if values is None:
            continue
        if not isinstance(values, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and low <= v <= high for v in values
        ):
            raise bad_request(
                f"{key} must be a list of numbers from {low} to {high}.", f"{target}.{key}"
            )
    days = pattern.get("weekDays")
    if days is not None and (
        not isinstance(days, list) or any(_canonical(d, _WEEK_DAYS) is None for d in days)
    ):
        raise bad_request(
            f"weekDays must be a list of {', '.join(_WEEK_DAYS)}.", f"{target}.weekDays"
        )


def _check_drift_threshold(threshold: Any, target: str) -> None:
    if not isinstance(threshold, dict):
        raise bad_request("A metric threshold must be an object.", target)
    data_type = _canonical(threshold.get("dataType"), tuple(_DRIFT_METRICS))
    if data_type is None:
        raise bad_request(
            f"dataType must be Numerical or Categorical, got {threshold.get('dataType')!r}.",
            f"{target}.dataType",
        )
    allowed = _DRIFT_METRICS[data_type]
    if _canonical(threshold.get("metric"), allowed) is None:
        raise bad_request(
            f"{threshold.get('metric')!r} is not a {data_type.lower()} data drift metric; use "
            f"one of {', '.join(allowed)}.",
            f"{target}.metric",
        )
    value = (threshold.get("threshold") or {}).get("value")
    if value is not None and (
        not isinstance(value, int | float) or isinstance(value, bool) or value < 0
    ):
        raise bad_request(
            "A threshold value must be a number of at least 0.", f"{target}.threshold"
        )


def _check_feature_filter(features: Any, target: str) -> None:
    if not isinstance(features, dict):
        raise bad_request("features must be an object.", target)
    kind = _canonical(features.get("filterType"), _FEATURE_FILTERS)
    if kind is None:
        raise bad_request(
            f"filterType must be one of {', '.join(_FEATURE_FILTERS)}.", f"{target}.filterType"
        )
    if kind == "FeatureSubset":
        names = features.get("features")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise bad_request(
                "A FeatureSubset filter needs a list of feature names.", f"{target}.features"
            )
    if kind == "TopNByAttribution":
        top = features.get("top", 10)
        if not isinstance(top, int) or isinstance(top, bool) or top < 1:
            raise bad_request("top must be a whole number of at least 1.", f"{target}.top")
