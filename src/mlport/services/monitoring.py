"""Drift monitoring of endpoints: enable, run now, read reports, disable.

Provider contract: ``_enable(endpoint, options)`` creates or replaces the monitor and returns it;
``_run(endpoint)`` computes drift on the data captured since the last run (with the core drift
engine, so numbers agree across providers) and stores the report; ``_reports(endpoint, token)``
pages through stored reports, newest first; ``_get`` and ``_disable`` raise ``NotFoundError`` for
an endpoint without a monitor.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from typing import ClassVar

from mlport.handles import DriftReport, Monitor
from mlport.services.base import Page, Service
from mlport.specs import MonitorOptions

__all__ = ["MonitoringService"]


class MonitoringService(Service):
    """Monitors on one provider, one per endpoint."""

    kind: ClassVar[str] = "monitoring"
    resource_kind = "monitor"

    def enable(
        self,
        endpoint: str,
        *,
        baseline: str | None = None,
        schedule: str | int | None = "1h",
        thresholds: dict[str, float] | None = None,
        alert: str | None = None,
        features: list[str] | None = None,
    ) -> Monitor:
        """Start monitoring ``endpoint`` against ``baseline`` on ``schedule``. Replaces an existing one.

        With ``schedule=None`` the monitor runs only when :meth:`run` is called. Without
        ``baseline`` the profile registered with the served version is used
        (``registry.register(..., baseline=...)``).

        Raises:
            InvalidSpecError: bad options.
            NotFoundError: no such endpoint.
            NotSupportedError: scheduled runs or alerts on a provider that lacks them.
        """
        self._require("monitoring")
        options = MonitorOptions(
            baseline=baseline,
            schedule=schedule,  # type: ignore[arg-type]
            thresholds=thresholds or {},
            alert=alert,
            features=features,
        )
        if options.alert:
            self._require("monitoring.alert")
        if options.schedule is not None:
            self._require("monitoring.schedule")
        self._check_name(endpoint)
        monitor = self._bind(self._call("enable", self._enable, endpoint, options))
        self._emit("enabled", endpoint, schedule=options.schedule)
        return monitor

    def get(self, endpoint: str) -> Monitor:
        """The monitor of ``endpoint``.

        Raises:
            NotFoundError: the endpoint has no monitor.
        """
        self._require("monitoring")
        return self._bind(self._call("get", self._get, endpoint))

    def list(self) -> Iterator[Monitor]:
        """Monitors, pages fetched lazily."""
        self._require("monitoring")
        return self._paginate(self._list)

    def run(self, endpoint: str) -> DriftReport:
        """Compute drift now on the data captured since the last run. Blocks until done."""
        self._require("monitoring")
        report = self._call("run", self._run, endpoint)
        self._emit("ran", endpoint, drifted=report.drifted_features)
        return report

    def reports(self, endpoint: str) -> Iterator[DriftReport]:
        """Stored reports of ``endpoint``, newest first, pages fetched lazily."""
        self._require("monitoring")
        return self._paginate(lambda token: self._reports(endpoint, token))

    def disable(self, endpoint: str) -> None:
        """Stop monitoring ``endpoint``. Idempotent; past reports are kept."""
        self._delete_idempotent("monitoring", endpoint, self._disable, endpoint)

    def delete(self, endpoint: str) -> None:
        """Same as :meth:`disable`."""
        self.disable(endpoint)

    @abc.abstractmethod
    def _enable(self, endpoint: str, options: MonitorOptions) -> Monitor: ...

    @abc.abstractmethod
    def _get(self, endpoint: str) -> Monitor: ...

    @abc.abstractmethod
    def _list(self, page_token: str | None) -> Page[Monitor]: ...

    @abc.abstractmethod
    def _run(self, endpoint: str) -> DriftReport: ...

    @abc.abstractmethod
    def _reports(self, endpoint: str, page_token: str | None) -> Page[DriftReport]: ...

    @abc.abstractmethod
    def _disable(self, endpoint: str) -> None: ...
