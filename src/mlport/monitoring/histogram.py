"""Histograms for drift reports: where a feature's reference and current values fall.

These feed the charts of :meth:`mlport.handles.DriftReport.to_html`; the drift statistics never
use them (the engine bins on the reference's deciles, see :mod:`mlport.monitoring.engine`).

- A numeric feature whose reference has at most 20 distinct values, with at most
  ``max_categories`` values in reference and current together, is shown value by value.
- Any other numeric feature gets ``bins`` equal-width bins over the range of both sides. The
  reference's shares come from its whole sample when the profile keeps it, else from the
  profile's quantile sketch (its CDF, exact at the knots and linear between them).
- A categorical feature shows its ``max_categories - 1`` most frequent categories (reference
  and current counted together) and the rest as ``"(other)"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from mlport.handles import DriftHistogram
from mlport.monitoring._data import to_column
from mlport.monitoring.profile import CategoricalProfile, NumericProfile, cdf_at

__all__ = ["OTHER", "feature_histogram"]

OTHER = "(other)"
BINS = 20
MAX_CATEGORIES = 20

FloatArray = npt.NDArray[np.float64]


def feature_histogram(
    reference: NumericProfile | CategoricalProfile,
    current: Any,
    *,
    name: str = "feature",
    bins: int = BINS,
    max_categories: int = MAX_CATEGORIES,
) -> DriftHistogram | None:
    """The reference's and the current data's shares per bin or category of one feature.

    Args:
        reference: The feature's baseline profile (``Profile.features[name]``).
        current: The feature's current values (a list, array or pandas Series); missing values
            are left out, as in the statistics.
        name: The feature's name, for error messages.
        bins: Bins of a numeric feature shown as a range.
        max_categories: Cells at most when categories (or few values) are shown.

    Returns:
        The histogram, or None when ``current`` has no value present.

    Raises:
        InvalidSpecError: current values of the wrong kind (strings for a numeric feature).
    """
    column = to_column(name, current, reference.kind)
    if column.size == 0:
        return None
    if isinstance(reference, CategoricalProfile):
        return _categories(dict(reference.categories), column.counts, max_categories)
    values = column.values
    values.sort()
    if reference.counts is not None:
        current_values, current_counts = np.unique(values, return_counts=True)
        keys = sorted(
            {value for value, _ in reference.counts} | set(current_values.tolist()),
        )
        if len(keys) <= max_categories:
            ref = dict(reference.counts)
            cur = dict(zip(current_values.tolist(), current_counts.tolist(), strict=True))
            return DriftHistogram(
                categories=[f"{key:g}" for key in keys],
                reference=_shares([ref.get(key, 0) for key in keys]),
                current=_shares([cur.get(key, 0) for key in keys]),
            )
    return _bins(reference, values, bins)


def _shares(counts: Any) -> list[float]:
    total = float(np.sum(counts))
    return [float(c) / total if total else 0.0 for c in counts]


def _bins(reference: NumericProfile, current: FloatArray, bins: int) -> DriftHistogram:
    low = min(reference.min, float(current[0]))
    high = max(reference.max, float(current[-1]))
    if high <= low:
        high = low + 1.0  # one value on both sides: one bin around it
        bins = 1
    edges = np.linspace(low, high, bins + 1)
    sample = reference.sorted_values
    if sample is not None:
        reference_shares = _shares(np.histogram(sample, edges)[0])
    else:
        # The sketch's CDF just before each edge; the last bin is closed, so its end is F(high),
        # which is 1 (high is at least the reference's maximum).
        _, before = cdf_at(reference.cdf_knots, edges)
        cumulative = np.append(before[:-1], 1.0)
        cumulative[0] = 0.0
        reference_shares = np.clip(np.diff(cumulative), 0.0, None).tolist()
    return DriftHistogram(
        edges=edges.tolist(),
        reference=reference_shares,
        current=_shares(np.histogram(current, edges)[0]),
    )


def _categories(
    reference: Mapping[Any, int], current: Mapping[Any, int], max_categories: int
) -> DriftHistogram:
    keys = list(reference) + [k for k in current if k not in reference]
    total = {k: reference.get(k, 0) + current.get(k, 0) for k in keys}
    ordered = sorted(keys, key=lambda k: (-total[k], str(k)))
    shown = ordered if len(ordered) <= max_categories else ordered[: max_categories - 1]
    rest = ordered[len(shown) :]
    labels = [str(k) for k in shown]
    ref_counts = [reference.get(k, 0) for k in shown]
    cur_counts = [current.get(k, 0) for k in shown]
    if rest:
        labels.append(OTHER)
        ref_counts.append(sum(reference.get(k, 0) for k in rest))
        cur_counts.append(sum(current.get(k, 0) for k in rest))
    return DriftHistogram(
        categories=labels, reference=_shares(ref_counts), current=_shares(cur_counts)
    )
