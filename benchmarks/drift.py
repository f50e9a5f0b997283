"""Drift engine: Evidently's data-drift preset, per-column scipy and mlport on the same data.

Data: --rows rows (default 1,000,000) x 20 numeric columns for reference and current, written
once as .npy files; current has drift injected into 5 columns (a shift of a quarter of the
column's std). Each contender runs in a fresh process that loads the same files, so its peak
RSS (from wait4's rusage) is its own:

* evidently       Evidently 0.7 ``Report([DataDriftPreset()])`` in its own venv (.bench/evidently,
                  made from benchmarks/anchors/evidently.txt on first use). With more than 1,000
                  reference rows it scores every column with the normalised Wasserstein distance,
                  threshold 0.1.
* scipy           per column ``scipy.stats.ks_2samp`` and ``scipy.stats.wasserstein_distance``
                  (normalised by ``np.std`` of the reference, as Evidently does).
* mlport          ``mlport.monitoring.feature_drift(reference, current)``: what a monitor runs
                  (its default for these columns is the normalised Wasserstein, threshold 0.1).
* mlport-ks+w     per column ``mlport.monitoring.stats.ks_2samp`` and ``wasserstein_norm``: the
                  same work as the scipy contender.
* mlport-profile  ``feature_drift(Profile.load(...), current)``: the monitor's run-time path; the
                  profile is built beforehand in another process (its time is shown too).

Targets: mlport at least 30x faster than Evidently and 4x faster than per-column scipy, with at
most half Evidently's peak memory; normalised Wasserstein scores within 1e-6 of Evidently's and
the same 5 columns flagged.

    python benchmarks/drift.py [--rows 1000000] [--contenders evidently,scipy,mlport,...]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from anchor_envs import BENCH, ROOT, anchor_venv

COLUMNS = 20
DRIFTED = 5
SHIFT = 0.25
THRESHOLD = 0.1
CONTENDERS = ["evidently", "scipy", "mlport", "mlport-ks+w", "mlport-profile"]


def names() -> list[str]:
    return [f"f{i:02d}" for i in range(COLUMNS)]


def make_data(rows: int, work: Path) -> list[str]:
    """Write reference.npy and current.npy; return the names of the drifted columns."""
    import numpy as np

    rng = np.random.default_rng(20261122)
    scales = rng.uniform(0.5, 5.0, COLUMNS)
    means = rng.uniform(-10, 10, COLUMNS)
    reference = np.empty((rows, COLUMNS))
    current = np.empty((rows, COLUMNS))
    for j in range(COLUMNS):
        # A mix of shapes: normal, lognormal, uniform, bimodal.
        shape = j % 4
        for target in (reference, current):
            if shape == 0:
                target[:, j] = rng.normal(means[j], scales[j], rows)
            elif shape == 1:
                target[:, j] = means[j] + scales[j] * rng.lognormal(0.0, 0.6, rows)
            elif shape == 2:
                target[:, j] = rng.uniform(means[j], means[j] + 4 * scales[j], rows)
            else:
                half = rows // 2
                target[:half, j] = rng.normal(means[j] - scales[j], scales[j] / 3, half)
                target[half:, j] = rng.normal(means[j] + scales[j], scales[j] / 2, rows - half)
    drifted = sorted(rng.choice(COLUMNS, DRIFTED, replace=False).tolist())
    for j in drifted:
        current[:, j] += SHIFT * reference[:, j].std()
    np.save(work / "reference.npy", reference)
    np.save(work / "current.npy", current)
    return [names()[j] for j in drifted]


# --- contenders: each runs in its own process (`drift.py --child NAME WORK`) --------------------


def child_evidently(work: Path) -> dict[str, Any]:
    import numpy as np
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    started = time.perf_counter()
    reference = pd.DataFrame(np.load(work / "reference.npy"), columns=names())
    current = pd.DataFrame(np.load(work / "current.npy"), columns=names())
    loaded = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
    done = time.perf_counter()
    scores: dict[str, float] = {}
    methods = set()
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith("ValueDrift"):
            scores[config["column"]] = float(metric["value"])
            methods.add(config.get("method"))
    return {
        "load_s": loaded - started,
        "compute_s": done - loaded,
        "scores": scores,
        "flagged": sorted(c for c, v in scores.items() if v >= THRESHOLD),
        "method": ", ".join(sorted(map(str, methods))),
    }


def child_scipy(work: Path) -> dict[str, Any]:
    import numpy as np
    from scipy import stats

    started = time.perf_counter()
    reference = np.load(work / "reference.npy")
    current = np.load(work / "current.npy")
    loaded = time.perf_counter()
    scores: dict[str, float] = {}
    ks: dict[str, list[float]] = {}
    for j, name in enumerate(names()):
        result = stats.ks_2samp(reference[:, j], current[:, j])
        ks[name] = [float(result.statistic), float(result.pvalue)]
        distance = stats.wasserstein_distance(reference[:, j], current[:, j])
        scores[name] = float(distance / max(float(np.std(reference[:, j])), 0.001))
    done = time.perf_counter()
    return {
        "load_s": loaded - started,
        "compute_s": done - loaded,
        "scores": scores,
        "ks": ks,
        "flagged": sorted(c for c, v in scores.items() if v >= THRESHOLD),
    }


def child_mlport(work: Path) -> dict[str, Any]:
    import numpy as np

    from mlport.monitoring import feature_drift

    started = time.perf_counter()
    reference = np.load(work / "reference.npy")
    current = np.load(work / "current.npy")
    loaded = time.perf_counter()
    results = feature_drift(reference, current, feature_names=names())
    done = time.perf_counter()
    return {
        "load_s": loaded - started,
        "compute_s": done - loaded,
        "scores": {r.feature: r.value for r in results},
        "flagged": sorted(r.feature for r in results if r.drifted),
        "method": ", ".join(sorted({r.statistic for r in results})),
    }


def child_mlport_ks_w(work: Path) -> dict[str, Any]:
    import numpy as np

    from mlport.monitoring import stats

    started = time.perf_counter()
    reference = np.load(work / "reference.npy")
    current = np.load(work / "current.npy")
    loaded = time.perf_counter()
    scores: dict[str, float] = {}
    ks: dict[str, list[float]] = {}
    for j, name in enumerate(names()):
        result = stats.ks_2samp(reference[:, j], current[:, j])
        ks[name] = [result.statistic, result.pvalue]
        scores[name] = stats.wasserstein_norm(reference[:, j], current[:, j])
    done = time.perf_counter()
    return {
        "load_s": loaded - started,
        "compute_s": done - loaded,
        "scores": scores,
        "ks": ks,
        "flagged": sorted(c for c, v in scores.items() if v >= THRESHOLD),
    }


def child_profile_build(work: Path) -> dict[str, Any]:
    import numpy as np

    from mlport.monitoring import Profile

    started = time.perf_counter()
    reference = np.load(work / "reference.npy")
    loaded = time.perf_counter()
    profile = Profile.build(reference, feature_names=names())
    profile.save(work / "profile.json")
    done = time.perf_counter()
    return {
        "load_s": loaded - started,
        "compute_s": done - loaded,
        "bytes": (work / "profile.json").stat().st_size,
        "wasserstein_error": {
            name: f.wasserstein_error / max(f.std, 0.001)  # type: ignore[union-attr]
            for name, f in profile.features.items()
        },
    }


def child_mlport_profile(work: Path) -> dict[str, Any]:
    import numpy as np

    from mlport.monitoring import Profile, feature_drift

    started = time.perf_counter()
    profile = Profile.load(work / "profile.json")
    current = np.load(work / "current.npy")
    loaded = time.perf_counter()
    results = feature_drift(profile, current)
    done = time.perf_counter()
    return {
        "load_s": loaded - started,
        "compute_s": done - loaded,
        "scores": {r.feature: r.value for r in results},
        "flagged": sorted(r.feature for r in results if r.drifted),
    }


CHILDREN = {
    "evidently": child_evidently,
    "scipy": child_scipy,
    "mlport": child_mlport,
    "mlport-ks+w": child_mlport_ks_w,
    "profile-build": child_profile_build,
    "mlport-profile": child_mlport_profile,
}


def run_child(name: str, work: Path, python: str) -> dict[str, Any]:
    """Run one contender in a fresh process; add its wall time and peak RSS."""
    out = work / f"{name}.json"
    started = time.perf_counter()
    process = subprocess.Popen(
        [python, str(Path(__file__).resolve()), "--child", name, str(work), str(out)],
        cwd=ROOT,
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{name} exited with {process.returncode}")
    result: dict[str, Any] = json.loads(out.read_text())
    result["wall_s"] = wall
    result["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux reports KiB
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--child", nargs=3, metavar=("NAME", "WORK", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, work, out = args.child
        Path(out).write_text(json.dumps(CHILDREN[name](Path(work))))
        return 0

    contenders = args.contenders.split(",")
    unknown = set(contenders) - set(CONTENDERS)
    if unknown:
        parser.error(f"unknown contenders: {', '.join(sorted(unknown))}")
    BENCH.mkdir(exist_ok=True)
    evidently_python = (
        str(anchor_venv("evidently") / "bin" / "python") if "evidently" in contenders else ""
    )
    work = Path(tempfile.mkdtemp(prefix="drift-", dir=BENCH))
    try:
        drifted = make_data(args.rows, work)
        print(
            f"{args.rows:,} rows x {COLUMNS} columns; drift injected into {', '.join(drifted)}",
            flush=True,
        )
        results: dict[str, dict[str, Any]] = {}
        if "mlport-profile" in contenders:
            results["profile-build"] = run_child("profile-build", work, sys.executable)
        for name in contenders:
            python = evidently_python if name == "evidently" else sys.executable
            results[name] = run_child(name, work, python)
            row = results[name]
            print(
                f"{name:15} compute {row['compute_s']:8.2f} s  load {row['load_s']:6.2f} s  "
                f"process {row['wall_s']:8.2f} s  peak RSS {row['peak_rss_mb']:7.0f} MB  "
                f"flagged {','.join(row.get('flagged', []))}",
                flush=True,
            )
        status = report(results, drifted)
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%SZ")
        summary = {"rows": args.rows, "drifted": drifted, "results": results}
        (BENCH / f"drift-{stamp}.json").write_text(json.dumps(summary, indent=2))
        return status
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(results: dict[str, dict[str, Any]], drifted: list[str]) -> int:
    status = 0
    if "profile-build" in results:
        build = results["profile-build"]
        worst = max(build["wasserstein_error"].values())
        print(
            f"\nprofile: built in {build['compute_s']:.2f} s, {build['bytes'] / 1024:.0f} KiB of "
            f"JSON; largest Wasserstein error bound {worst:.1e} (normalised)"
        )
    ours = results.get("mlport")
    print()
    for name, row in results.items():
        if name == "profile-build" or "flagged" not in row:
            continue
        same = row["flagged"] == drifted
        print(f"{name:15} flags the injected columns: {'yes' if same else 'NO'}")
        if name.startswith("mlport") and not same:
            status = 1
    if ours is None:
        return status
    evidently = results.get("evidently")
    if evidently is not None:
        speed = evidently["compute_s"] / ours["compute_s"]
        process = evidently["wall_s"] / ours["wall_s"]
        memory = ours["peak_rss_mb"] / evidently["peak_rss_mb"]
        gap = max(abs(ours["scores"][c] - evidently["scores"][c]) for c in ours["scores"])
        print(
            f"\nvs Evidently: {speed:5.1f}x faster (target >= 30; whole process {process:.1f}x), "
            f"peak RSS {memory:.2f}x (target <= 0.5), largest score difference {gap:.1e} "
            "(target <= 1e-6)"
        )
        if speed < 30 or memory > 0.5 or gap > 1e-6 or ours["flagged"] != evidently["flagged"]:
            status = 1
    scipy = results.get("scipy")
    if scipy is not None:
        speed = scipy["compute_s"] / ours["compute_s"]
        print(f"vs scipy:     {speed:5.1f}x faster (target >= 4)")
        if speed < 4:
            status = 1
        like = results.get("mlport-ks+w")
        if like is not None:
            same_work = scipy["compute_s"] / like["compute_s"]
            ks_gap = max(
                max(abs(a - b) for a, b in zip(like["ks"][c], scipy["ks"][c], strict=True))
                for c in like["ks"]
            )
            w_gap = max(abs(like["scores"][c] - scipy["scores"][c]) for c in like["scores"])
            print(
                f"  KS + Wasserstein per column, same work as scipy: {same_work:.1f}x faster; "
                f"largest KS difference {ks_gap:.1e}, Wasserstein {w_gap:.1e}"
            )
    profile = results.get("mlport-profile")
    if profile is not None:
        gap = max(abs(profile["scores"][c] - ours["scores"][c]) for c in ours["scores"])
        print(
            f"  from the profile: compute {profile['compute_s']:.2f} s, peak RSS "
            f"{profile['peak_rss_mb']:.0f} MB, largest difference to the exact scores {gap:.1e}"
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
