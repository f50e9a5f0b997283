"""The drift engine: per-feature drift of captured traffic against a training baseline.

    from mlport.monitoring import Profile, feature_drift, drift_report

    profile = Profile.build(train_df)            # once, from the training data
    profile.save("baseline.json")
    ...
    results = feature_drift(Profile.load("baseline.json"), window_rows)
    report = drift_report("churn-api", profile, window_rows, thresholds={"*": 0.2})

    for row in capture_rows("capture", "churn-api", since=start, until=end): ...

Statistics (:mod:`mlport.monitoring.stats`) are numpy only and equal scipy's reference
implementations; every provider's captured data goes through the same code, so drift numbers
agree across clouds. Defaults per feature (see :mod:`mlport.monitoring.engine` and
``docs/monitoring.md``): normalised Wasserstein (threshold 0.1) for numeric features with more
than 1,000 reference values, KS p-value (0.05) below that; Jensen-Shannon (0.1) for categorical
features and numeric ones with at most 5 distinct values when the reference has more than 1,000
values, chi-square p-value (0.05) below that.

Captured requests (the portable model server's JSON Lines files) are read by
:mod:`mlport.monitoring.capture` for a time window; :mod:`mlport.monitoring.histogram` gives the
per-feature histograms of a report's charts.

Importing this package is cheap; numpy is imported with the first name used from it that needs
it (the capture reader needs none).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlport._lazy import lazy_exports

_EXPORTS = {
    "Profile": "mlport.monitoring.profile",
    "NumericProfile": "mlport.monitoring.profile",
    "CategoricalProfile": "mlport.monitoring.profile",
    "feature_drift": "mlport.monitoring.engine",
    "drift_report": "mlport.monitoring.engine",
    "default_statistic": "mlport.monitoring.engine",
    "DEFAULT_THRESHOLDS": "mlport.monitoring.engine",
    "STATISTICS": "mlport.monitoring.engine",
    "CaptureRow": "mlport.monitoring.capture",
    "capture_files": "mlport.monitoring.capture",
    "capture_rows": "mlport.monitoring.capture",
    "read_capture": "mlport.monitoring.capture",
    "feature_histogram": "mlport.monitoring.histogram",
}

__all__ = [
    "DEFAULT_THRESHOLDS",
    "STATISTICS",
    "CaptureRow",
    "CategoricalProfile",
    "NumericProfile",
    "Profile",
    "capture_files",
    "capture_rows",
    "default_statistic",
    "drift_report",
    "feature_drift",
    "feature_histogram",
    "read_capture",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


if TYPE_CHECKING:
    from mlport.monitoring.capture import CaptureRow, capture_files, capture_rows, read_capture
    from mlport.monitoring.engine import (
        DEFAULT_THRESHOLDS,
        STATISTICS,
        default_statistic,
        drift_report,
        feature_drift,
    )
    from mlport.monitoring.histogram import feature_histogram
    from mlport.monitoring.profile import CategoricalProfile, NumericProfile, Profile
