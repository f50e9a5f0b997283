"""Baseline profiles: JSON round trip, and drift from a profile equal to drift from the data."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydantic
import pytest

from mlport.monitoring import CategoricalProfile, NumericProfile, Profile, feature_drift
from mlport.monitoring.profile import l1_to_quantiles

scipy_stats = pytest.importorskip("scipy.stats")

Sampler = Callable[[np.random.Generator, int], np.ndarray]

DISTRIBUTIONS: dict[str, Sampler] = {
    "normal": lambda rng, n: rng.normal(3.0, 2.0, n),
    "lognormal": lambda rng, n: rng.lognormal(0.0, 1.0, n),
    "student t(3)": lambda rng, n: rng.standard_t(3, n),
    "uniform": lambda rng, n: rng.random(n),
    "bimodal": lambda rng, n: np.concatenate(
        (rng.normal(-3, 1, n // 2), rng.normal(3, 0.5, n - n // 2))
    ),
    "poisson": lambda rng, n: rng.poisson(30, n).astype(float),
}

# The normalised Wasserstein error bound of a default sketch stays below these on 200,000 rows
# (docs/monitoring.md quotes the figures).
BOUNDS = {
    "normal": 2e-4,
    "lognormal": 4e-4,
    "student t(3)": 8e-4,
    "uniform": 2e-4,
    "bimodal": 2e-4,
    "poisson": 1e-4,
}


def frame(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {name: make(rng, n) for name, make in DISTRIBUTIONS.items()}


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    return frame(np.random.default_rng(11), 200_000)


@pytest.fixture(scope="module")
def profile(reference: dict[str, np.ndarray]) -> Profile:
    return Profile.build(reference)


def test_json_round_trip_is_bit_exact(profile: Profile, tmp_path: Path) -> None:
    again = Profile.from_json(profile.to_json())
    assert again == profile
    path = profile.save(tmp_path / "baseline.json")
    assert Profile.load(path) == profile
    assert json.loads(path.read_text())["format"] == 1


def test_profile_size_does_not_grow_with_the_data(profile: Profile) -> None:
    for feature in profile.features.values():
        assert isinstance(feature, NumericProfile)
        assert feature.values is None
        assert feature.sketch is not None
        assert len(feature.sketch.ranks) <= 2 * profile.sketch_size
    assert len(profile.to_json()) < 200_000


def test_a_damaged_profile_is_refused_naming_the_field(profile: Profile) -> None:
    data = json.loads(profile.to_json())
    data["features"]["normal"]["cont"] = data["features"]["normal"].pop("count")
    with pytest.raises(pydantic.ValidationError, match="count"):
        Profile.from_json(json.dumps(data))


@pytest.mark.parametrize("name", list(DISTRIBUTIONS))
def test_wasserstein_from_the_sketch_is_within_its_stored_bound(
    name: str, reference: dict[str, np.ndarray], profile: Profile
) -> None:
    feature = profile.features[name]
    assert isinstance(feature, NumericProfile)
    bound = feature.wasserstein_error / max(feature.std, 0.001)
    assert bound < BOUNDS[name]
    rng = np.random.default_rng(12)
    for shift, scale, size in [(0.0, 1.0, 5_000), (0.05, 1.0, 50_000), (0.3, 1.4, 200_000)]:
        current = {name: reference[name][:size] * scale + shift * reference[name].std()}
        current[name] = current[name] + rng.normal(0, 1e-3, size)
        exact = feature_drift({name: reference[name]}, current)[0]
        approx = feature_drift(profile, current, features=[name])[0]
        assert exact.statistic == approx.statistic == "wasserstein"
        assert abs(exact.value - approx.value) <= bound + 1e-12


@pytest.mark.parametrize("name", list(DISTRIBUTIONS))
def test_ks_from_the_sketch_is_within_its_stored_bound(
    name: str, reference: dict[str, np.ndarray], profile: Profile
) -> None:
    feature = profile.features[name]
    assert isinstance(feature, NumericProfile)
    assert feature.ks_error < 2.1 / profile.sketch_size
    rng = np.random.default_rng(13)
    current = {name: DISTRIBUTIONS[name](rng, 3_000) * 1.02}
    exact = scipy_stats.ks_2samp(reference[name], current[name]).statistic
    approx = feature_drift(profile, current, features=[name], statistics={"*": "ks"})[0]
    assert abs(approx.value - exact) <= feature.ks_error + 1e-12


def test_decisions_from_the_profile_equal_those_from_the_data(
    reference: dict[str, np.ndarray], profile: Profile
) -> None:
    rng = np.random.default_rng(14)
    current = frame(rng, 20_000)
    current["normal"] = current["normal"] + 1.0
    current["lognormal"] = current["lognormal"] * 1.5
    for statistic in (None, "psi", "jensenshannon", "chisquare"):
        chosen = None if statistic is None else {"*": statistic}
        exact = feature_drift(reference, current, statistics=chosen)
        approx = feature_drift(Profile.from_json(profile.to_json()), current, statistics=chosen)
        assert [f.drifted for f in exact] == [f.drifted for f in approx]
        assert {"normal", "lognormal"} <= {f.feature for f in exact if f.drifted}
        if statistic is not None:
            # Histograms and counts are kept exactly.
            assert [f.value for f in exact] == pytest.approx([f.value for f in approx], abs=1e-12)


def test_small_samples_are_kept_whole_and_give_exact_results() -> None:
    rng = np.random.default_rng(15)
    reference = {"x": rng.normal(size=800), "y": rng.exponential(size=1_000)}
    current = {"x": rng.normal(0.2, 1, 300), "y": rng.exponential(size=900)}
    profile = Profile.from_json(Profile.build(reference).to_json())
    for feature in profile.features.values():
        assert isinstance(feature, NumericProfile)
        assert feature.values is not None
        assert feature.wasserstein_error == 0.0
    for statistic in ("ks", "wasserstein"):
        exact = feature_drift(reference, current, statistics={"*": statistic})
        from_profile = feature_drift(profile, current, statistics={"*": statistic})
        assert exact == from_profile
    ks = scipy_stats.ks_2samp(reference["x"], current["x"])
    result = feature_drift(profile, current)[0]
    assert result.statistic == "ks"
    assert result.p_value == pytest.approx(ks.pvalue, abs=1e-9)


def test_categorical_and_missing_values_are_profiled() -> None:
    reference = {
        "plan": ["basic", "pro", None, "basic", "team", "basic"] * 300,
        "age": [31.0, np.nan, 45.0, 22.0, np.inf, 38.0] * 300,
        "flag": [True, False, True, True, False, True] * 300,
    }
    profile = Profile.build(reference)
    plan = profile.features["plan"]
    assert plan.kind == "categorical"
    assert plan.count == 1_500
    assert plan.missing == 300
    assert plan.categories[0] == ("basic", 900)
    age = profile.features["age"]
    assert isinstance(age, NumericProfile)
    assert (age.count, age.missing) == (1_200, 600)
    assert age.counts == [(22.0, 300), (31.0, 300), (38.0, 300), (45.0, 300)]
    assert profile.features["flag"].kind == "categorical"
    again = Profile.from_json(profile.to_json())
    assert again == profile
    assert again.rows == 1_800


def test_numbers_listed_as_categorical_keep_their_type_through_json() -> None:
    profile = Profile.build({"zip": [1001, 1002, 1001, 1003] * 10}, categorical=["zip"])
    again = Profile.from_json(profile.to_json())
    assert again.features["zip"].kind == "categorical"
    zips = again.features["zip"]
    assert isinstance(zips, CategoricalProfile)
    assert zips.categories == [(1001, 20), (1002, 10), (1003, 10)]


def test_a_feature_without_values_is_refused() -> None:
    from mlport.errors import InvalidSpecError

    with pytest.raises(InvalidSpecError, match="'x' has no values"):
        Profile.build({"x": [np.nan, None, np.nan], "y": [1.0, 2.0, 3.0]})


def brute_force_l1(p: np.ndarray, v: np.ndarray, b: np.ndarray, points: int = 400_000) -> float:
    q = (np.arange(points) + 0.5) / points
    line = np.interp(q, p, v)
    step = b[np.minimum(np.ceil(q * b.size).astype(int) - 1, b.size - 1)]
    return float(np.mean(np.abs(line - step)))


@pytest.mark.parametrize("m", [1, 2, 7, 64, 1_000])
def test_the_quantile_integral_matches_brute_force(m: int) -> None:
    rng = np.random.default_rng(m)
    b = np.sort(rng.normal(size=m))
    # Knots that fall inside steps, on step edges, and cross the steps' levels.
    p = np.concatenate(([0.0], np.sort(rng.random(30)), [0.5, 1.0]))
    p = np.unique(np.concatenate((p, np.arange(1, m) / m if m < 100 else [])))
    v = np.sort(rng.normal(size=p.size))
    assert l1_to_quantiles(p, v, b) == pytest.approx(brute_force_l1(p, v, b), abs=2e-4)
