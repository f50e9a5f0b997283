"""Monitoring schedules, which moto lacks: their records, states and errors.

Create / Describe / List / Update / Delete / Stop / Start MonitoringSchedule and
ListMonitoringExecutions. No monitoring job runs: a schedule is recorded, moves Pending ->
Scheduled, and lists no executions (a provider computes drift from the captured data itself).
"""

from __future__ import annotations

import copy
import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlport_sagemaker.emulator._aws import AwsError, Call, Response
from mlport_sagemaker.emulator._registry import arn
from mlport_sagemaker.emulator._training import now

if TYPE_CHECKING:
    import datetime as dt

    from mlport_sagemaker.emulator.server import SageMakerEmulator

__all__ = ["MonitoringSchedules"]

_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_CRON = re.compile(r"^cron\((\S+ ){5}\S+\)$")
_TYPES = {"DataQuality", "ModelQuality", "ModelBias", "ModelExplainability"}
_STATUSES = {"Pending", "Failed", "Scheduled", "Stopped"}


@dataclass
class _Schedule:
    name: str
    region: str
    config: dict[str, Any]
    tags: list[dict[str, str]]
    status: str = "Scheduled"
    created: dt.datetime = field(default_factory=now)
    modified: dt.datetime = field(default_factory=now)

    @property
    def arn(self) -> str:
        return arn(self.region, "monitoring-schedule", self.name)


class MonitoringSchedules:
    """The MonitoringSchedule APIs."""

    def __init__(self, emulator: SageMakerEmulator) -> None:
        self._emu = emulator
        self._schedules: dict[tuple[str, str], _Schedule] = {}
        self._lock = threading.Lock()
        emulator.register(
            "sagemaker",
            {
                "CreateMonitoringSchedule": self.create,
                "DescribeMonitoringSchedule": self.describe,
                "ListMonitoringSchedules": self.list,
                "UpdateMonitoringSchedule": self.update,
                "DeleteMonitoringSchedule": self.delete,
                "StopMonitoringSchedule": self.stop,
                "StartMonitoringSchedule": self.start,
                "ListMonitoringExecutions": self.list_executions,
            },
        )

    def shutdown(self) -> None:
        """Nothing runs."""

    def find(self, region: str, kind: str, name: str) -> Any:
        """The schedule named by an ARN's ``kind/name``, or None (for tagging)."""
        if kind != "monitoring-schedule":
            return None
        return self._schedules.get((region, name))

    def clear(self) -> None:
        """Forget every schedule."""
        with self._lock:
            self._schedules.clear()

    # -- helpers -----------------------------------------------------------------------------

    def _get(self, region: str, name: str) -> _Schedule:
        schedule = self._schedules.get((region, name))
        if schedule is None:
            raise AwsError(
                "ResourceNotFound",
                f"Monitoring Schedule {arn(region, 'monitoring-schedule', name)} does not exist.",
            )
        return schedule

    def _validate(self, region: str, config: Any) -> dict[str, Any]:
        if not isinstance(config, dict):
            raise AwsError("ValidationException", "MonitoringScheduleConfig is required.")
        expression = (config.get("ScheduleConfig") or {}).get("ScheduleExpression")
        if expression is not None and expression != "NOW" and not _CRON.match(expression):
            raise AwsError(
                "ValidationException",
                f"Invalid ScheduleExpression {expression!r}: use cron(Minutes Hours Day-of-month "
                "Month Day-of-week Year), e.g. cron(0 * ? * * *), or NOW.",
            )
        kind = config.get("MonitoringType", "DataQuality")
        if kind not in _TYPES:
            raise AwsError(
                "ValidationException",
                f"1 validation error detected: Value '{kind}' at "
                "'monitoringScheduleConfig.monitoringType' failed to satisfy constraint: Member "
                f"must satisfy enum value set: [{', '.join(sorted(_TYPES))}]",
            )
        definition = config.get("MonitoringJobDefinitionName")
        inline = config.get("MonitoringJobDefinition")
        if bool(definition) == bool(inline):
            raise AwsError(
                "ValidationException",
                "Exactly one of MonitoringJobDefinitionName and MonitoringJobDefinition must be "
                "given.",
            )
        if definition and self._definition(region, kind, definition) is None:
            raise AwsError(
                "ResourceNotFound",
                f"Job definition {definition} of type {kind} does not exist.",
            )
        return copy.deepcopy(config)

    def _definition(self, region: str, kind: str, name: str) -> Any:
        backend = self._emu.backend(region)
        tables = {
            "DataQuality": backend.data_quality_job_definitions,
            "ModelQuality": backend.model_quality_job_definitions,
            "ModelBias": backend.model_bias_job_definitions,
            "ModelExplainability": backend.model_explainability_job_definitions,
        }
        return tables[kind].get(name)

    def _endpoint(self, schedule: _Schedule) -> str | None:
        config = schedule.config
        inline = config.get("MonitoringJobDefinition") or {}
        inputs = inline.get("MonitoringInputs") or []
        for item in inputs:
            name = (item.get("EndpointInput") or {}).get("EndpointName")
            if name:
                return str(name)
        definition = config.get("MonitoringJobDefinitionName")
        if definition:
            found = self._definition(
                schedule.region, config.get("MonitoringType", "DataQuality"), definition
            )
            for attribute in (
                "data_quality_job_input",
                "model_quality_job_input",
                "model_bias_job_input",
                "model_explainability_job_input",
            ):
                value = getattr(found, attribute, None) or {}
                name = (value.get("EndpointInput") or {}).get("EndpointName")
                if name:
                    return str(name)
        return None

    def _view(self, schedule: _Schedule) -> dict[str, Any]:
        view: dict[str, Any] = {
            "MonitoringScheduleArn": schedule.arn,
            "MonitoringScheduleName": schedule.name,
            "MonitoringScheduleStatus": schedule.status,
            "MonitoringType": schedule.config.get("MonitoringType", "DataQuality"),
            "CreationTime": schedule.created,
            "LastModifiedTime": schedule.modified,
            "MonitoringScheduleConfig": schedule.config,
        }
        endpoint = self._endpoint(schedule)
        if endpoint:
            view["EndpointName"] = endpoint
        return view

    # -- API ---------------------------------------------------------------------------------

    def create(self, call: Call) -> Response:
        """CreateMonitoringSchedule."""
        params = call.params()
        name = params.get("MonitoringScheduleName", "")
        if not _NAME.match(str(name)):
            raise AwsError(
                "ValidationException",
                f"1 validation error detected: Value '{name}' at 'monitoringScheduleName' failed "
                "to satisfy constraint: Member must satisfy regular expression pattern: "
                "^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}",
            )
        config = self._validate(call.region, params.get("MonitoringScheduleConfig"))
        with self._lock:
            if (call.region, name) in self._schedules:
                raise AwsError(
                    "ResourceInUse",
                    f"Monitoring Schedule {arn(call.region, 'monitoring-schedule', name)} "
                    "already exists.",
                )
            schedule = _Schedule(name, call.region, config, list(params.get("Tags") or []))
            self._schedules[(call.region, name)] = schedule
        return Response.json({"MonitoringScheduleArn": schedule.arn})

    def describe(self, call: Call) -> Response:
        """DescribeMonitoringSchedule."""
        name = call.params().get("MonitoringScheduleName", "")
        with self._lock:
            return Response.json(self._view(self._get(call.region, name)))

    def list(self, call: Call) -> Response:
        """ListMonitoringSchedules, with its filters, sorting and paging."""
        params = call.params()
        with self._lock:
            schedules = [s for (region, _), s in self._schedules.items() if region == call.region]
            views = [self._view(s) for s in schedules]
        endpoint = params.get("EndpointName")
        contains = params.get("NameContains")
        status = params.get("StatusEquals")
        kind = params.get("MonitoringTypeEquals")
        definition = params.get("MonitoringJobDefinitionName")
        views = [
            v
            for v in views
            if (not endpoint or v.get("EndpointName") == endpoint)
            and (not contains or contains in v["MonitoringScheduleName"])
            and (not status or v["MonitoringScheduleStatus"] == status)
            and (not kind or v["MonitoringType"] == kind)
            and (
                not definition
                or v["MonitoringScheduleConfig"].get("MonitoringJobDefinitionName") == definition
            )
        ]
        key = {"Name": "MonitoringScheduleName", "Status": "MonitoringScheduleStatus"}.get(
            params.get("SortBy", "CreationTime"), "CreationTime"
        )
        views.sort(
            key=lambda v: v[key], reverse=params.get("SortOrder", "Descending") == "Descending"
        )
        start = int(params.get("NextToken") or 0)
        size = int(params.get("MaxResults") or 10)
        page = views[start : start + size]
        summaries = [
            {
                k: v[k]
                for k in (
                    "MonitoringScheduleName",
                    "MonitoringScheduleArn",
                    "CreationTime",
                    "LastModifiedTime",
                    "MonitoringScheduleStatus",
                    "EndpointName",
                    "MonitoringType",
                )
                if k in v
            }
            | {
                "MonitoringJobDefinitionName": v["MonitoringScheduleConfig"].get(
                    "MonitoringJobDefinitionName"
                )
            }
            for v in page
        ]
        answer: dict[str, Any] = {
            "MonitoringScheduleSummaries": [
                {k: v for k, v in s.items() if v is not None} for s in summaries
            ]
        }
        if start + size < len(views):
            answer["NextToken"] = str(start + size)
        return Response.json(answer)

    def update(self, call: Call) -> Response:
        """UpdateMonitoringSchedule."""
        params = call.params()
        name = params.get("MonitoringScheduleName", "")
        config = self._validate(call.region, params.get("MonitoringScheduleConfig"))
        with self._lock:
            schedule = self._get(call.region, name)
            schedule.config = config
            schedule.modified = now()
        return Response.json({"MonitoringScheduleArn": schedule.arn})

    def delete(self, call: Call) -> Response:
        """DeleteMonitoringSchedule."""
        name = call.params().get("MonitoringScheduleName", "")
        with self._lock:
            self._get(call.region, name)
            del self._schedules[(call.region, name)]
        return Response.json({})

    def stop(self, call: Call) -> Response:
        """StopMonitoringSchedule: Stopped."""
        return self._set_status(call, "Stopped")

    def start(self, call: Call) -> Response:
        """StartMonitoringSchedule: Scheduled again."""
        return self._set_status(call, "Scheduled")

    def _set_status(self, call: Call, status: str) -> Response:
        name = call.params().get("MonitoringScheduleName", "")
        with self._lock:
            schedule = self._get(call.region, name)
            schedule.status = status
            schedule.modified = now()
        return Response.json({})

    def list_executions(self, call: Call) -> Response:
        """ListMonitoringExecutions: the emulator runs no monitoring job, so none."""
        params = call.params()
        name = params.get("MonitoringScheduleName")
        if name:
            with self._lock:
                self._get(call.region, name)
        status = params.get("StatusEquals")
        if status is not None and status not in {
            "Pending",
            "Completed",
            "CompletedWithViolations",
            "InProgress",
            "Failed",
            "Stopping",
            "Stopped",
        }:
            raise AwsError("ValidationException", f"Invalid StatusEquals {status!r}.")
        return Response.json({"MonitoringExecutionSummaries": []})
