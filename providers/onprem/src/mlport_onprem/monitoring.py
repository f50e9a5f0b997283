"""On-prem drift monitors: the drift engine run on an endpoint's captured requests.

A monitor is a row of the root's state (table ``monitors``, keyed by endpoint) plus a folder,
``monitors/<endpoint>/``::

    baseline.json       the baseline profile (mlport.monitoring.Profile) of the model's features
    run.lock            held by a run, so a scheduled and an on-demand run never read the same
                        window of traffic
    monitor.log         one line per run (window, rows, drifted features, alert), and errors
    reports/<UTC time>.json   each run's DriftReport; reports/<UTC time>.html its page
    scheduler.json      what the scheduler process runs; scheduler.out / .err its output

:meth:`OnPremMonitoring._enable` checks that the endpoint captures its requests, profiles the
baseline with the model's feature names (columns that are not features, such as the label, are
left out and named in the monitor's ``mlport.dropped_columns`` tag) and, with a schedule, starts
``python -m mlport_onprem.monitor_scheduler <folder>`` detached and records it in the root's
process table (``mlport down`` stops it). A run (:class:`MonitorRun`) reads the captured rows of
its window, ``[end of the last run's window, now)`` (the first window starts when the monitor
was enabled), compares them with the profile, stores the report and, when a feature drifted,
POSTs a summary to the alert webhook. A window without traffic gives a report with no features
and a message saying so. Past reports are kept when the monitor is disabled.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.parse
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlport.errors import ConflictError, InvalidSpecError, NotFoundError
from mlport.handles import DriftReport, Monitor
from mlport.monitoring.monitor import check_thresholds
from mlport.processes import ProcessRecord, is_running, stop
from mlport.services import MonitoringService, Page
from mlport.status import EndpointStatus
from mlport_onprem._common import locked, read_json, start_detached, write_atomic
from mlport_onprem.state import StateStore

if TYPE_CHECKING:
    from mlport.monitoring import Profile
    from mlport.specs import MonitorOptions
    from mlport_onprem.root import OnPremProvider

__all__ = ["MonitorRun", "OnPremMonitoring", "monitor_folder"]

TABLE = "monitors"
PAGE_SIZE = 50
#: Seconds a run waits after the end of its window before reading it: the server writes a
#: captured request a moment after it was answered.
CAPTURE_SETTLE = 1.0
#: Seconds the alert webhook has to answer.
ALERT_TIMEOUT = 5.0
FEATURES_TAG = "mlport.features"
DROPPED_TAG = "mlport.dropped_columns"


def monitor_folder(root: Path, endpoint: str) -> Path:
    """The folder of the monitor of ``endpoint`` under ``root``."""
    return root / "monitors" / endpoint


def _now() -> datetime:
    return datetime.now(UTC)


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _shown(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


# --- what the model takes -------------------------------------------------------------------------


def _model_inputs(endpoint_folder: Path) -> tuple[list[str] | None, int | None]:
    """Feature names (None if the model has none) and count of the model serving the most
    traffic: as the running server reports them, else from the package's signature."""
    status = read_json(endpoint_folder / "status.json") or {}
    served = status.get("variants") or {}
    if isinstance(served, list):
        served = {str(v.get("version")): v for v in served if isinstance(v, dict)}
    if isinstance(served, dict) and served:
        main = max(served.values(), key=lambda v: float(v.get("weight", 0)))
        names = main.get("feature_names")
        count = main.get("n_features")
        return (list(names) if names else None), (int(count) if count else None)
    config = read_json(endpoint_folder / "config.json") or {}
    variants = config.get("variants") or {}
    if variants:
        from mlport.package import MANIFEST_NAME, Manifest

        main = max(variants.values(), key=lambda v: float(v.get("weight", 0)))
        try:
            manifest = Manifest.model_validate_json(
                (Path(main["path"]) / MANIFEST_NAME).read_bytes()
            )
        except (OSError, ValueError, KeyError):
            return None, None
        if manifest.signature is not None and manifest.signature.inputs:
            inputs = manifest.signature.inputs
            names = [f.name for f in inputs if f.name]
            return (names if len(names) == len(inputs) else None), len(inputs)
    return None, None


# --- the baseline ---------------------------------------------------------------------------------


def _baseline_path(baseline: str, endpoint: str) -> Path:
    if baseline.startswith("file://"):
        baseline = urllib.parse.unquote(urllib.parse.urlparse(baseline).path)
    elif "://" in baseline:
        raise InvalidSpecError(
            f"baseline {baseline!r}: on-prem monitors read a local file or a file:// URI; copy "
            "it here first (mlport.storage.copy)",
            provider="onprem",
            resource=endpoint,
        )
    path = Path(baseline).expanduser().resolve()
    if not path.is_file():
        raise InvalidSpecError(
            f"baseline {baseline!r} is not a file; give the training data (CSV with a header, "
            "JSON Lines or Parquet) or a profile saved with Profile.save",
            provider="onprem",
            resource=endpoint,
        )
    return path


# --- the service ----------------------------------------------------------------------------------


class OnPremMonitoring(MonitoringService):
    """Drift monitors of the root's endpoints, run on demand and by scheduler processes."""

    provider: OnPremProvider

    def _folder(self, endpoint: str) -> Path:
        return monitor_folder(self.provider.root, endpoint)

    def _doc(self, endpoint: str) -> dict[str, Any]:
        doc = self.provider.state.get(TABLE, endpoint)
        if doc is None:
            raise NotFoundError(
                f"endpoint {endpoint!r} has no monitor under {self.provider.root}",
                provider="onprem",
                resource=endpoint,
            )
        return doc

    def _enable(self, endpoint: str, options: MonitorOptions) -> Monitor:
        endpoints: Any = self.provider.service("endpoints")
        served = endpoints.get(endpoint)  # NotFoundError for an unknown endpoint
        if not served.capture_percent:
            raise InvalidSpecError(
                f"endpoint {endpoint!r} does not capture its requests, and monitors read "
                "captured requests: deploy it again with capture_percent, e.g. "
                f"ml.endpoints.delete({endpoint!r}) then ml.endpoints.deploy({endpoint!r}, "
                "version, capture_percent=20) (or mlport endpoints deploy ... "
                "--capture-percent 20)",
                provider="onprem",
                resource=endpoint,
            )
        if options.baseline is None:
            options = options.model_copy(update={"baseline": self._registered_baseline(endpoint)})
        endpoint_folder = self.provider.root / "endpoints" / endpoint
        model_names, model_count = _model_inputs(endpoint_folder)
        if model_names is None and model_count is None and served.status != EndpointStatus.READY:
            raise ConflictError(
                f"endpoint {endpoint!r} is {served.status.value}: its model's inputs are known "
                "once it is READY; wait for it (ml.endpoints.get(name).wait()) and enable again",
                provider="onprem",
                resource=endpoint,
            )
        profile, row_names, dropped = self._profile(
            endpoint, options, model_names=model_names, model_count=model_count
        )
        thresholds = check_thresholds(options.thresholds, profile, endpoint, "onprem")
        config = read_json(endpoint_folder / "config.json") or {}
        capture_dir = (config.get("capture") or {}).get("dir") or str(endpoint_folder / "capture")

        folder = self._folder(endpoint)
        folder.mkdir(parents=True, exist_ok=True)
        old = self.provider.state.get(TABLE, endpoint)
        if old is not None:
            self._stop_scheduler(old)
        with locked(folder / "run.lock"):
            write_atomic(folder / "baseline.json", profile.to_json())
            self.provider.state.delete(TABLE, endpoint)
            doc = {
                "name": endpoint,
                "status": "ENABLED",
                "endpoint": endpoint,
                "enabled_at": _now().isoformat(),
                "baseline": options.baseline,
                "schedule": options.schedule,
                "thresholds": thresholds,
                "alert": options.alert,
                "features": profile.feature_names,
                "row_features": row_names,
                "dropped": dropped,
                "capture_dir": capture_dir,
            }
            if not self.provider.state.insert(TABLE, endpoint, doc):
                raise ConflictError(
                    f"the monitor of endpoint {endpoint!r} was enabled by another process at "
                    "the same time; enable it again",
                    provider="onprem",
                    resource=endpoint,
                )
            _log_line(
                folder,
                f"enabled: features {', '.join(profile.feature_names)}"
                + (f"; baseline columns left out: {', '.join(dropped)}" if dropped else "")
                + (f"; every {options.schedule}s" if options.schedule else "; on demand"),
            )
        if options.schedule is not None:
            self._start_scheduler(endpoint, folder)
        return self._view(self._doc(endpoint))

    def _profile(
        self,
        endpoint: str,
        options: MonitorOptions,
        *,
        model_names: list[str] | None,
        model_count: int | None,
    ) -> tuple[Profile, list[str], list[str]]:
        """The baseline profile of the monitored features, the names of captured rows'
        columns and the baseline columns left out."""
        from mlport.monitoring.monitor import baseline_profile

        assert options.baseline is not None  # resolved by _enable
        return baseline_profile(
            _baseline_path(options.baseline, endpoint),
            endpoint,
            model_names=model_names,
            model_count=model_count,
            features=options.features,
            provider="onprem",
        )

    def _registered_baseline(self, endpoint: str) -> str:
        """The baseline profile registered with the version the endpoint serves most."""
        served: Any = self.provider.service("endpoints").get(endpoint)  # type: ignore[attr-defined]
        if not served.variants or not served.model:
            raise InvalidSpecError(
                f"endpoint {endpoint!r} serves no model version; give baseline=",
                provider="onprem",
                resource=endpoint,
            )
        version = max(served.variants, key=lambda v: served.variants[v])
        registry: Any = self.provider.service("registry")
        found = registry.get(served.model, version)
        if not found.baseline_uri:
            raise InvalidSpecError(
                f"version {served.model}:{version} served by endpoint {endpoint!r} was registered "
                "without a baseline: give baseline='data/train.csv' (the training data), or "
                "register the version with registry.register(..., baseline='data/train.csv')",
                provider="onprem",
                resource=endpoint,
            )
        return str(found.baseline_uri)

    def _start_scheduler(self, endpoint: str, folder: Path) -> None:
        scheduler_id = uuid.uuid4().hex
        write_atomic(
            folder / "scheduler.json",
            json.dumps({"root": str(self.provider.root), "endpoint": endpoint, "id": scheduler_id}),
        )
        self.provider.state.update(TABLE, endpoint, scheduler_id=scheduler_id)
        record = start_detached(
            self.provider, "mlport_onprem.monitor_scheduler", folder, "scheduler"
        )
        self.provider.state.update(TABLE, endpoint, scheduler=record.to_json())

    def _stop_scheduler(self, doc: dict[str, Any]) -> None:
        text = doc.get("scheduler")
        if text:
            record = ProcessRecord.from_json(text)
            stop(record, grace=self.provider.config.cancel_grace)
            self.provider.processes.remove(record)

    def _view(self, doc: dict[str, Any]) -> Monitor:
        schedule = doc.get("schedule")
        scheduler = doc.get("scheduler")
        # A scheduled monitor whose scheduler is gone (mlport down, a restart) runs only on
        # demand until it is enabled again.
        enabled = schedule is None or (
            scheduler is not None and is_running(ProcessRecord.from_json(scheduler))
        )
        tags = {FEATURES_TAG: json.dumps(doc["features"])}
        if doc.get("dropped"):
            tags[DROPPED_TAG] = json.dumps(doc["dropped"])
        return Monitor(
            endpoint=doc["endpoint"],
            schedule=schedule,
            baseline=doc["baseline"],
            thresholds=doc.get("thresholds") or {},
            alert=doc.get("alert"),
            enabled=enabled,
            last_run_at=_moment(doc["last_run_at"]) if doc.get("last_run_at") else None,
            provider_id=str(self._folder(doc["endpoint"])),
            tags=tags,
        )

    def _get(self, endpoint: str) -> Monitor:
        return self._view(self._doc(endpoint))

    def _list(self, page_token: str | None) -> Page[Monitor]:
        offset = int(page_token or 0)
        docs = self.provider.state.page(TABLE, offset, PAGE_SIZE + 1)
        items = [self._view(doc) for doc in docs[:PAGE_SIZE]]
        return Page(items, str(offset + PAGE_SIZE) if len(docs) > PAGE_SIZE else None)

    def _run(self, endpoint: str) -> DriftReport:
        report = MonitorRun(self.provider.root, endpoint, self.provider.state).run()
        assert report is not None  # only a run asked for when due may find nothing to do
        return report

    def _reports(self, endpoint: str, page_token: str | None) -> Page[DriftReport]:
        folder = self._folder(endpoint) / "reports"
        if not folder.is_dir():
            self._doc(endpoint)  # NotFoundError when there is no monitor either
            return Page([])
        names = sorted((p.name for p in folder.glob("*.json")), reverse=True)
        offset = int(page_token or 0)
        items = []
        for name in names[offset : offset + PAGE_SIZE]:
            # Removed since it was listed, or damaged: the other reports are still shown.
            with contextlib.suppress(OSError, ValueError):
                items.append(DriftReport.from_json((folder / name).read_bytes()))
        more = len(names) > offset + PAGE_SIZE
        return Page(items, str(offset + PAGE_SIZE) if more else None)

    def _disable(self, endpoint: str) -> None:
        doc = self._doc(endpoint)
        self._stop_scheduler(doc)
        folder = self._folder(endpoint)
        with locked(folder / "run.lock"):
            self.provider.state.delete(TABLE, endpoint)
            for name in ("scheduler.json", "baseline.json"):
                (folder / name).unlink(missing_ok=True)
            _log_line(folder, "disabled")


# --- a run ----------------------------------------------------------------------------------------


def _log_line(folder: Path, text: str) -> None:
    with (folder / "monitor.log").open("a", encoding="utf-8") as log:
        log.write(f"{_shown(_now())} {text}\n")


class MonitorRun:
    """Runs the monitor of one endpoint: in the caller's process, or the scheduler's.

    Args:
        root: The on-prem root.
        endpoint: The monitored endpoint.
        state: The root's state.
    """

    def __init__(self, root: Path, endpoint: str, state: StateStore) -> None:
        self.root = root
        self.endpoint = endpoint
        self.state = state
        self.folder = monitor_folder(root, endpoint)

    def due_at(self, doc: dict[str, Any]) -> datetime | None:
        """When the next scheduled run is due: ``schedule`` seconds after the end of the last
        run's window (on demand or scheduled); None without a schedule."""
        schedule = doc.get("schedule")
        if schedule is None:
            return None
        return _moment(doc.get("window_end") or doc["enabled_at"]) + timedelta(seconds=schedule)

    def run(self, *, only_if_due: bool = False) -> DriftReport | None:
        """Compute drift on the window since the last run, store the report and send the alert.

        Blocks for the run (and while another run of this monitor holds the lock). With
        ``only_if_due``, does nothing and returns None unless a scheduled run is due.

        Raises:
            NotFoundError: the endpoint has no monitor.
            InvalidSpecError: captured values the baseline cannot be compared with.
        """
        absent = NotFoundError(
            f"endpoint {self.endpoint!r} has no monitor under {self.root}",
            provider="onprem",
            resource=self.endpoint,
        )
        if not self.folder.is_dir():
            raise absent
        with locked(self.folder / "run.lock"):
            doc = self.state.get(TABLE, self.endpoint)
            if doc is None:
                raise absent
            since = _moment(doc.get("window_end") or doc["enabled_at"])
            until = _now()
            due = self.due_at(doc)
            if only_if_due and (due is None or until < due):
                return None
            try:
                report = self._compute(doc, since, until)
            except Exception as exc:
                _log_line(self.folder, f"run failed: {type(exc).__name__}: {exc}")
                self.state.update(TABLE, self.endpoint, last_error=str(exc))
                raise
            self._store(report)
            if doc.get("alert") and report.drifted:
                # Stored first, so the report the alert points to is there when it arrives;
                # stored again with what became of the alert.
                report.alert = self._send_alert(doc["alert"], report)
                self._store(report)
            self.state.update(
                TABLE,
                self.endpoint,
                window_end=until.isoformat(),
                last_run_at=report.created_at.isoformat(),
                last_report=report.report_uri,
                last_error=None,
            )
            drifted = ", ".join(report.drifted_features) or "none"
            _log_line(
                self.folder,
                f"window {_shown(since)} to {_shown(until)}: {report.current_size} rows; "
                f"drifted: {drifted}"
                + (f"; alert {report.alert}" if report.alert else "")
                + (f"; {report.message}" if report.message else "")
                + f"; {report.report_uri}",
            )
            return report

    def _compute(self, doc: dict[str, Any], since: datetime, until: datetime) -> DriftReport:
        from mlport.monitoring import Profile, capture_rows
        from mlport.monitoring.monitor import window_report

        # Requests answered just before ``until`` reach the capture files a moment later.
        time.sleep(max(0.0, CAPTURE_SETTLE - (_now() - until).total_seconds()))
        report = window_report(
            Profile.load(self.folder / "baseline.json"),
            (
                row.values
                for row in capture_rows(doc["capture_dir"], self.endpoint, since=since, until=until)
            ),
            endpoint=self.endpoint,
            row_names=doc["row_features"],
            monitored=doc["features"],
            since=since,
            until=until,
            thresholds=doc.get("thresholds") or None,
        )
        if report.current_size == 0 and self.state.get("endpoints", self.endpoint) is None:
            report.message += (
                f"; the endpoint {self.endpoint!r} no longer exists; disable its monitor "
                f"(ml.monitoring.disable({self.endpoint!r}))"
            )
        return report

    def _send_alert(self, url: str, report: DriftReport) -> str:
        """POST the summary to ``url``; what happened, for the report (never raises)."""
        from mlport.monitoring.monitor import send_alert

        outcome = send_alert(url, report, ALERT_TIMEOUT)
        if outcome.startswith("failed"):
            _log_line(self.folder, f"alert {outcome}")
        return outcome

    def _store(self, report: DriftReport) -> None:
        """Write the report's page and JSON under ``reports/`` and set its ``report_uri``."""
        folder = self.folder / "reports"
        folder.mkdir(parents=True, exist_ok=True)
        stamp = report.created_at.strftime("%Y%m%dT%H%M%S%fZ")
        report.report_uri = (folder / f"{stamp}.html").as_uri()
        write_atomic(folder / f"{stamp}.html", report.to_html())
        # The JSON last: reports() lists a run once both of its files are complete.
        write_atomic(folder / f"{stamp}.json", report.to_json())
