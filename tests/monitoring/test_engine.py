"""The drift engine: defaults, thresholds, inputs, missing values and reports."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from mlport.errors import InvalidSpecError
from mlport.handles import DriftReport
from mlport.monitoring import Profile, default_statistic, drift_report, feature_drift

scipy_stats = pytest.importorskip("scipy.stats")
scipy_distance = pytest.importorskip("scipy.spatial.distance")


def data(rng: np.random.Generator, n: int, shift: float = 0.0) -> dict[str, Any]:
    return {
        "income": rng.lognormal(10 + shift, 0.5, n),
        "age": rng.normal(40 + 10 * shift, 10, n),
        "plan": rng.choice(["basic", "pro", "team"], n, p=[0.6 - shift / 2, 0.3, 0.1 + shift / 2]),
        "seats": rng.integers(1, 4, n).astype(float),
    }


def test_defaults_follow_the_feature_kind_and_reference_size() -> None:
    assert default_statistic("numeric", 1_001, 100) == "wasserstein"
    assert default_statistic("numeric", 1_000, 100) == "ks"
    assert default_statistic("numeric", 50_000, 3) == "jensenshannon"
    assert default_statistic("numeric", 500, 5) == "chisquare"
    assert default_statistic("categorical", 5_000, 0) == "jensenshannon"
    assert default_statistic("categorical", 999, 0) == "chisquare"


def test_large_reference_uses_wasserstein_and_jensen_shannon() -> None:
    rng = np.random.default_rng(1)
    reference, current = data(rng, 5_000), data(rng, 2_000, shift=0.4)
    results = {f.feature: f for f in feature_drift(reference, current)}
    assert {k: (f.statistic, f.threshold) for k, f in results.items()} == {
        "income": ("wasserstein", 0.1),
        "age": ("wasserstein", 0.1),
        "plan": ("jensenshannon", 0.1),
        "seats": ("jensenshannon", 0.1),
    }
    assert results["income"].drifted and results["age"].drifted and results["plan"].drifted
    assert not results["seats"].drifted
    assert results["plan"].kind == "categorical"
    assert (results["age"].reference_size, results["age"].current_size) == (5_000, 2_000)
    expected = scipy_stats.wasserstein_distance(reference["age"], current["age"]) / np.std(
        reference["age"]
    )
    assert results["age"].value == pytest.approx(expected, rel=1e-12)


def test_small_reference_uses_p_values() -> None:
    rng = np.random.default_rng(2)
    reference, current = data(rng, 800), data(rng, 600, shift=0.4)
    results = {f.feature: f for f in feature_drift(reference, current)}
    assert {k: f.statistic for k, f in results.items()} == {
        "income": "ks",
        "age": "ks",
        "plan": "chisquare",
        "seats": "chisquare",
    }
    ks = scipy_stats.ks_2samp(reference["age"], current["age"])
    assert results["age"].value == pytest.approx(ks.statistic, abs=1e-12)
    assert results["age"].p_value == pytest.approx(ks.pvalue, abs=1e-9)
    assert results["age"].drifted == (ks.pvalue < 0.05)
    plan = results["plan"]
    table = [
        [int(np.sum(reference["plan"] == c)) for c in ("basic", "pro", "team")],
        [int(np.sum(current["plan"] == c)) for c in ("basic", "pro", "team")],
    ]
    chi2 = scipy_stats.chi2_contingency(table)
    assert plan.value == pytest.approx(chi2.statistic, rel=1e-12)
    assert plan.p_value == pytest.approx(chi2.pvalue, abs=1e-9)
    assert plan.drifted


def test_thresholds_and_statistics_per_feature_or_star() -> None:
    rng = np.random.default_rng(3)
    reference, current = data(rng, 5_000), data(rng, 2_000, shift=0.05)
    results = {
        f.feature: f
        for f in feature_drift(
            reference,
            current,
            thresholds={"*": 0.5, "age": 0.001},
            statistics={"plan": "chisquare", "income": "psi"},
        )
    }
    assert results["age"].threshold == 0.001 and results["age"].drifted
    assert results["income"].statistic == "psi" and results["income"].threshold == 0.5
    assert results["plan"].statistic == "chisquare" and results["plan"].threshold == 0.5
    assert results["seats"].threshold == 0.5


def test_jensen_shannon_of_categories_equals_scipy() -> None:
    rng = np.random.default_rng(4)
    reference, current = data(rng, 3_000), data(rng, 3_000, shift=0.2)
    current["plan"][:5] = "free"  # a category the reference never saw
    result = feature_drift(reference, current, features=["plan"])[0]
    categories = ["basic", "pro", "team", "free"]
    p = [np.sum(reference["plan"] == c) for c in categories]
    q = [np.sum(current["plan"] == c) for c in categories]
    assert result.value == pytest.approx(scipy_distance.jensenshannon(p, q), abs=1e-12)


def test_bad_options_are_refused_before_any_work() -> None:
    rng = np.random.default_rng(5)
    reference, current = data(rng, 100), data(rng, 100)
    with pytest.raises(InvalidSpecError, match="unknown drift statistic 'kl'"):
        feature_drift(reference, current, statistics={"*": "kl"})
    with pytest.raises(InvalidSpecError, match="does not apply to the categorical feature 'plan'"):
        feature_drift(reference, current, statistics={"plan": "ks"})
    with pytest.raises(InvalidSpecError, match="must be > 0"):
        feature_drift(reference, current, thresholds={"age": 0})
    with pytest.raises(InvalidSpecError, match="'height'"):
        feature_drift(reference, current, features=["height"])
    del current["age"]
    with pytest.raises(InvalidSpecError, match="'age' not in the data"):
        feature_drift(reference, current)


def test_inputs_arrays_rows_dicts_and_frames_agree() -> None:
    rng = np.random.default_rng(6)
    reference = rng.normal(size=(3_000, 3))
    current = rng.normal(0.1, 1.0, size=(1_500, 3))
    names = ["a", "b", "c"]
    from_arrays = feature_drift(reference, current, feature_names=names)
    from_dicts = feature_drift(
        {n: reference[:, i] for i, n in enumerate(names)},
        {n: current[:, i].tolist() for i, n in enumerate(names)},
    )
    # Captured requests hold rows in feature order; the profile supplies the names.
    profile = Profile.build(reference, feature_names=names)
    from_rows = feature_drift(profile, current.tolist())
    assert [f.feature for f in from_arrays] == names
    assert from_arrays == from_dicts
    assert [f.drifted for f in from_rows] == [f.drifted for f in from_arrays]
    default_names = feature_drift(reference, current)
    assert [f.feature for f in default_names] == ["0", "1", "2"]


def test_pandas_frames_with_categories_and_missing_values() -> None:
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(7)
    reference = pd.DataFrame(data(rng, 4_000))
    current = pd.DataFrame(data(rng, 2_000))
    current["plan"] = current["plan"].astype("category")
    current.loc[:99, "age"] = np.nan
    current["seats"] = current["seats"].astype("Int64")
    current.loc[:9, "seats"] = pd.NA
    results = {f.feature: f for f in feature_drift(reference, current)}
    assert results["age"].current_size == 1_900
    assert results["seats"].current_size == 1_990
    assert results["plan"].kind == "categorical"
    assert not any(f.drifted for f in results.values())
    plain = feature_drift(reference.to_dict("list"), current.astype(object).to_dict("list"))
    assert [f.value for f in plain] == pytest.approx([f.value for f in results.values()])


def test_missing_values_are_dropped_and_counted_out() -> None:
    reference = {"x": [1.0, 2.0, None, 4.0, 5.0, float("nan"), 7.0] * 50}
    current = {"x": [1.0, float("inf"), 3.0, 4.0] * 40}
    result = feature_drift(reference, current)[0]
    assert (result.reference_size, result.current_size) == (250, 120)
    expected = scipy_stats.ks_2samp(
        [v for v in reference["x"] if v is not None and v == v], [1.0, 3.0, 4.0] * 40
    )
    assert result.p_value == pytest.approx(expected.pvalue, abs=1e-9)


def test_a_feature_with_nothing_present_is_an_error() -> None:
    with pytest.raises(InvalidSpecError, match="'x' has no values in the current data"):
        feature_drift({"x": [1.0, 2.0, 3.0]}, {"x": [None, None]})


def test_numbers_can_be_declared_categorical() -> None:
    reference = {"zip": [10001, 10002, 10003, 10004, 10005, 10006] * 200}
    current = {"zip": [10001, 10002, 10003, 10004, 10005, 10007] * 100}
    result = feature_drift(reference, current, categorical=["zip"])[0]
    assert result.kind == "categorical"
    assert result.statistic == "jensenshannon"
    assert result.drifted
    profile = Profile.from_json(Profile.build(reference, categorical=["zip"]).to_json())
    assert feature_drift(profile, current)[0] == result


def test_strings_where_the_reference_has_numbers_are_refused() -> None:
    with pytest.raises(InvalidSpecError, match="numeric in the reference"):
        feature_drift({"x": [1.0, 2.0, 3.0]}, {"x": ["a", "b"]})


def test_drift_report_for_an_endpoint_window() -> None:
    rng = np.random.default_rng(8)
    reference, current = data(rng, 5_000), data(rng, 2_000, shift=0.4)
    start = datetime(2026, 11, 22, 10, tzinfo=UTC)
    end = datetime(2026, 11, 22, 11, tzinfo=UTC)
    report = drift_report(
        "churn-api",
        Profile.build(reference),
        current,
        window_start=start,
        window_end=end,
        thresholds={"seats": 0.5},
    )
    assert isinstance(report, DriftReport)
    assert report.endpoint == "churn-api"
    assert (report.reference_size, report.current_size) == (5_000, 2_000)
    assert (report.window_start, report.window_end) == (start, end)
    assert report.drifted
    assert report.drifted_features == ["income", "age", "plan"]
    assert json.loads(report.to_json())["features"][3]["threshold"] == 0.5


def test_engine_runs_without_scipy_and_import_is_light() -> None:
    code = (
        "import sys, json\n"
        "import mlport.monitoring\n"
        "light = 'numpy' not in sys.modules\n"
        "import numpy as np\n"
        "from mlport.monitoring import Profile, feature_drift\n"
        "rng = np.random.default_rng(0)\n"
        "ref = rng.normal(size=(2000, 2)); cur = rng.normal(size=(500, 2))\n"
        "feature_drift(ref, cur); feature_drift(ref[:500], cur)\n"
        "feature_drift(Profile.build(ref), cur, statistics={'*': 'ks'})\n"
        "feature_drift({'c': ['a', 'b'] * 50}, {'c': ['a', 'a'] * 50})\n"
        "print(json.dumps([light, 'scipy' in sys.modules, 'pandas' in sys.modules]))\n"
    )
    light, scipy_loaded, pandas_loaded = json.loads(
        subprocess.check_output([sys.executable, "-c", code])
    )
    assert light
    assert not scipy_loaded
    assert not pandas_loaded
