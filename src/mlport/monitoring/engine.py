"""Per-feature drift of current data against a reference (raw data or a :class:`Profile`).

Default statistic and threshold per feature (Evidently's data-drift defaults, see
``docs/monitoring.md``); ``n`` is the reference's number of values present, "few values" means
at most 5 distinct values in reference and current together:

==============================  ===============================  =========  ====================
feature                         statistic                        threshold  drifted when
==============================  ===============================  =========  ====================
numeric, n > 1000               ``wasserstein`` (normalised)     0.1        value >= threshold
numeric, n <= 1000              ``ks`` (p-value)                 0.05       p_value < threshold
numeric few values, n > 1000    ``jensenshannon``                0.1        value >= threshold
numeric few values, n <= 1000   ``chisquare`` (p-value)          0.05       p_value < threshold
categorical, n > 1000           ``jensenshannon``                0.1        value >= threshold
categorical, n <= 1000          ``chisquare`` (p-value)          0.05       p_value < threshold
==============================  ===============================  =========  ====================

``psi`` (threshold 0.1, drifted when value >= threshold) is available on request. A threshold
given for a feature (or ``"*"``) replaces the default of whichever statistic that feature uses;
for ``ks`` and ``chisquare`` it is a significance level compared with the p-value.
``FeatureDrift.value`` is always the statistic itself (KS distance, chi-square statistic,
distance); ``p_value`` is set for ``ks`` and ``chisquare``.

Why these: they are Evidently's defaults (``_get_default_stattest`` in evidently 0.7's
``legacy/calculations/stattests/registry.py``), so the numbers read like the reports users
already know, and the choice is sound: on a large reference a test's p-value flags differences
too small to matter, so a distance with a fixed threshold is used; on a small one the distances
are noisy and a test controls false alarms. Where this engine departs from Evidently:

* Chi-square is the test of homogeneity of the 2 x k table (reference counts, current counts;
  scipy's ``chi2_contingency``, Yates-corrected for two categories), not Evidently's
  goodness-of-fit against the reference's shares: both samples are samples, and a category
  the reference never saw gives a finite statistic. It also replaces Evidently's z-test for
  features with two values: that z-test squared is the 2 x 2 chi-square without Yates'
  correction, so with it the test here is slightly more conservative.
* A p-value equal to the threshold is not drift (Evidently's KS counts it as drift).
* Jensen-Shannon and PSI of a numeric feature with more than 20 distinct values use the
  reference's deciles as bins (kept in a profile); Evidently cuts Sturges bins on reference
  and current together, which a profile cannot hold. With at most 20 distinct values both
  count values.
* PSI gives an empty bin a share of 1e-4 (Evidently: 1e-4, or the smallest share / 1e6).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from mlport.errors import InvalidSpecError
from mlport.handles import DriftReport, FeatureDrift
from mlport.monitoring import stats
from mlport.monitoring._data import Column, Kind, raw_columns, select, to_column
from mlport.monitoring._kolmogorov import ks_pvalue
from mlport.monitoring.profile import (
    CategoricalProfile,
    NumericProfile,
    Profile,
    decile_histogram,
    distinct_values,
    ks_statistic_sketch,
    runs,
    wasserstein_sketch,
)

__all__ = [
    "DEFAULT_THRESHOLDS",
    "STATISTICS",
    "default_statistic",
    "drift_report",
    "feature_drift",
]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Statistic:
    """A drift statistic: which features it applies to and how its threshold reads."""

    name: str
    kinds: frozenset[str]
    threshold: float
    uses_p_value: bool


STATISTICS: dict[str, Statistic] = {
    s.name: s
    for s in (
        Statistic("wasserstein", frozenset({"numeric"}), 0.1, False),
        Statistic("ks", frozenset({"numeric"}), 0.05, True),
        Statistic("psi", frozenset({"numeric", "categorical"}), 0.1, False),
        Statistic("jensenshannon", frozenset({"numeric", "categorical"}), 0.1, False),
        Statistic("chisquare", frozenset({"numeric", "categorical"}), 0.05, True),
    )
}
DEFAULT_THRESHOLDS = {name: s.threshold for name, s in STATISTICS.items()}
LARGE_REFERENCE = 1000
FEW_VALUES = 5


def default_statistic(kind: str, reference_size: int, distinct_values: int) -> str:
    """The statistic used when none is asked for.

    Args:
        kind: ``"numeric"`` or ``"categorical"``.
        reference_size: Values present in the reference.
        distinct_values: Distinct values in reference and current together (numeric only).
    """
    large = reference_size > LARGE_REFERENCE
    if kind == "numeric" and distinct_values > FEW_VALUES:
        return "wasserstein" if large else "ks"
    return "jensenshannon" if large else "chisquare"


def _lookup(table: Mapping[str, Any] | None, feature: str) -> Any:
    if not table:
        return None
    return table.get(feature, table.get("*"))


class _NumericReference:
    """The reference side of a numeric feature: a raw sorted sample or a profile."""

    def __init__(self, sorted_values: FloatArray | None, profile: NumericProfile | None) -> None:
        self.profile = profile
        if sorted_values is None and profile is not None:
            sorted_values = profile.sorted_values
        self.sorted = sorted_values

    def _sample(self) -> FloatArray:
        if self.sorted is None:
            raise ValueError("the reference keeps no sample")
        return self.sorted

    @cached_property
    def count(self) -> int:
        return self.profile.count if self.profile is not None else int(self._sample().size)

    @cached_property
    def std(self) -> float:
        return self.profile.std if self.profile is not None else float(np.std(self._sample()))

    @cached_property
    def _distinct(self) -> tuple[int, dict[float, int] | None]:
        if self.profile is not None:
            distinct, pairs = self.profile.distinct, self.profile.counts
        else:
            distinct, pairs = distinct_values(self._sample())
        return distinct, None if pairs is None else dict(pairs)

    @property
    def distinct(self) -> int:
        return self._distinct[0]

    @property
    def value_counts(self) -> dict[float, int] | None:
        return self._distinct[1]

    @cached_property
    def histogram(self) -> tuple[FloatArray, npt.NDArray[np.int64]]:
        if self.profile is not None:
            histogram = self.profile.histogram
        else:
            histogram = decile_histogram(self._sample())
        return (
            np.asarray(histogram.edges, dtype=np.float64),
            np.asarray(histogram.counts, dtype=np.int64),
        )

    def ks(self, current: FloatArray, method: str) -> stats.HypothesisTest:
        if self.sorted is not None:
            return stats.ks_2samp_sorted(self.sorted, current, method=method)
        assert self.profile is not None
        d = ks_statistic_sketch(self.profile, current)
        _, pvalue, _ = ks_pvalue(d, self.count, current.size, method)
        return stats.HypothesisTest(d, pvalue)

    def wasserstein(self, current: FloatArray) -> float:
        if self.sorted is not None:
            distance = stats.wasserstein_distance_sorted(self.sorted, current)
        else:
            assert self.profile is not None
            distance = wasserstein_sketch(self.profile, current)
        return distance / stats.std_floor(self.std)

    def counts_against(self, current: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Reference and current counts over the same cells: values if the reference has at
        most 20 distinct values, else the reference's decile bins."""
        value_counts = self.value_counts
        if value_counts is not None:
            reference_values = np.fromiter(value_counts, np.float64, len(value_counts))
            reference_counts = np.fromiter(value_counts.values(), np.float64, len(value_counts))
            current_values, current_counts = runs(current)
            keys = np.union1d(reference_values, current_values)
            on_reference = np.zeros(keys.size)
            on_reference[np.searchsorted(keys, reference_values)] = reference_counts
            on_current = np.zeros(keys.size)
            on_current[np.searchsorted(keys, current_values)] = current_counts
            return on_reference, on_current
        edges, histogram = self.histogram
        in_bins = np.bincount(
            np.searchsorted(edges, current, side="right"), minlength=edges.size + 1
        )
        return histogram.astype(np.float64), in_bins.astype(np.float64)


def _few_values(reference: _NumericReference, current: FloatArray) -> int:
    """Distinct values in reference and current together, or FEW_VALUES + 1 if more."""
    counts = reference.value_counts
    if reference.distinct > FEW_VALUES or counts is None:
        return FEW_VALUES + 1
    changes = current[1:] != current[:-1]
    if int(np.count_nonzero(changes)) + 1 > FEW_VALUES:
        return FEW_VALUES + 1
    return len(set(counts) | set(runs(current)[0].tolist()))


def _category_table(
    reference: Mapping[Any, int], current: Mapping[Any, int]
) -> tuple[FloatArray, FloatArray]:
    keys = list(reference) + [k for k in current if k not in reference]
    return (
        np.asarray([reference.get(k, 0) for k in keys], dtype=np.float64),
        np.asarray([current.get(k, 0) for k in keys], dtype=np.float64),
    )


def _chisquare(reference_counts: FloatArray, current_counts: FloatArray) -> stats.HypothesisTest:
    keep = (reference_counts + current_counts) > 0
    return stats.chi2_contingency(np.vstack((reference_counts[keep], current_counts[keep])))


def _on_counts(
    statistic: str, reference_counts: FloatArray, current_counts: FloatArray
) -> tuple[float, float | None]:
    if statistic == "psi":
        return stats.psi(reference_counts, current_counts), None
    if statistic == "jensenshannon":
        return stats.jensenshannon(reference_counts, current_counts), None
    result = _chisquare(reference_counts, current_counts)
    return result.statistic, result.pvalue


def _verdict(
    feature: str,
    *,
    kind: str,
    statistic: str,
    value: float,
    p_value: float | None,
    threshold: float,
    reference_size: int,
    current_size: int,
) -> FeatureDrift:
    drifted = (
        p_value < threshold
        if STATISTICS[statistic].uses_p_value and p_value is not None
        else value >= threshold
    )
    return FeatureDrift(
        feature=feature,
        statistic=statistic,
        value=float(value),
        threshold=float(threshold),
        drifted=bool(drifted),
        kind=kind,
        reference_size=reference_size,
        current_size=current_size,
        p_value=None if p_value is None else float(p_value),
    )


def _choose(
    feature: str,
    kind: str,
    statistics: Mapping[str, str] | None,
    thresholds: Mapping[str, float] | None,
) -> tuple[str | None, float | None]:
    statistic = _lookup(statistics, feature)
    if statistic is not None:
        if statistic not in STATISTICS:
            raise InvalidSpecError(
                f"unknown drift statistic {statistic!r} for feature {feature!r}: use one of "
                + ", ".join(sorted(STATISTICS))
            )
        if kind not in STATISTICS[statistic].kinds:
            raise InvalidSpecError(
                f"statistic {statistic!r} does not apply to the {kind} feature {feature!r}"
            )
    threshold = _lookup(thresholds, feature)
    if threshold is not None and not threshold > 0:
        raise InvalidSpecError(f"threshold of feature {feature!r} must be > 0, not {threshold}")
    return statistic, threshold


def _numeric_drift(
    feature: str,
    reference: _NumericReference,
    current: Column,
    *,
    statistic: str | None,
    threshold: float | None,
    ks_method: str,
) -> FeatureDrift:
    b = current.values
    b.sort()
    if statistic is None:
        statistic = default_statistic("numeric", reference.count, _few_values(reference, b))
    if threshold is None:
        threshold = DEFAULT_THRESHOLDS[statistic]
    p_value: float | None = None
    if statistic == "wasserstein":
        value = reference.wasserstein(b)
    elif statistic == "ks":
        value, p_value = reference.ks(b, ks_method)
    else:
        value, p_value = _on_counts(statistic, *reference.counts_against(b))
    return _verdict(
        feature,
        kind="numeric",
        statistic=statistic,
        value=value,
        p_value=p_value,
        threshold=threshold,
        reference_size=reference.count,
        current_size=b.size,
    )


def _categorical_drift(
    feature: str,
    reference: Mapping[Any, int],
    current: Column,
    statistic: str | None,
    threshold: float | None,
) -> FeatureDrift:
    reference_size = sum(reference.values())
    if statistic is None:
        statistic = default_statistic("categorical", reference_size, 0)
    if threshold is None:
        threshold = DEFAULT_THRESHOLDS[statistic]
    value, p_value = _on_counts(statistic, *_category_table(reference, current.counts))
    return _verdict(
        feature,
        kind="categorical",
        statistic=statistic,
        value=value,
        p_value=p_value,
        threshold=threshold,
        reference_size=reference_size,
        current_size=current.size,
    )


def feature_drift(
    reference: Profile | Any,
    current: Any,
    *,
    feature_names: Sequence[str] | None = None,
    categorical: Collection[str] = (),
    features: Collection[str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    statistics: Mapping[str, str] | None = None,
    ks_method: str = "auto",
) -> list[FeatureDrift]:
    """Drift of each feature of ``current`` against ``reference``. Blocks while computing.

    Args:
        reference: A :class:`Profile` of the training data, or the training data itself
            (exact statistics) in any form ``current`` accepts.
        current: The data to check: a dict of column -> values, a 2-D numpy array, a list of
            rows (as captured requests hold them) or a pandas DataFrame.
        feature_names: Names of the columns of 2-D arrays and rows. Defaults to the profile's
            feature order, or the reference's column names, or "0", "1", ...
        categorical: Columns of a raw reference to treat as categorical though numeric (a
            profile fixes each feature's kind when it is built).
        features: Only these features (default: all of the reference's).
        thresholds: Feature name (or ``"*"``) -> threshold replacing the statistic's default.
        statistics: Feature name (or ``"*"``) -> statistic replacing the default (``ks``,
            ``wasserstein``, ``psi``, ``jensenshannon``, ``chisquare``).
        ks_method: The KS p-value method: ``"auto"`` (exact up to 10,000 values per sample, as
            scipy), ``"exact"`` or ``"asymp"``.

    Returns:
        One :class:`FeatureDrift` per feature, in the reference's feature order. Sizes count
        the values present; missing values are left out of every statistic.

    Raises:
        InvalidSpecError: unreadable data, a feature missing from ``current`` or with no
            value present, an unknown statistic or one that does not apply to the feature, a
            threshold that is not positive.
    """
    if isinstance(reference, Profile):
        names = list(features) if features is not None else reference.feature_names
        unknown = [n for n in names if n not in reference.features]
        if unknown:
            raise InvalidSpecError(
                f"feature(s) {', '.join(map(repr, unknown))} are not in the profile"
            )
        reference_raw: dict[str, Any] = {}
        current_raw = raw_columns(current, feature_names or reference.feature_names)
    else:
        reference_raw = raw_columns(reference, feature_names)
        names = select(reference_raw, features)
        current_raw = raw_columns(current, feature_names or list(reference_raw))
    select(current_raw, names)
    results = []
    # One feature at a time, so memory beyond the inputs is a copy of one column of each.
    for name in names:
        ref: _NumericReference | Mapping[Any, int]
        if isinstance(reference, Profile):
            profile = reference.features[name]
            kind: Kind = profile.kind
            ref = (
                dict(profile.categories)
                if isinstance(profile, CategoricalProfile)
                else _NumericReference(None, profile)
            )
        else:
            forced: Kind | None = "categorical" if name in categorical else None
            reference_column = to_column(name, reference_raw[name], forced)
            if reference_column.size == 0:
                raise InvalidSpecError(f"feature {name!r} has no values in the reference")
            kind = reference_column.kind
            if kind == "numeric":
                reference_column.values.sort()
                ref = _NumericReference(reference_column.values, None)
            else:
                ref = reference_column.counts
        statistic, threshold = _choose(name, kind, statistics, thresholds)
        column = to_column(name, current_raw[name], kind)
        if column.size == 0:
            raise InvalidSpecError(f"feature {name!r} has no values in the current data")
        if isinstance(ref, _NumericReference):
            results.append(
                _numeric_drift(
                    name,
                    ref,
                    column,
                    statistic=statistic,
                    threshold=threshold,
                    ks_method=ks_method,
                )
            )
        else:
            results.append(_categorical_drift(name, ref, column, statistic, threshold))
    return results


def _rows(data: Any, feature_names: Sequence[str] | None) -> int:
    if isinstance(data, Profile):
        return data.rows
    if isinstance(data, np.ndarray):
        return int(data.shape[0])
    if hasattr(data, "shape") and hasattr(data, "columns"):
        return int(data.shape[0])
    raw = raw_columns(data, feature_names)
    return len(next(iter(raw.values()))) if raw else 0


def drift_report(
    endpoint: str,
    reference: Profile | Any,
    current: Any,
    *,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    feature_names: Sequence[str] | None = None,
    **options: Any,
) -> DriftReport:
    """A :class:`DriftReport` of ``current`` (one window of an endpoint's traffic).

    Takes the arguments of :func:`feature_drift`; ``reference_size`` and ``current_size`` of
    the report are row counts (missing values included).

    Raises:
        InvalidSpecError: as :func:`feature_drift`.
    """
    names = feature_names
    if names is None and isinstance(reference, Profile):
        names = reference.feature_names
    results = feature_drift(reference, current, feature_names=feature_names, **options)
    return DriftReport(
        endpoint=endpoint,
        created_at=datetime.now(UTC),
        features=results,
        reference_size=_rows(reference, names),
        current_size=_rows(current, names),
        window_start=window_start,
        window_end=window_end,
    )
