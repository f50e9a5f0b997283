"""The drift engine: per-feature drift of captured traffic against a training baseline.

    from mlport.monitoring import Profile, feature_drift, drift_report

    profile = Profile.build(train_df)            # once, from the training data
    profile.save("baseline.json")
    ...
    results = feature_drift(Profile.load("baseline.json"), window_rows)
    report = drift_report("churn-api", profile, window_rows, thresholds={"*": 0.2})

Statistics (:mod:`mlport.monitoring.stats`) are numpy only and equal scipy's reference
implementations; every provider's captured data goes through the same code, so drift numbers
agree across clouds. Defaults per feature (see :mod:`mlport.monitoring.engine` and
``docs/monitoring.md``): normalised Wasserstein (threshold 0.1) for numeric features with more
than 1,000 reference values, KS p-value (0.05) below that; Jensen-Shannon (0.1) for categorical
features and numeric ones with at most 5 distinct values when the reference has more than 1,000
values, chi-square p-value (0.05) below that.

Importing this package is cheap; numpy is imported with the first name used from it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Profile": "mlport.monitoring.profile",
    "NumericProfile": "mlport.monitoring.profile",
    "CategoricalProfile": "mlport.monitoring.profile",
    "feature_drift": "mlport.monitoring.engine",
    "drift_report": "mlport.monitoring.engine",
    "default_statistic": "mlport.monitoring.engine",
    "DEFAULT_THRESHOLDS": "mlport.monitoring.engine",
    "STATISTICS": "mlport.monitoring.engine",
}

__all__ = [
    "DEFAULT_THRESHOLDS",
    "STATISTICS",
    "CategoricalProfile",
    "NumericProfile",
    "Profile",
    "default_statistic",
    "drift_report",
    "feature_drift",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mlport.monitoring' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:
    from mlport.monitoring.engine import (
        DEFAULT_THRESHOLDS,
        STATISTICS,
        default_statistic,
        drift_report,
        feature_drift,
    )
    from mlport.monitoring.profile import CategoricalProfile, NumericProfile, Profile
