"""The core demo: what mlport does before any provider is involved.

1. A training job spec, validated: a typo is an error that names the field.
2. Portable compute resolved to each cloud's cheapest matching instance type.
3. The unmodified training script run under the mlport training-script contract.
4. The model it wrote turned into a verified model package; tampering is caught.

Run it with `python examples/core_tour.py`. Everything is written under ./.mlport/tour (replaced
on every run).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

from mlport import Code, Compute, InvalidSpecError, TrainingJob, package, runtime
from mlport.compute import CLOUD_CATALOGS, resolve

HERE = Path(__file__).resolve().parent


def make_data(path: Path, rows: int = 2000) -> None:
    rng = random.Random(7)
    with path.open("w") as handle:
        handle.write("tenure,monthly_charges,support_calls,churned\n")
        for _ in range(rows):
            churned = rng.random() < 0.3
            tenure = rng.gauss(8 if churned else 30, 6)
            charges = rng.gauss(85 if churned else 60, 12)
            calls = max(0, rng.gauss(4 if churned else 1, 1.5))
            handle.write(f"{tenure:.2f},{charges:.2f},{calls:.2f},{int(churned)}\n")


def step(title: str) -> None:
    print(f"\n== {title}")


def main() -> None:
    work = Path(".mlport", "tour").resolve()
    shutil.rmtree(work, ignore_errors=True)
    (work / "data").mkdir(parents=True)
    make_data(work / "data" / "train.csv")

    step("1. A spec rejects bad input at construction, naming the field")
    try:
        TrainingJob(
            name="churn-train", code=Code(source_dir=str(HERE / "core_tour_model")), max_runtim="2h"
        )
    except InvalidSpecError as exc:
        print(f"InvalidSpecError: {exc}")
    spec = TrainingJob(
        name="churn-train",
        code=Code(source_dir=str(HERE / "core_tour_model"), entry_point="train.py"),
        inputs={"train": str(work / "data" / "train.csv")},
        hyperparameters={"holdout": 0.25, "seed": 1},
        compute=Compute(cpus=4, memory_gb=16),
        max_runtime="30m",
    )
    print(f"ok: {spec.name}, max_runtime={spec.max_runtime}s")

    step("2. Portable compute, resolved per provider from the dated catalog")
    for provider in CLOUD_CATALOGS:
        row = resolve(spec.compute, provider).row
        assert row is not None
        price = f"${row.price_per_hour:.3f}/h" if row.price_per_hour is not None else "price n/a"
        print(f"{provider:10} {row.key:28} {row.vcpus:g} vCPU {row.memory_gib:g} GiB  {price}")

    step("3. The training script, run under the training-script contract")
    model_dir, input_dir = work / "model", work / "input" / "train"
    model_dir.mkdir()
    input_dir.mkdir(parents=True)
    (input_dir / "train.csv").write_bytes(Path(spec.inputs["train"]).read_bytes())
    env = {
        **os.environ,
        runtime.input_env_name("train"): str(input_dir),
        runtime.MODEL_DIR_ENV: str(model_dir),
        runtime.OUTPUT_DIR_ENV: str(work / "output"),
        runtime.HYPERPARAMETERS_ENV: json.dumps(spec.hyperparameters),
    }
    argv = [
        sys.executable,
        spec.code.entry_point,
        *runtime.hyperparameter_args(spec.hyperparameters),
    ]
    result = subprocess.run(
        argv, cwd=spec.code.source_dir, env=env, capture_output=True, text=True, check=True
    )
    metrics = [m for m in map(runtime.parse_metric_line, result.stdout.splitlines()) if m]
    for metric in metrics:
        print(f"metric {metric['name']} = {metric['value']:.4g}")

    step("4. A verified model package")
    manifest = package.verify(model_dir)
    stored = package.manifest_sha256(model_dir)
    print(
        f"loader={manifest.loader} files={sorted(manifest.files)} manifest sha256={stored[:16]}..."
    )
    (model_dir / "model.json").write_text('{"centroids": "tampered"}')
    try:
        package.verify(model_dir, manifest_sha256=stored)
    except Exception as exc:
        print(f"after tampering: {type(exc).__name__}: {exc}")
    else:
        raise SystemExit("tampering went unnoticed")

    accuracy = next(m["value"] for m in metrics if m["name"] == "accuracy")
    if accuracy < 0.8:
        raise SystemExit(f"demo model is worse than expected: accuracy {accuracy:.3f}")
    print(f"\ndemo ok (files in {work})")


if __name__ == "__main__":
    main()
