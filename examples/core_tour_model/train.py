"""A churn model trained with the standard library only: a nearest-centroid classifier.

It follows the mlport training-script contract, so the same file runs unchanged on every
provider: inputs arrive in MLPORT_INPUT_<NAME>, the model goes to MLPORT_MODEL_DIR, metrics are
reported with mlport.runtime.log_metric.
"""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

from mlport import runtime


def load(path: Path) -> tuple[list[str], list[list[float]], list[int]]:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    features = [name for name in rows[0] if name != "churned"]
    x = [[float(row[name]) for name in features] for row in rows]
    y = [int(row["churned"]) for row in rows]
    return features, x, y


def main() -> None:
    hps = runtime.hyperparameters()
    holdout = float(hps.get("holdout", 0.2))
    features, x, y = load(runtime.input_dir("train") / "train.csv")
    order = list(range(len(x)))
    random.Random(int(hps.get("seed", 0))).shuffle(order)
    cut = int(len(order) * (1 - holdout))
    fit, test = order[:cut], order[cut:]

    centroids = {}
    for label in (0, 1):
        members = [x[i] for i in fit if y[i] == label]
        centroids[label] = [sum(col) / len(members) for col in zip(*members, strict=True)]

    def predict(row: list[float]) -> int:
        return min(centroids, key=lambda label: math.dist(row, centroids[label]))

    accuracy = sum(predict(x[i]) == y[i] for i in test) / len(test)
    runtime.log_metric("accuracy", accuracy)
    runtime.log_metric("train_rows", len(fit))

    out = runtime.model_dir()
    (out / "model.json").write_text(json.dumps({"features": features, "centroids": centroids}))
    runtime.write_manifest(
        out,
        framework="python",
        framework_version=None,
        loader="custom",
        executes_code_on_load=True,  # a custom loader is code: verify hashes before loading
        signature={"inputs": [{"name": name, "dtype": "float64"} for name in features]},
        lineage={"hyperparameters": hps},
    )
    print(f"trained on {len(fit)} rows, accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
