"""What every provider's drift monitor does with a baseline and a window of captured rows.

Providers differ in where captured requests live and how runs are scheduled; these functions are
the rest, shared so that a monitor behaves the same everywhere:

- :func:`baseline_profile` turns a baseline file (training data, or a saved profile) into the
  profile of the model's features, naming the columns left out (the label, ids);
- :func:`window_report` compares one window of captured rows with that profile;
- :func:`send_alert` POSTs a drift summary to a webhook and says what happened (never raises).
"""

from __future__ import annotations

import http.client
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlport.errors import InvalidSpecError
from mlport.handles import DriftReport

if TYPE_CHECKING:
    from mlport.monitoring.profile import Profile

__all__ = [
    "ALERT_TIMEOUT",
    "baseline_profile",
    "check_thresholds",
    "saved_profile",
    "select_features",
    "send_alert",
    "shown",
    "window_report",
]

ALERT_TIMEOUT = 5.0
"""Seconds an alert webhook has to answer."""
_PROFILE_SUFFIXES = (".json",)


def shown(moment: datetime) -> str:
    """A moment as a report shows it (ISO 8601, seconds)."""
    return moment.isoformat(timespec="seconds")


def _quoted(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names)


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def saved_profile(path: Path) -> Profile | None:
    """The profile in ``path`` if it is one (a JSON object with a profile's keys), else None.

    Raises:
        InvalidSpecError: a JSON file shaped like a profile that does not validate.
    """
    from mlport.monitoring import Profile

    if path.suffix.lower() not in _PROFILE_SUFFIXES:
        return None
    try:
        data = json.loads(path.read_bytes())
    except ValueError:
        return None  # several JSON documents: JSON Lines
    if not (isinstance(data, dict) and "features" in data and "sketch_size" in data):
        return None
    try:
        return Profile.model_validate(data)
    except ValueError as exc:
        raise InvalidSpecError(f"baseline {path.name} is not a valid profile: {exc}") from None


def select_features(
    endpoint: str,
    columns: list[str],
    *,
    model_names: list[str] | None,
    model_count: int | None,
    requested: list[str] | None,
    provider: str,
) -> tuple[list[str], list[str]]:
    """The names of the columns of captured rows (the model's inputs, in order) and the
    features to monitor.

    Raises:
        InvalidSpecError: the baseline does not match the model's inputs, or ``requested``
            names something the model does not take.
    """
    if model_names is not None:
        row_names = model_names
    elif model_count is not None and len(columns) != model_count:
        raise InvalidSpecError(
            f"the model of endpoint {endpoint!r} takes {model_count} features without names, "
            f"but the baseline has {len(columns)} columns ({_quoted(columns)}): give a baseline "
            f"of exactly the model's {model_count} feature columns, in the model's order",
            provider=provider,
            resource=endpoint,
        )
    else:
        row_names = columns
    monitored = list(requested) if requested else list(row_names)
    unknown = [n for n in monitored if n not in row_names]
    if unknown:
        raise InvalidSpecError(
            f"features {_quoted(unknown)} are not inputs of the model of endpoint {endpoint!r} "
            f"(it takes {_quoted(row_names)})",
            provider=provider,
            resource=endpoint,
        )
    absent = [n for n in monitored if n not in columns]
    if absent:
        raise InvalidSpecError(
            f"the baseline has no column {_quoted(absent)}, which the model of endpoint "
            f"{endpoint!r} takes (its columns: {_quoted(columns)})",
            provider=provider,
            resource=endpoint,
        )
    return row_names, monitored


def baseline_profile(
    path: Path,
    endpoint: str,
    *,
    model_names: list[str] | None,
    model_count: int | None,
    features: list[str] | None,
    provider: str,
) -> tuple[Profile, list[str], list[str]]:
    """The baseline profile of the monitored features, the names of captured rows' columns and
    the baseline columns left out.

    Args:
        path: Training data (CSV with a header, JSON Lines, Parquet) or a saved profile.
        model_names: The model's feature names, in order, if it has them.
        model_count: How many features the model takes, if known.
        features: Only these features (default all the model takes).

    Raises:
        InvalidSpecError: an unreadable baseline, or one that does not match the model.
    """
    from mlport.monitoring.profile import Profile, read_columns

    saved = saved_profile(path)
    if saved is not None:
        row_names, monitored = select_features(
            endpoint,
            saved.feature_names,
            model_names=model_names,
            model_count=model_count,
            requested=features,
            provider=provider,
        )
        profile = saved.model_copy(update={"features": {n: saved.features[n] for n in monitored}})
        columns = saved.feature_names
    else:
        data = read_columns(path)
        columns = list(data)
        row_names, monitored = select_features(
            endpoint,
            columns,
            model_names=model_names,
            model_count=model_count,
            requested=features,
            provider=provider,
        )
        profile = Profile.build(data, features=monitored)
    dropped = [c for c in columns if c not in row_names]
    return profile, row_names, dropped


def check_thresholds(
    thresholds: dict[str, float], profile: Profile, endpoint: str, provider: str
) -> dict[str, float]:
    """``thresholds`` if each names a monitored feature or ``"*"``.

    Raises:
        InvalidSpecError: a threshold for a feature that is not monitored.
    """
    unknown = [k for k in thresholds if k != "*" and k not in profile.features]
    if unknown:
        raise InvalidSpecError(
            f"thresholds name {_quoted(unknown)}, which are not monitored features "
            f"({_quoted(profile.feature_names)}); use a feature's name or '*'",
            provider=provider,
            resource=endpoint,
        )
    return dict(thresholds)


def window_report(
    profile: Profile,
    rows: Iterable[Sequence[Any]],
    *,
    endpoint: str,
    row_names: list[str],
    monitored: list[str],
    since: datetime,
    until: datetime,
    thresholds: dict[str, float] | None = None,
) -> DriftReport:
    """Compare the captured ``rows`` of one window with the baseline ``profile``.

    A row whose length is not the model's number of inputs is left out and counted in the
    report's message; a window without rows gives a report with no features and a message
    saying so.
    """
    from mlport.monitoring import feature_drift, feature_histogram

    positions = [row_names.index(name) for name in monitored]
    columns: dict[str, list[Any]] = {name: [] for name in monitored}
    count = skipped = 0
    for row in rows:
        if len(row) != len(row_names):
            skipped += 1
            continue
        count += 1
        for name, position in zip(monitored, positions, strict=True):
            columns[name].append(row[position])
    notes = []
    if skipped:
        notes.append(
            f"{skipped} captured rows were left out: they do not have the "
            f"{len(row_names)} values the baseline's model takes"
        )
    report = DriftReport(
        endpoint=endpoint,
        created_at=datetime.now(UTC),
        reference_size=profile.rows,
        current_size=count,
        window_start=since,
        window_end=until,
    )
    if count == 0:
        notes.insert(
            0,
            f"no requests were captured between {shown(since)} and {shown(until)}; "
            "nothing to compare",
        )
        report.message = "; ".join(notes)
        return report
    present = [n for n in monitored if any(map(_present, columns[n]))]
    empty = [n for n in monitored if n not in present]
    if empty:
        notes.append(f"no value of {', '.join(empty)} in this window; not compared")
    results = feature_drift(
        profile,
        {name: columns[name] for name in present},
        features=present,
        thresholds=thresholds or None,
    )
    report.features = [
        result.model_copy(
            update={
                "histogram": feature_histogram(
                    profile.features[result.feature], columns[result.feature], name=result.feature
                )
            }
        )
        for result in results
    ]
    report.message = "; ".join(notes)
    return report


def send_alert(url: str, report: DriftReport, timeout: float = ALERT_TIMEOUT) -> str:
    """POST the report's summary to the webhook ``url``; returns what happened (never raises)."""
    drifted = report.violations
    start = shown(report.window_start) if report.window_start else "?"
    end = shown(report.window_end) if report.window_end else "?"
    summary = {
        "text": f"mlport: drift on endpoint {report.endpoint} in "
        f"{', '.join(f.feature for f in drifted)} ({start} to {end})",
        "endpoint": report.endpoint,
        "window_start": start,
        "window_end": end,
        "created_at": report.created_at.isoformat(),
        "rows": report.current_size,
        "drifted": [
            {
                "feature": f.feature,
                "statistic": f.statistic,
                "value": f.value,
                "p_value": f.p_value,
                "threshold": f.threshold,
                "reference_size": f.reference_size,
                "current_size": f.current_size,
            }
            for f in drifted
        ],
        "report_uri": report.report_uri,
    }
    host = urllib.parse.urlparse(url).netloc
    request = urllib.request.Request(
        url,
        data=json.dumps(summary).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "mlport-monitor"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return f"sent to {host} (HTTP {answer.status})"
    except urllib.error.HTTPError as exc:
        return f"failed: {host} answered HTTP {exc.code}"
    except (OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        return f"failed: {host}: {reason}"
