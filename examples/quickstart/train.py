"""Train a churn classifier with scikit-learn, using only the mlport training-script contract.

The same file runs unchanged on every provider: the input arrives in MLPORT_INPUT_TRAIN, the
model goes to MLPORT_MODEL_DIR, hyperparameters come as --key=value arguments (and in
MLPORT_HYPERPARAMETERS), metrics are reported with runtime.log_metric.
"""

from __future__ import annotations

import argparse
import csv

from mlport import runtime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n_estimators", type=int, default=100)
    parser.add_argument("--max_depth", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    with (runtime.input_dir("train") / "churn.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    features = [name for name in rows[0] if name != "churned"]
    x = [[float(row[name]) for name in features] for row in rows]
    y = [int(row["churned"]) for row in rows]
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=args.seed, stratify=y
    )
    print(f"training on {len(x_train)} rows, {len(features)} features")

    model = RandomForestClassifier(
        n_estimators=args.n_estimators, max_depth=args.max_depth, random_state=args.seed
    )
    for step, trees in enumerate(range(20, args.n_estimators + 1, 20)):
        model.set_params(n_estimators=trees, warm_start=True)
        model.fit(x_train, y_train)
        runtime.log_metric("accuracy", accuracy_score(y_test, model.predict(x_test)), step=step)
    runtime.log_metric("auc", roc_auc_score(y_test, model.predict_proba(x_test)[:, 1]))

    saved = runtime.save_model(
        model,
        framework="sklearn",
        signature={"inputs": [{"name": name, "dtype": "float64"} for name in features]},
    )
    print(f"model package written to {saved}")


if __name__ == "__main__":
    main()
