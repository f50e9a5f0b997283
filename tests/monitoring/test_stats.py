"""The drift statistics equal scipy's reference implementations (to 1e-9)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlport.monitoring import stats
from mlport.monitoring._kolmogorov import ks_pvalue, kstwo_sf, smirnov_sf

scipy_stats = pytest.importorskip("scipy.stats")
scipy_distance = pytest.importorskip("scipy.spatial.distance")
scipy_special = pytest.importorskip("scipy.special")

TOLERANCE = 1e-9


def samples(seed: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Pairs of samples: several shapes, ties, equal and unequal, tiny to large sizes."""
    rng = np.random.default_rng(seed)
    return [
        ("normal, same", rng.normal(size=500), rng.normal(size=700)),
        ("normal, shifted", rng.normal(size=800), rng.normal(0.3, 1.0, size=800)),
        ("lognormal", rng.lognormal(size=1200), rng.lognormal(0.1, 1.1, size=950)),
        ("uniform vs beta", rng.random(300), rng.beta(2, 2, size=450)),
        ("heavy tails", rng.standard_t(2, size=2000), rng.standard_t(2, size=1500)),
        ("ties", rng.integers(0, 8, 600).astype(float), rng.integers(0, 9, 400).astype(float)),
        ("many ties", rng.integers(0, 3, 5000).astype(float), rng.integers(0, 3, 7000) * 1.0),
        ("tiny", rng.normal(size=3), rng.normal(size=5)),
        ("one value", np.array([1.5]), rng.normal(size=20)),
        ("identical", np.arange(50.0), np.arange(50.0)),
        ("disjoint", rng.normal(size=40), rng.normal(10, 1, size=60)),
        ("exact limit", rng.normal(size=10_000), rng.normal(0.02, 1.0, size=9_999)),
        ("large, asymptotic", rng.normal(size=30_000), rng.normal(0.01, 1.0, size=20_000)),
        ("large, unbalanced", rng.normal(size=50), rng.normal(0.4, 1.0, size=40_000)),
        ("large, ties", rng.poisson(4, 25_000) * 1.0, rng.poisson(4.1, 12_000) * 1.0),
    ]


CASES = samples(7)
IDS = [name for name, _, _ in CASES]


@pytest.mark.parametrize(("name", "a", "b"), CASES, ids=IDS)
def test_ks_2samp_equals_scipy(name: str, a: np.ndarray, b: np.ndarray) -> None:
    expected = scipy_stats.ks_2samp(a, b)
    got = stats.ks_2samp(a, b)
    assert got.statistic == pytest.approx(expected.statistic, abs=TOLERANCE)
    assert got.pvalue == pytest.approx(expected.pvalue, abs=TOLERANCE)


@pytest.mark.parametrize("method", ["exact", "asymp"])
@pytest.mark.parametrize(("name", "a", "b"), CASES[:8], ids=IDS[:8])
def test_ks_2samp_methods_equal_scipy(name: str, a: np.ndarray, b: np.ndarray, method: str) -> None:
    expected = scipy_stats.ks_2samp(a, b, method=method)
    got = stats.ks_2samp(a, b, method=method)
    assert got.statistic == pytest.approx(expected.statistic, abs=TOLERANCE)
    assert got.pvalue == pytest.approx(expected.pvalue, abs=TOLERANCE)


def test_exact_ks_pvalue_over_a_grid_of_sizes_and_statistics() -> None:
    worst = 0.0
    for n1, n2 in [(5, 5), (7, 3), (40, 60), (200, 200), (999, 1000), (300, 4500)]:
        for d in np.linspace(0.01, 0.99, 23):
            _, ours, _ = ks_pvalue(float(d), n1, n2, "exact")
            reference = _scipy_exact(float(d), n1, n2)
            worst = max(worst, abs(ours - reference))
    assert worst <= TOLERANCE


def _scipy_exact(d: float, n1: int, n2: int) -> float:
    # What ks_2samp does with a statistic d: the exact probability, or "asymp" on the lattice
    # statistic when rounding left the exact one outside [0, 1].
    from scipy.stats._stats_py import _attempt_exact_2kssamp  # type: ignore[import-untyped]

    success, lattice_d, prob = _attempt_exact_2kssamp(n1, n2, math.gcd(n1, n2), d, "two-sided")
    if success:
        return float(prob)
    m, n = sorted([float(n1), float(n2)], reverse=True)
    return float(np.clip(scipy_stats.kstwo.sf(lattice_d, np.round(m * n / (m + n))), 0, 1))


@pytest.mark.parametrize(
    "n", [1, 2, 3, 10, 50, 139, 140, 141, 500, 2_000, 20_000, 100_001, 400_000, 2_000_000]
)
def test_kstwo_sf_equals_scipy(n: int) -> None:
    # Large n spends its time in the Smirnov sum (scipy's and ours): fewer points there.
    points = 60 if n < 50_000 else 16
    xs = np.concatenate((np.geomspace(0.4 / n, 1.0, points), [0.5, 0.49, 0.51, 1 / n, 2 / n]))
    for x in xs:
        assert kstwo_sf(float(x), n) == pytest.approx(
            float(scipy_stats.kstwo.sf(x, n)), abs=TOLERANCE
        ), (n, x)


@pytest.mark.parametrize("n", [2, 5, 10, 100, 1_000, 10_000, 100_000, 2_000_000])
def test_smirnov_sf_equals_scipy(n: int) -> None:
    for x in np.geomspace(1e-4, 0.999, 60 if n < 50_000 else 16):
        assert smirnov_sf(n, float(x)) == pytest.approx(
            float(scipy_special.smirnov(n, x)), abs=TOLERANCE
        ), (n, x)


@pytest.mark.parametrize(("name", "a", "b"), CASES, ids=IDS)
def test_wasserstein_equals_scipy(name: str, a: np.ndarray, b: np.ndarray) -> None:
    expected = scipy_stats.wasserstein_distance(a, b)
    assert stats.wasserstein_distance(a, b) == pytest.approx(expected, rel=1e-12, abs=TOLERANCE)


@pytest.mark.parametrize(("name", "a", "b"), CASES, ids=IDS)
def test_normalised_wasserstein_is_evidentlys(name: str, a: np.ndarray, b: np.ndarray) -> None:
    # Evidently: wasserstein_distance(reference, current) / max(np.std(reference), 0.001)
    expected = scipy_stats.wasserstein_distance(a, b) / max(float(np.std(a)), 0.001)
    assert stats.wasserstein_norm(a, b) == pytest.approx(expected, rel=1e-12, abs=TOLERANCE)


def test_normalised_wasserstein_of_a_constant_reference_uses_the_floor() -> None:
    reference = np.full(2_000, 3.0)
    current = np.full(1_000, 3.002)
    assert stats.wasserstein_norm(reference, current) == pytest.approx(2.0)


def test_a_one_sided_empty_sample_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        stats.ks_2samp([], [1.0])
    with pytest.raises(ValueError, match="empty"):
        stats.wasserstein_distance([1.0], [])


@pytest.mark.parametrize("base", [None, 2.0])
def test_jensenshannon_equals_scipy(base: float | None) -> None:
    rng = np.random.default_rng(3)
    for k in (2, 3, 10, 200):
        p = rng.integers(0, 50, k).astype(float)
        q = rng.integers(0, 50, k).astype(float)
        p[0], q[-1] = 0.0, 0.0
        p[1] += 1
        q[1] += 1
        expected = scipy_distance.jensenshannon(p, q, base)
        assert stats.jensenshannon(p, q, base) == pytest.approx(expected, abs=TOLERANCE)
    assert stats.jensenshannon([1, 0], [0, 1], 2.0) == pytest.approx(1.0)
    assert stats.jensenshannon([3, 1], [6, 2]) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("correction", [True, False])
def test_chi2_contingency_equals_scipy(correction: bool) -> None:
    rng = np.random.default_rng(4)
    for k in (2, 3, 5, 40, 1_000):
        table = rng.integers(1, 200, size=(2, k))
        expected = scipy_stats.chi2_contingency(table, correction=correction)
        got = stats.chi2_contingency(table, correction=correction)
        assert got.statistic == pytest.approx(expected.statistic, rel=1e-12)
        assert got.pvalue == pytest.approx(expected.pvalue, abs=TOLERANCE)
    assert stats.chi2_contingency([[5], [9]]) == (0.0, 1.0)


def test_chisquare_equals_scipy() -> None:
    rng = np.random.default_rng(5)
    for k in (2, 6, 30):
        observed = rng.integers(1, 100, k).astype(float)
        expected = observed.sum() * rng.dirichlet(np.ones(k))
        reference = scipy_stats.chisquare(observed, expected)
        got = stats.chisquare(observed, expected)
        assert got.statistic == pytest.approx(reference.statistic, rel=1e-12)
        assert got.pvalue == pytest.approx(reference.pvalue, abs=TOLERANCE)


def test_chi2_sf_equals_scipy_over_degrees_of_freedom() -> None:
    for dof in (1, 2, 3, 7, 20, 21, 150, 1_001, 20_000, 200_000):
        for x in (1e-3, 0.5, dof * 0.5, dof * 0.9, dof, dof * 1.1, dof * 2.0, dof + 60 * dof**0.5):
            expected = float(scipy_stats.chi2.sf(x, dof))
            assert stats.chi2_sf(x, dof) == pytest.approx(expected, abs=1e-12), (dof, x)


def test_psi_by_hand() -> None:
    reference = [50, 30, 20]
    current = [40, 30, 30]
    r = np.array(reference) / 100
    c = np.array(current) / 100
    assert stats.psi(reference, current) == pytest.approx(float(np.sum((c - r) * np.log(c / r))))
    # An empty bin counts as a share of 1e-4 rather than making PSI infinite.
    value = stats.psi([10, 10], [20, 0])
    assert math.isfinite(value)
    assert value == pytest.approx((1 - 0.5) * math.log(2) + (1e-4 - 0.5) * math.log(1e-4 / 0.5))
