"""Drift monitors on SageMaker: SageMaker's own data-quality schedule, plus mlport's drift engine.

``enable`` checks that the endpoint captures its traffic, profiles the baseline (the training
data, or the profile registered with the served version) and stores it with the monitor's settings
under ``s3://<bucket>/<prefix>/monitors/<endpoint>/``. With a schedule it also creates a
DataQualityJobDefinition (SageMaker's model-monitor analyzer, with constraints made from the
baseline) and a MonitoringSchedule, so SageMaker checks the captured data on its own too.

``run`` reads the data capture files of the window since the last run from S3 (SageMaker's
capture format: ``captureData.endpointInput``), computes drift with :mod:`mlport.monitoring` —
the same numbers as on every other provider — and stores the report (JSON and an HTML page) in
S3; ``reports`` lists them, newest first.
"""

from __future__ import annotations

import base64
import contextlib
import json
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlport.errors import InvalidSpecError, NotFoundError
from mlport.handles import DriftReport, Monitor
from mlport.services import MonitoringService, Page
from mlport.specs import MonitorOptions
from mlport_sagemaker._images import image_uris

if TYPE_CHECKING:
    from mlport_sagemaker.provider import SageMakerProvider

__all__ = ["SageMakerMonitoring", "capture_records"]

_PAGE = 20
_HOUR = 3600


def _now() -> datetime:
    return datetime.now(UTC)


def _cron(seconds: int) -> str:
    """SageMaker's schedule expression for every ``seconds``: hourly, every N hours, daily."""
    hours, rest = divmod(seconds, _HOUR)
    if rest or hours not in (1, 2, 3, 4, 6, 8, 12, 24):
        raise InvalidSpecError(
            f"schedule {seconds}s: SageMaker monitoring schedules run hourly, every 2, 3, 4, 6, "
            "8 or 12 hours, or daily; use one of '1h', '2h', ..., '24h'"
        )
    if hours == 24:
        return "cron(0 0 ? * * *)"
    return "cron(0 * ? * * *)" if hours == 1 else f"cron(0 */{hours} ? * * *)"


def capture_records(lines: Iterator[str]) -> Iterator[tuple[datetime, list[Any]]]:
    """The (inference time, input rows) of SageMaker data capture JSON Lines.

    A record whose input is not a body of rows mlport reads (JSON or CSV) is skipped.
    """
    from mlport.serving import formats

    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            part = record["captureData"]["endpointInput"]
            moment = datetime.fromisoformat(
                record["eventMetadata"]["inferenceTime"].replace("Z", "+00:00")
            )
        except (ValueError, KeyError, TypeError):
            continue
        data = part.get("data", "")
        body = base64.b64decode(data) if part.get("encoding") == "BASE64" else data.encode()
        try:
            if "csv" in str(part.get("observedContentType", "")):
                rows = formats.csv_rows(body, None)
            else:
                rows = formats.json_rows(json.loads(body))
        except (ValueError, formats.FormatError):
            continue
        if all(isinstance(row, list) for row in rows):
            yield moment, rows


class SageMakerMonitoring(MonitoringService):
    """Monitors of SageMaker endpoints."""

    provider: SageMakerProvider

    @property
    def _sm(self) -> Any:
        return self.provider.sagemaker

    def _folder(self, endpoint: str) -> str:
        return self.provider.s3_uri("monitors", endpoint)

    def _doc(self, endpoint: str) -> dict[str, Any]:
        try:
            doc: dict[str, Any] = json.loads(
                self.provider.storage.get_text(f"{self._folder(endpoint)}/monitor.json")
            )
        except NotFoundError:
            raise NotFoundError(
                f"endpoint {endpoint!r} has no monitor", provider="sagemaker", resource=endpoint
            ) from None
        return doc

    def _save(self, endpoint: str, doc: dict[str, Any]) -> None:
        self.provider.storage.put_text(json.dumps(doc), f"{self._folder(endpoint)}/monitor.json")

    # --- enable ----------------------------------------------------------------------------------

    def _enable(self, endpoint: str, options: MonitorOptions) -> Monitor:
        from mlport.monitoring.monitor import baseline_profile, check_thresholds

        endpoints: Any = self.provider.service("endpoints")
        served = endpoints.get(endpoint)
        if not served.capture_percent:
            raise InvalidSpecError(
                f"endpoint {endpoint!r} does not capture its requests, and monitors read "
                "captured requests: deploy it again with capture_percent, e.g. "
                f"ml.endpoints.deploy({endpoint!r}, version, capture_percent=20)",
                provider="sagemaker",
                resource=endpoint,
            )
        names, count = self._model_inputs(served)
        with tempfile.TemporaryDirectory(prefix="mlport-baseline-") as scratch:
            path = self._baseline_file(endpoint, served, options, Path(scratch))
            profile, row_names, dropped = baseline_profile(
                path,
                endpoint,
                model_names=names,
                model_count=count,
                features=options.features,
                provider="sagemaker",
            )
        thresholds = check_thresholds(options.thresholds, profile, endpoint, "sagemaker")
        folder = self._folder(endpoint)
        self.provider.storage.put_text(profile.to_json(), f"{folder}/baseline.json")
        with contextlib.suppress(NotFoundError):
            self._delete_schedule(endpoint)
        schedule_name = None
        if options.schedule is not None:
            schedule_name = self._create_schedule(endpoint, options.schedule, profile)
        now = _now().isoformat()
        doc = {
            "endpoint": endpoint,
            "enabled_at": now,
            "window_end": now,
            "baseline": options.baseline or "",
            "schedule": options.schedule,
            "schedule_name": schedule_name,
            "thresholds": thresholds,
            "alert": options.alert,
            "features": profile.feature_names,
            "row_features": row_names,
            "dropped": dropped,
        }
        self._save(endpoint, doc)
        return self._view(doc)

    def _model_inputs(self, served: Any) -> tuple[list[str] | None, int | None]:
        """The served model's feature names and count, from its package's manifest."""
        if not served.variants or not served.model:
            return None, None
        version = max(served.variants, key=lambda v: served.variants[v])
        registry: Any = self.provider.service("registry")
        from mlport.package import MANIFEST_NAME, Manifest

        with tempfile.TemporaryDirectory(prefix="mlport-model-") as scratch:
            found = registry.get(served.model, version)
            self.provider.storage.get_tarball(found.uri, Path(scratch))
            manifest = Manifest.model_validate_json((Path(scratch) / MANIFEST_NAME).read_bytes())
        if manifest.signature is None or not manifest.signature.inputs:
            return None, None
        inputs = manifest.signature.inputs
        names = [f.name for f in inputs if f.name]
        return (names if len(names) == len(inputs) else None), len(inputs)

    def _baseline_file(
        self, endpoint: str, served: Any, options: MonitorOptions, scratch: Path
    ) -> Path:
        baseline = options.baseline
        if baseline is None:
            if not served.model or not served.variants:
                raise InvalidSpecError(f"endpoint {endpoint!r} serves no model; give baseline=")
            version = max(served.variants, key=lambda v: served.variants[v])
            found: Any = self.provider.service("registry").get(served.model, version)  # type: ignore[attr-defined]
            if not found.baseline_uri:
                raise InvalidSpecError(
                    f"version {served.model}:{version} served by endpoint {endpoint!r} was "
                    "registered without a baseline: give baseline='data/train.csv', or register "
                    "the version with registry.register(..., baseline='data/train.csv')",
                    provider="sagemaker",
                    resource=endpoint,
                )
            baseline = str(found.baseline_uri)
        if baseline.startswith("s3://"):
            target = scratch / Path(baseline).name
            self.provider.storage.download(baseline, target)
            return target
        path = Path(baseline.removeprefix("file://")).expanduser()
        if not path.is_file():
            raise InvalidSpecError(
                f"baseline {baseline!r} is not a file; give the training data (CSV with a header, "
                "JSON Lines or Parquet), a saved profile, or an s3:// URI of one",
                provider="sagemaker",
                resource=endpoint,
            )
        return path

    def _create_schedule(self, endpoint: str, seconds: int, profile: Any) -> str:
        folder = self._folder(endpoint)
        constraints = {
            "version": 0.0,
            "features": [
                {
                    "name": name,
                    "inferred_type": "Fractional"
                    if getattr(feature, "kind", "numeric") == "numeric"
                    else "String",
                    "completeness": 1.0,
                }
                for name, feature in profile.features.items()
            ],
        }
        constraints_uri = self.provider.storage.put_text(
            json.dumps(constraints), f"{folder}/constraints.json"
        )
        name = f"mlport-{endpoint}"[:63].rstrip("-")
        image = self.provider.config.monitoring_image or image_uris().retrieve(
            "model-monitor", region=self.provider.region
        )
        self._sm.create_data_quality_job_definition(
            JobDefinitionName=name,
            DataQualityBaselineConfig={"ConstraintsResource": {"S3Uri": constraints_uri}},
            DataQualityAppSpecification={"ImageUri": image},
            DataQualityJobInput={
                "EndpointInput": {
                    "EndpointName": endpoint,
                    "LocalPath": "/opt/ml/processing/input/endpoint",
                }
            },
            DataQualityJobOutputConfig={
                "MonitoringOutputs": [
                    {
                        "S3Output": {
                            "S3Uri": f"{folder}/sagemaker-reports",
                            "LocalPath": "/opt/ml/processing/output",
                        }
                    }
                ]
            },
            JobResources={
                "ClusterConfig": {
                    "InstanceCount": 1,
                    "InstanceType": "ml.m5.xlarge",
                    "VolumeSizeInGB": 20,
                }
            },
            RoleArn=self.provider.role,
            StoppingCondition={"MaxRuntimeInSeconds": 3600},
        )
        self._sm.create_monitoring_schedule(
            MonitoringScheduleName=name,
            MonitoringScheduleConfig={
                "ScheduleConfig": {"ScheduleExpression": _cron(seconds)},
                "MonitoringJobDefinitionName": name,
                "MonitoringType": "DataQuality",
            },
        )
        return name

    def _delete_schedule(self, endpoint: str) -> None:
        name = f"mlport-{endpoint}"[:63].rstrip("-")
        found = False
        for call, key in (
            (self._sm.delete_monitoring_schedule, "MonitoringScheduleName"),
            (self._sm.delete_data_quality_job_definition, "JobDefinitionName"),
        ):
            try:
                call(**{key: name})
                found = True
            except Exception as exc:
                if not isinstance(self.provider.translate_error(exc), NotFoundError):
                    raise
        if not found:
            raise NotFoundError(f"no monitoring schedule {name}")

    # --- read ------------------------------------------------------------------------------------

    def _view(self, doc: dict[str, Any]) -> Monitor:
        last = doc.get("last_run_at")
        return Monitor(
            endpoint=doc["endpoint"],
            schedule=doc.get("schedule"),
            baseline=doc.get("baseline", ""),
            thresholds=doc.get("thresholds") or {},
            alert=doc.get("alert"),
            enabled=True,
            last_run_at=datetime.fromisoformat(last) if last else None,
            provider_id=doc.get("schedule_name") or "",
            tags={"mlport.features": ",".join(doc.get("features", []))},
        )

    def _get(self, endpoint: str) -> Monitor:
        return self._view(self._doc(endpoint))

    def _list(self, page_token: str | None) -> Page[Monitor]:
        prefix = self.provider.s3_uri("monitors") + "/"
        monitors = []
        for uri in self.provider.storage.ls(prefix):
            if uri.endswith("/monitor.json"):
                with contextlib.suppress(NotFoundError):
                    monitors.append(self._view(json.loads(self.provider.storage.get_text(uri))))
        return Page(monitors)

    # --- run -------------------------------------------------------------------------------------

    def _run(self, endpoint: str) -> DriftReport:
        from mlport.monitoring import Profile
        from mlport.monitoring.monitor import send_alert, window_report

        doc = self._doc(endpoint)
        folder = self._folder(endpoint)
        profile = Profile.model_validate_json(
            self.provider.storage.get_text(f"{folder}/baseline.json")
        )
        since = datetime.fromisoformat(doc["window_end"])
        until = _now()
        report = window_report(
            profile,
            self._captured(endpoint, since, until),
            endpoint=endpoint,
            row_names=doc["row_features"],
            monitored=doc["features"],
            since=since,
            until=until,
            thresholds=doc.get("thresholds") or None,
        )
        stamp = report.created_at.strftime("%Y%m%dT%H%M%S%fZ")
        report.report_uri = self.provider.storage.put_text(
            report.to_html(), f"{folder}/reports/{stamp}.html"
        )
        if report.violations and doc.get("alert"):
            report.alert = send_alert(doc["alert"], report)
        self.provider.storage.put_text(report.to_json(), f"{folder}/reports/{stamp}.json")
        doc["window_end"] = until.isoformat()
        doc["last_run_at"] = report.created_at.isoformat()
        self._save(endpoint, doc)
        return report

    def _captured(self, endpoint: str, since: datetime, until: datetime) -> Iterator[list[Any]]:
        """Input rows captured in ``[since, until)``, read from the hour folders that overlap it."""
        endpoints: Any = self.provider.service("endpoints")
        prefix = f"{endpoints.capture_uri()}/{endpoint}/"
        first_hour = since.replace(minute=0, second=0, microsecond=0)
        for uri in self.provider.storage.ls(prefix):
            parts = uri[len(prefix) :].split("/")
            if len(parts) >= 5:
                try:
                    year, month, day, at = (int(p) for p in parts[1:5])
                    hour = datetime(year, month, day, at, tzinfo=UTC)
                except ValueError:
                    hour = first_hour
                if hour + timedelta(hours=1) <= first_hour or hour > until:
                    continue
            text = self.provider.storage.get_text(uri)
            for moment, rows in capture_records(iter(text.splitlines())):
                if since <= moment < until:
                    yield from rows

    def _reports(self, endpoint: str, page_token: str | None) -> Page[DriftReport]:
        self._doc(endpoint)
        prefix = f"{self._folder(endpoint)}/reports/"
        names = sorted(
            (u for u in self.provider.storage.ls(prefix) if u.endswith(".json")), reverse=True
        )
        start = int(page_token or 0)
        chunk = names[start : start + _PAGE]
        reports = [DriftReport.from_json(self.provider.storage.get_text(uri)) for uri in chunk]
        following = start + _PAGE
        return Page(reports, str(following) if following < len(names) else None)

    def _disable(self, endpoint: str) -> None:
        self._doc(endpoint)
        with contextlib.suppress(NotFoundError):
            self._delete_schedule(endpoint)
        self.provider.storage.delete(f"{self._folder(endpoint)}/monitor.json")
