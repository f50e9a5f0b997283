"""Drift statistics in numpy, equal to scipy's reference implementations.

Each function takes plain arrays (or counts) and returns floats. The engine
(:mod:`mlport.monitoring.engine`) calls the ``*_sorted`` forms so that a column is sorted once
whatever it computes; the others sort for you.

================================  ==========================================================
function                          equals (tested to 1e-9 on many samples)
================================  ==========================================================
:func:`ks_2samp`                  ``scipy.stats.ks_2samp(a, b)``, ``method="auto"``: exact
                                  null distribution when both samples have at most 10,000
                                  values, else scipy's "asymp" (``kstwo.sf`` with
                                  ``n = round(n1 n2 / (n1 + n2))``); see ``_kolmogorov``
:func:`wasserstein_distance`      ``scipy.stats.wasserstein_distance(a, b)``
:func:`wasserstein_norm`          Evidently's normed Wasserstein: the above divided by
                                  ``max(np.std(reference), 0.001)`` (population std,
                                  ``ddof=0``)
:func:`jensenshannon`             ``scipy.spatial.distance.jensenshannon(p, q, base)``
:func:`chi2_contingency`          ``scipy.stats.chi2_contingency(table, correction)``
:func:`chisquare`                 ``scipy.stats.chisquare(observed, expected)``
:func:`psi`                       no scipy counterpart: ``sum((c - r) * ln(c / r))`` over
                                  shares, empty shares replaced by 1e-4
================================  ==========================================================

Nothing here imports scipy.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from mlport.monitoring._kolmogorov import ks_pvalue

__all__ = [
    "PSI_FLOOR",
    "HypothesisTest",
    "chi2_contingency",
    "chi2_sf",
    "chisquare",
    "jensenshannon",
    "ks_2samp",
    "ks_2samp_sorted",
    "ks_statistic_sorted",
    "psi",
    "std_floor",
    "wasserstein_distance",
    "wasserstein_distance_sorted",
    "wasserstein_norm",
]

FloatArray = npt.NDArray[np.float64]

PSI_FLOOR = 1e-4
"""Share given to an empty bin or category in PSI, which would otherwise be infinite."""

_STD_FLOOR = 0.001


class HypothesisTest(NamedTuple):
    """A statistic and its p-value."""

    statistic: float
    pvalue: float


def _sample(values: Any, name: str) -> FloatArray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    return array


def ks_2samp(reference: Any, current: Any, *, method: str = "auto") -> HypothesisTest:
    """Two-sample, two-sided Kolmogorov-Smirnov test.

    Args:
        reference: First sample (1-D, no NaN).
        current: Second sample.
        method: ``"auto"``, ``"exact"`` or ``"asymp"``, as in scipy.

    Returns:
        The largest distance between the two empirical CDFs and its p-value.

    Raises:
        ValueError: a sample is empty or the method is unknown.
    """
    a = np.sort(_sample(reference, "reference"))
    b = np.sort(_sample(current, "current"))
    return ks_2samp_sorted(a, b, method=method)


def ks_2samp_sorted(a: FloatArray, b: FloatArray, *, method: str = "auto") -> HypothesisTest:
    """:func:`ks_2samp` on two samples already sorted ascending."""
    d = ks_statistic_sorted(a, b)
    statistic, pvalue, _ = ks_pvalue(d, a.size, b.size, method)
    return HypothesisTest(float(statistic), float(pvalue))


def ks_statistic_sorted(a: FloatArray, b: FloatArray) -> float:
    """``sup |F_a - F_b|`` of two sorted samples, bit for bit as scipy computes it."""
    n1, n2 = a.size, b.size
    # F_a - F_b peaks at a value of a (and F_b - F_a at a value of b); at a run of ties the
    # last member carries the true F, the others give smaller differences.
    above = np.arange(1, n1 + 1) / n1 - np.searchsorted(b, a, side="right") / n2
    below = np.arange(1, n2 + 1) / n2 - np.searchsorted(a, b, side="right") / n1
    return float(max(above.max(), below.max(), 0.0))


def wasserstein_distance(reference: Any, current: Any) -> float:
    """Wasserstein-1 (earth mover's) distance between two samples.

    Raises:
        ValueError: a sample is empty.
    """
    a = np.sort(_sample(reference, "reference"))
    b = np.sort(_sample(current, "current"))
    return wasserstein_distance_sorted(a, b)


def wasserstein_distance_sorted(a: FloatArray, b: FloatArray) -> float:
    """:func:`wasserstein_distance` of two sorted samples, as the L1 distance of their
    quantile functions (no merge sort of the two samples)."""
    n1, n2 = a.size, b.size
    if n1 == n2:
        return float(np.abs(a - b).sum() / n1)
    # Quantile functions step at i/n1 and j/n2. In units of 1/lcm those are multiples of
    # s = n2/g and t = n1/g; both progressions are merged in closed form.
    g = math.gcd(n1, n2)
    s, t = n2 // g, n1 // g
    lcm = n1 * s
    i = np.arange(1, n1 + 1, dtype=np.int64)
    j = np.arange(1, n2 + 1, dtype=np.int64)
    steps = np.empty(n1 + n2, dtype=np.int64)
    steps[(i - 1) + (i * s - 1) // t] = i * s
    steps[(j - 1) + (j * t) // s] = j * t
    widths = np.diff(steps, prepend=0)
    ia = (steps + s - 1) // s - 1
    ib = (steps + t - 1) // t - 1
    return float(np.dot(widths.astype(np.float64), np.abs(a[ia] - b[ib])) / lcm)


def wasserstein_norm(reference: Any, current: Any) -> float:
    """Wasserstein-1 distance divided by the reference's standard deviation (Evidently's
    "normed Wasserstein"): ``W1 / max(np.std(reference), 0.001)``.

    Raises:
        ValueError: a sample is empty.
    """
    a = np.sort(_sample(reference, "reference"))
    b = np.sort(_sample(current, "current"))
    return wasserstein_distance_sorted(a, b) / std_floor(float(np.std(a)))


def std_floor(std: float) -> float:
    """The normaliser of :func:`wasserstein_norm`: the std, but at least 0.001 (Evidently's
    floor, so a constant reference column gives a finite score)."""
    return max(std, _STD_FLOOR)


def _rel_entr(x: FloatArray, y: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = x * np.log(x / y)
    out = np.where((x == 0) & (y >= 0), 0.0, out)
    return np.where((x > 0) & (y > 0) | ((x == 0) & (y >= 0)), out, np.inf)


def jensenshannon(p: Any, q: Any, base: float | None = None) -> float:
    """Jensen-Shannon distance (the square root of the divergence) of two count or share
    vectors over the same bins; natural log unless ``base`` is given.

    Raises:
        ValueError: the vectors differ in length or one sums to zero.
    """
    pa = np.asarray(p, dtype=np.float64)
    qa = np.asarray(q, dtype=np.float64)
    if pa.shape != qa.shape:
        raise ValueError(f"p and q differ in shape: {pa.shape} and {qa.shape}")
    if pa.sum() <= 0 or qa.sum() <= 0:
        raise ValueError("p and q must each have a positive sum")
    pa = pa / np.sum(pa)
    qa = qa / np.sum(qa)
    m = (pa + qa) / 2.0
    js = float(np.sum(_rel_entr(pa, m)) + np.sum(_rel_entr(qa, m)))
    if base is not None:
        js /= math.log(base)
    return math.sqrt(js / 2.0)


def psi(reference_counts: Any, current_counts: Any) -> float:
    """Population stability index of two count vectors over the same bins or categories.

    ``sum((c - r) * ln(c / r))`` over the shares ``r`` and ``c``; a share of 0 becomes
    :data:`PSI_FLOOR` (1e-4) so a bin empty on one side adds a large but finite term.

    Raises:
        ValueError: the vectors differ in length or one sums to zero.
    """
    r = np.asarray(reference_counts, dtype=np.float64)
    c = np.asarray(current_counts, dtype=np.float64)
    if r.shape != c.shape:
        raise ValueError(f"counts differ in shape: {r.shape} and {c.shape}")
    if r.sum() <= 0 or c.sum() <= 0:
        raise ValueError("counts must each have a positive sum")
    r = np.maximum(r / r.sum(), PSI_FLOOR)
    c = np.maximum(c / c.sum(), PSI_FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))


def chisquare(observed: Any, expected: Any) -> HypothesisTest:
    """Pearson's goodness-of-fit test of ``observed`` counts against ``expected`` counts.

    Raises:
        ValueError: the sums differ (relative 1e-8) or the shapes differ.
    """
    obs = np.asarray(observed, dtype=np.float64)
    exp = np.asarray(expected, dtype=np.float64)
    if obs.shape != exp.shape:
        raise ValueError(f"observed and expected differ in shape: {obs.shape}, {exp.shape}")
    if not math.isclose(obs.sum(), exp.sum(), rel_tol=1e-8):
        raise ValueError("observed and expected frequencies must have the same sum")
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic = float(np.sum((obs - exp) ** 2 / exp))
    return HypothesisTest(statistic, chi2_sf(statistic, obs.size - 1))


def chi2_contingency(table: Any, correction: bool = True) -> HypothesisTest:
    """Pearson's chi-square test of independence of a contingency table.

    With two samples as the rows and categories as the columns this is the test of
    homogeneity: do both samples come from the same categorical distribution? With one
    degree of freedom and ``correction`` Yates' continuity correction is applied, as in scipy.

    Raises:
        ValueError: negative counts, or a row or column summing to zero.
    """
    observed = np.asarray(table, dtype=np.float64)
    if observed.ndim != 2 or observed.size == 0:
        raise ValueError("table must be a non-empty 2-D array of counts")
    if np.any(observed < 0):
        raise ValueError("counts must be nonnegative")
    total = observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / total
    if np.any(expected == 0):
        raise ValueError("a row or column of the table sums to zero")
    dof = (observed.shape[0] - 1) * (observed.shape[1] - 1)
    if dof == 0:
        return HypothesisTest(0.0, 1.0)
    if dof == 1 and correction:
        diff = expected - observed
        observed = observed + np.minimum(0.5, np.abs(diff)) * np.sign(diff)
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    return HypothesisTest(statistic, chi2_sf(statistic, dof))


def chi2_sf(x: float, dof: int) -> float:
    """Survival function of the chi-square distribution: ``Q(dof / 2, x / 2)``."""
    if dof <= 0:
        return math.nan
    if math.isnan(x):
        return math.nan
    if x <= 0:
        return 1.0
    if math.isinf(x):
        return 0.0
    return _gammaincc(dof / 2.0, x / 2.0)


def _gammaincc(a: float, x: float) -> float:
    # Regularised upper incomplete gamma: power series of P below a + 1, Lentz's continued
    # fraction for Q above; the prefactor x^a e^-x / Gamma(a) is taken in logs.
    log_prefactor = _log_gamma_prefactor(a, x)
    if x < a + 1.0:
        term = 1.0 / a
        total = term
        ap = a
        for _ in range(100_000):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-17:
                break
        return min(max(1.0 - total * math.exp(log_prefactor), 0.0), 1.0)
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for k in range(1, 100_000):
        an = -k * (k - a)
        b += 2.0
        d = an * d + b
        if abs(d) < tiny:
            d = tiny
        c = b + an / c
        if abs(c) < tiny:
            c = tiny
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return min(max(math.exp(log_prefactor) * h, 0.0), 1.0)


def _log_gamma_prefactor(a: float, x: float) -> float:
    # log(x^a e^-x / Gamma(a)). For large a, lgamma's rounding (about 1e-16 of a log a) would
    # dominate, so Stirling's series is used and a log(x/a) + a - x is formed with log1p.
    if a < 10:
        return a * math.log(x) - x - math.lgamma(a)
    u = (x - a) / a
    r = 1.0 / a
    r2 = r * r
    stirling = r * (1 / 12 - r2 * (1 / 360 - r2 * (1 / 1260 - r2 * (1 / 1680 - r2 / 1188))))
    return a * (math.log1p(u) - u) + 0.5 * math.log(a) - 0.5 * math.log(2 * math.pi) - stirling
