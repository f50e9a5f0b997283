"""On-prem batch prediction: a real detached process per job, chunked, cancellable."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import pytest

import mlport
from mlport import InvalidSpecError, JobFailedError
from mlport.processes import ProcessRecord, is_running
from mlport.status import JobStatus

ROWS = 2_500


def _model(folder: Path) -> Any:
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from mlport import package

    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 3))
    model = LogisticRegression().fit(x, (x[:, 0] - x[:, 2] > 0).astype(int))
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, folder / "model.joblib")
    package.build(folder, framework="sklearn")
    return model


def _rows(count: int, seed: int = 2) -> Any:
    import numpy as np

    return np.random.default_rng(seed).normal(size=(count, 3))


def _write_csv(path: Path, rows: Any, header: bool = True) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        if header:
            writer.writerow(["x0", "x1", "x2"])
        writer.writerows(rows.tolist())


def _runner_exits(ml: mlport.Connection, name: str) -> bool:
    """True once the job's runner process has exited (it records its result just before)."""
    provider: Any = ml.provider_for("endpoints")
    record = ProcessRecord.from_json(provider.state.get("batches", name)["runner"])
    deadline = time.monotonic() + 15
    while is_running(record) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not is_running(record)


def test_a_file_larger_than_the_chunk_is_predicted_completely(
    ml: mlport.Connection, tmp_path: Path
) -> None:
    model = _model(tmp_path / "pkg")
    version = ml.registry.register("scorer", str(tmp_path / "pkg"))
    rows = _rows(ROWS)
    _write_csv(tmp_path / "input.csv", rows, header=False)
    job = ml.endpoints.batch_predict(
        version, input=tmp_path / "input.csv", output=tmp_path / "out", batch_size=300
    )
    assert job.kind == "batch"
    job.wait(timeout=120)
    assert job.status is JobStatus.SUCCEEDED
    assert job.metrics["rows"] == ROWS
    with (tmp_path / "out" / "input.predictions.csv").open() as handle:
        written = list(csv.DictReader(handle))
    assert [int(r["row_id"]) for r in written] == list(range(ROWS))
    assert [int(r["prediction"]) for r in written] == [int(v) for v in model.predict(rows)]
    assert job.output_uri == (tmp_path / "out").resolve().as_uri()
    assert json.loads((tmp_path / "out" / "_batch.json").read_text())["rows"] == ROWS
    assert [j.name for j in ml.endpoints.list_batch()] == [job.name]
    assert any("SUCCEEDED" in line for line in job.logs())
    assert _runner_exits(ml, job.name)

    # A row the model refuses fails the job, naming the file and the row.
    lines = ["x0,x1,x2"] + [f"{i},{i},{i}" for i in range(40)]
    lines[31] = "1,oops,3"
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")
    job = ml.endpoints.batch_predict(
        version, input=tmp_path / "in.csv", output=tmp_path / "bad", batch_size=8, name="bad-rows"
    )
    with pytest.raises(JobFailedError, match=r"in\.csv row 30, feature 1: the string 'oops'"):
        job.wait(timeout=120)
    assert not list((tmp_path / "bad").glob("*predictions*"))


def test_cancel_and_max_runtime_stop_the_runner_and_keep_no_partial_file(
    ml: mlport.Connection, tmp_path: Path
) -> None:
    _model(tmp_path / "pkg")
    version = ml.registry.register("scorer", str(tmp_path / "pkg"))
    _write_csv(tmp_path / "big.csv", _rows(100_000))
    job = ml.endpoints.batch_predict(
        version, input=tmp_path / "big.csv", output=tmp_path / "out", batch_size=10
    )
    job.cancel()
    with pytest.raises(JobFailedError, match="CANCELLED"):
        job.wait(timeout=60)
    assert _runner_exits(ml, job.name)
    # Neither a finished nor a partial output file (glob finds nothing in a missing folder).
    assert not list((tmp_path / "out").glob("big.predictions.csv*"))

    job = ml.endpoints.batch_predict(
        version, input=tmp_path / "big.csv", output=tmp_path / "out", batch_size=5, max_runtime=1
    )
    with pytest.raises(JobFailedError, match=r"max_runtime exceeded \(1s\)"):
        job.wait(timeout=60)


def test_bad_requests_fail_at_once_and_create_nothing(
    ml: mlport.Connection, tmp_path: Path
) -> None:
    _model(tmp_path / "pkg")
    version = ml.registry.register("scorer", str(tmp_path / "pkg"))
    with pytest.raises(InvalidSpecError, match="does not exist"):
        ml.endpoints.batch_predict(version, input=tmp_path / "none.csv", output=tmp_path / "o")
    with pytest.raises(InvalidSpecError, match="copy the data here first"):
        ml.endpoints.batch_predict(version, input="s3://bucket/x.csv", output=tmp_path / "o")
    with pytest.raises(InvalidSpecError, match="batch_size"):
        ml.endpoints.batch_predict(
            version, input=tmp_path / "pkg", output=tmp_path / "o", batch_size=0
        )
    (tmp_path / "in.txt").write_text("1,2,3\n")
    with pytest.raises(InvalidSpecError, match="unknown format"):
        ml.endpoints.batch_predict(version, input=tmp_path / "in.txt", output=tmp_path / "o")
    assert list(ml.endpoints.list_batch()) == []
    provider: Any = ml.provider_for("endpoints")
    assert not (provider.root / "batch").exists() or not any((provider.root / "batch").iterdir())
