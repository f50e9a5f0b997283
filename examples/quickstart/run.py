"""The quickstart: train, register, inspect, serve, monitor and batch-predict a model on the
embedded on-prem default.

    make demo                       # sets everything up and runs this
    python examples/quickstart/run.py

Everything lands in ./.mlport: the job's folder, the MLflow registry (open it with
`mlflow ui --backend-store-uri sqlite:///.mlport/mlflow.db`), the cached environments.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import mlport
from mlport import Code, Compute, TrainingJob

HERE = Path(__file__).resolve().parent


def make_data(path: Path, rows: int = 3000, seed: int = 7) -> Path:
    """A synthetic churn table: short tenure, high charges and many support calls churn more."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["tenure", "monthly_charges", "support_calls", "contract_months", "churned"])
        for _ in range(rows):
            tenure = rng.uniform(0, 72)
            charges = rng.uniform(20, 120)
            calls = rng.randint(0, 8)
            contract = rng.choice([1, 12, 24])
            risk = 1.5 - tenure / 24 + charges / 60 + calls / 3 - contract / 12
            churned = int(rng.random() < 1 / (1 + 2.718 ** (-2 * risk)))
            out.writerow([f"{tenure:.1f}", f"{charges:.2f}", calls, contract, churned])
    return path


def make_rows(
    count: int,
    *,
    tenure: tuple[float, float] = (0, 72),
    charges: tuple[float, float] = (20, 120),
    seed: int = 5,
) -> list[list[float]]:
    """Rows of model inputs (tenure, monthly_charges, support_calls, contract_months)."""
    rng = random.Random(seed)
    return [
        [
            round(rng.uniform(*tenure), 1),
            round(rng.uniform(*charges), 2),
            rng.randint(0, 8),
            rng.choice([1, 12, 24]),
        ]
        for _ in range(count)
    ]


def make_customers(path: Path, rows: int = 5000, seed: int = 11) -> Path:
    """Customers to score, each with an id, in the columns the model was trained on."""
    rng = random.Random(seed)
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(
            ["customer_id", "tenure", "monthly_charges", "support_calls", "contract_months"]
        )
        for number in range(rows):
            out.writerow(
                [
                    f"c{number:05d}",
                    f"{rng.uniform(0, 72):.1f}",
                    f"{rng.uniform(20, 120):.2f}",
                    rng.randint(0, 8),
                    rng.choice([1, 12, 24]),
                ]
            )
    return path


def main() -> None:
    ml = mlport.connect()
    print(f"connected: {ml}")
    data = make_data(Path(".mlport", "data", "churn.csv"))

    job = ml.training.submit(
        TrainingJob(
            base_name="quickstart",
            code=Code(source_dir=str(HERE), entry_point="train.py"),
            inputs={"train": str(data)},
            hyperparameters={"n_estimators": 100, "max_depth": 6},
            compute=Compute(cpus=1),
            max_runtime="10m",
        )
    )
    print(f"submitted {job.name}")
    job.wait(logs=True)

    version = ml.registry.register("churn", job)
    ml.registry.set_stage("churn", version.version, "staging")
    version = ml.registry.get("churn", "staging")
    lineage = version.lineage
    print("\nregistered model")
    print(f"  name/version : {version.name} v{version.version} ({version.stage})")
    print(f"  uri          : {version.uri}")
    print(f"  metrics      : {json.dumps({k: round(v, 4) for k, v in version.metrics.items()})}")
    print(f"  package sha  : {version.package_sha256}")
    print(f"  code sha256  : {lineage.get('code_sha256')}")
    print(f"  input sha256 : {json.dumps(lineage.get('inputs'))}")
    environment = lineage.get("environment", {})
    sklearn = next(
        (p for p in environment.get("packages", []) if p.startswith("scikit-learn==")), ""
    )
    print(f"  environment  : python {environment.get('python')} {sklearn}")
    print(f"  job          : {lineage.get('job')} on {lineage.get('job_provider')}")

    endpoint = ml.endpoints.deploy("churn-api", version, capture_percent=100)
    rows = [[3.0, 99.0, 6, 1], [60.0, 25.0, 0, 24], [24.0, 70.0, 2, 12]]
    served = endpoint.predict(rows)
    own = own_predictions(ml, version, rows)
    print(f"\nendpoint {endpoint.name} is {endpoint.status.value} at {endpoint.url}")
    print(f"  served predictions : {served}")
    print(f"  the model's own    : {own}")
    if served != own:
        raise SystemExit("the endpoint and the model disagree")

    # Drift: watch the endpoint against the training data, then send it customers who are
    # newer and pay more than the ones it was trained on.
    ml.monitoring.enable("churn-api", baseline=str(data), schedule=None)
    for _ in range(10):
        endpoint.predict(make_rows(100, tenure=(0, 24), charges=(50, 150)))
    report = ml.monitoring.run("churn-api")
    print(f"\ndrift report on {report.current_size} captured rows")
    for feature in report.features:
        verdict = "DRIFTED" if feature.drifted else "ok"
        print(
            f"  {feature.feature:16} {feature.statistic:22} {feature.value:8.4f} "
            f"(threshold {feature.threshold:g})  {verdict}"
        )
    print(f"  drifted features : {', '.join(report.drifted_features) or 'none'}")
    print(f"  HTML report      : {report.report_uri}")
    ml.endpoints.delete("churn-api")
    print("  endpoint deleted (its server process stopped, its monitor disabled)")

    # Batch prediction: a file of customers, predicted in chunks by a job of its own.
    customers = make_customers(Path(".mlport", "data", "customers.csv"))
    batch = ml.endpoints.batch_predict(
        version, input=customers, output=Path(".mlport", "predictions"), id_column="customer_id"
    )
    batch.wait()
    output = Path(batch.output_uri.removeprefix("file://")) if batch.output_uri else None
    print(f"\nbatch job {batch.name}: {batch.metrics['rows']:.0f} rows predicted into {output}")
    if output is not None:
        with (output / "customers.predictions.csv").open() as handle:
            print("  " + "  ".join(line.strip() for line in list(handle)[:4]))


def own_predictions(
    ml: mlport.Connection, version: mlport.ModelVersion, rows: list[list[float]]
) -> list[int]:
    """Predict with the registered model itself, after verifying the downloaded package."""
    import tempfile

    from mlport.serving.loaders import load

    with tempfile.TemporaryDirectory() as scratch:
        folder = ml.registry.download(version, Path(scratch) / "model")
        model = load(folder, manifest_sha256=version.package_sha256)
        return [int(value) for value in model.predict(model.validate(rows))]


if __name__ == "__main__":
    main()
