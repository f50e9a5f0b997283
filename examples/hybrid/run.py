"""Train, register, deploy, predict and monitor with one script, on any profile of mlport.toml.

    python examples/hybrid/run.py --profile hybrid --local-aws

``hybrid`` trains on-prem and registers, serves and monitors on SageMaker; ``local`` does
everything on-prem; ``sagemaker`` everything on SageMaker. Only the profile name differs.
``--local-aws`` runs the SageMaker side against the local SageMaker (mlport_sagemaker.emulator)
started for the run, so nothing leaves this machine.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import mlport
from mlport import Code, TrainingJob

HERE = Path(__file__).resolve().parent
QUICKSTART = HERE.parent / "quickstart"
sys.path.insert(0, str(QUICKSTART))

from run import make_data, make_rows  # noqa: E402  (the quickstart's data helpers)


@contextlib.contextmanager
def local_aws(enabled: bool) -> Iterator[object | None]:
    """The local SageMaker for the run, with boto3 pointed at it; nothing when not enabled."""
    if not enabled:
        yield None
        return
    from mlport_sagemaker.emulator import SageMakerEmulator

    with SageMakerEmulator(workdir=Path(".mlport", "aws")) as emulator:
        os.environ.update(emulator.env)
        print(f"local SageMaker at {emulator.endpoint_url}")
        yield emulator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="hybrid", help="a profile of mlport.toml")
    parser.add_argument(
        "--local-aws", action="store_true", help="serve the SageMaker side from a local SageMaker"
    )
    args = parser.parse_args()
    os.chdir(HERE)
    with local_aws(args.local_aws) as emulator:
        ml = mlport.connect(profile=args.profile)
        try:
            run(ml, capture_delay=getattr(emulator, "capture_flush_seconds", 0.0))
        finally:
            ml.down()
            ml.close()


def run(ml: mlport.Connection, capture_delay: float) -> None:
    print(f"connected: {ml}")
    data = make_data(Path(".mlport", "data", "churn.csv"))
    job = ml.training.submit(
        TrainingJob(
            base_name="hybrid",
            code=Code(source_dir=str(QUICKSTART), entry_point="train.py"),
            inputs={"train": str(data)},
            hyperparameters={"n_estimators": 60, "max_depth": 6},
            max_runtime="10m",
        )
    )
    print(f"training {job.name} on {job.provider}")
    job.wait(logs=True)

    version = ml.registry.register("churn", job, baseline=data)
    print(f"registered churn v{version.version} on {version.provider}: {version.uri}")
    print(f"  lineage: job {version.lineage.get('job')} on {version.lineage.get('job_provider')}")

    endpoint = ml.endpoints.deploy("churn-hybrid", version, capture_percent=100)
    print(f"endpoint {endpoint.name} on {endpoint.provider} is {endpoint.status.value}")
    ml.monitoring.enable(endpoint.name, schedule=None)
    try:
        rows = [[3.0, 99.0, 6, 1], [60.0, 25.0, 0, 24], [24.0, 70.0, 2, 12]]
        print(f"  predictions for {rows}: {endpoint.predict(rows)}")
        # Newer customers paying more than the ones the model was trained on.
        endpoint.predict(make_rows(300, tenure=(0, 12), charges=(90, 140), seed=3))
        time.sleep(capture_delay + 0.5)  # captured requests reach the store
        report = ml.monitoring.run(endpoint.name)
        drifted = ", ".join(report.drifted_features) or "none"
        print(f"drift over {report.current_size} captured rows: drifted features {drifted}")
    finally:
        ml.monitoring.disable(endpoint.name)
        ml.endpoints.delete(endpoint.name)
        print(f"deleted endpoint {endpoint.name}")


if __name__ == "__main__":
    main()
