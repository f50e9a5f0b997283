"""The on-prem registry against real MLflow: SQLite in the root, and a real tracking server."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import joblib
import numpy as np
import pytest
from mlport_onprem import _mlflow
from mlport_onprem.registry import OnPremRegistry
from sklearn.linear_model import LogisticRegression

import mlport
from mlport import package, processes, runtime
from mlport.errors import IntegrityError, InvalidSpecError, NotFoundError, TransientError
from mlport.handles import Job
from mlport.processes import free_port
from mlport.specs import Code, TrainingJob
from mlport.status import JobStatus
from mlport.testing import conformance

ROWS = [[1.0, 2.0], [3.0, 4.0], [-2.0, -1.0]]

TRAIN_SCRIPT = """\
import numpy as np
from sklearn.linear_model import LogisticRegression

from mlport import runtime

hyperparameters = runtime.hyperparameters()
rng = np.random.default_rng(0)
x = rng.normal(size=(60, 2))
y = (x[:, 0] + x[:, 1] > 0).astype(int)
model = LogisticRegression(C=float(hyperparameters.get("C", 1.0))).fit(x, y)
runtime.log_metric("accuracy", float(model.score(x, y)))
runtime.save_model(model, framework="sklearn")
"""


def _trained() -> LogisticRegression:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2))
    return LogisticRegression().fit(x, (x[:, 0] + x[:, 1] > 0).astype(int))


def _joblib_package(directory: Path) -> Path:
    directory.mkdir(parents=True)
    joblib.dump(_trained(), directory / "model.joblib")
    package.build(directory, framework="sklearn")
    return directory


def _onprem(ml: mlport.Connection) -> OnPremRegistry:
    registry = ml.registry
    assert isinstance(registry, OnPremRegistry)
    return registry


def _copy_database(source: Path, target: Path) -> None:
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow database, made once: MLflow's schema migrations take seconds per database."""
    _mlflow.prepare_environment()
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def ml(ml: mlport.Connection, root: Path, mlflow_template: Path) -> mlport.Connection:
    """The conftest connection, its root's MLflow database copied from the template."""
    root.mkdir(parents=True, exist_ok=True)
    _copy_database(mlflow_template, root / "mlflow.db")
    return ml


@pytest.fixture
def model_source(tmp_path: Path) -> str:
    """A scikit-learn model package made with joblib."""
    return str(_joblib_package(tmp_path / "model-source"))


@pytest.fixture
def job_spec(tmp_path: Path) -> Callable[[str], TrainingJob]:
    """A job that trains a tiny scikit-learn model through the training-script contract."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(TRAIN_SCRIPT)
    return lambda name: TrainingJob(
        name=name,
        code=Code(source_dir=str(code), entry_point="train.py"),
        hyperparameters={"C": 0.5},
    )


@pytest.fixture
def slow_job_spec(tmp_path: Path) -> Callable[[str], TrainingJob]:
    """A job that runs until it is cancelled."""
    code = tmp_path / "slow-code"
    code.mkdir()
    (code / "train.py").write_text("import time\ntime.sleep(120)\n")
    return lambda name: TrainingJob(name=name, code=Code(source_dir=str(code)))


class Fixtures(conformance.Fixtures):
    @pytest.fixture
    def slow_job_spec(
        self, slow_job_spec: Callable[[str], TrainingJob]
    ) -> Callable[[str], TrainingJob]:
        return slow_job_spec


class TestRegistryConformance(Fixtures, conformance.RegistryTests):
    pass


def _finished_job(model_dir: Path) -> Job:
    """A SUCCEEDED job handle as the training service returns it, without running training."""
    return Job(
        name="churn-train",
        provider="onprem",
        provider_id="jobs/churn-train",
        status=JobStatus.SUCCEEDED,
        model_uri=model_dir.as_uri(),
        metrics={"accuracy": 0.93, "loss": 0.21},
        lineage={
            "hyperparameters": {"C": 0.5, "penalty": "l2", "note": "baseline"},
            "code_sha256": "ab" * 32,
            "inputs": {"train": {"sha256": "cd" * 32}},
        },
    )


def test_job_lineage_metrics_and_hyperparameters_are_in_mlflow(
    ml: mlport.Connection, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    job = _finished_job(_joblib_package(tmp_path / "pkg"))
    version = ml.registry.register("churn", job, tags={"team": "risk"}, description="first")

    assert version.lineage["job"] == "churn-train"
    assert version.lineage["code_sha256"] == "ab" * 32
    assert version.metrics == {"accuracy": 0.93, "loss": 0.21}
    assert version.tags == {"team": "risk"}
    assert version.description == "first"
    assert version.provider_id == f"models:/churn/{version.version}"
    assert version.uri.startswith("file://")

    client = MlflowClient(tracking_uri=f"sqlite:///{_onprem(ml).provider.root / 'mlflow.db'}")
    native = client.get_model_version("churn", version.version)
    assert native.tags["mlport.package_sha256"] == version.package_sha256
    assert native.tags["team"] == "risk"
    run = client.get_run(native.run_id)
    assert run.data.params == {"C": "0.5", "penalty": "l2", "note": "baseline"}
    assert run.data.metrics == {"accuracy": 0.93, "loss": 0.21}
    assert json.loads(run.data.tags["mlport.lineage.code_sha256"]) == "ab" * 32
    assert json.loads(run.data.tags["mlport.lineage.inputs"]) == {"train": {"sha256": "cd" * 32}}
    assert client.get_experiment(run.info.experiment_id).name == "mlport"


def test_lineage_too_long_for_a_tag_still_round_trips(
    ml: mlport.Connection, tmp_path: Path
) -> None:
    job = _finished_job(_joblib_package(tmp_path / "pkg"))
    files = {f"shard-{i:05d}.csv": f"{i:064x}" for i in range(2000)}
    job.lineage["inputs"] = {"train": {"files": files}}
    job.lineage["hyperparameters"]["vocabulary"] = ["word"] * 2000
    version = ml.registry.register("wide", job)
    assert version.lineage["inputs"]["train"]["files"] == files
    assert ml.registry.get("wide").lineage == version.lineage


def test_a_second_connection_sees_the_same_registry(
    ml: mlport.Connection, root: Path, model_source: str
) -> None:
    first = ml.registry.register("shared", model_source)
    ml.registry.set_stage("shared", first.version, "staging")
    with mlport.connect("onprem", root=str(root)) as other:
        seen = other.registry.get("shared", "staging")
        assert seen.version == first.version
        assert seen.package_sha256 == first.package_sha256
        second = other.registry.register("shared", model_source)
    assert ml.registry.get("shared").version == second.version
    assert [v.version for v in ml.registry.versions("shared")] == [first.version, second.version]


def test_stages_are_mlflow_aliases(ml: mlport.Connection, model_source: str) -> None:
    from mlflow import MlflowClient

    v1 = ml.registry.register("staged", model_source)
    ml.registry.set_stage("staged", v1.version, "staging")
    promoted = ml.registry.set_stage("staged", v1.version, "production")
    assert promoted.stage == "production"
    assert promoted.aliases == ["production", "staging"]

    client = MlflowClient(tracking_uri=f"sqlite:///{_onprem(ml).provider.root / 'mlflow.db'}")
    assert str(client.get_model_version_by_alias("staged", "production").version) == v1.version

    cleared = ml.registry.set_stage("staged", v1.version, "none")
    assert cleared.stage is None
    assert cleared.aliases == []
    with pytest.raises(NotFoundError, match="production"):
        ml.registry.get("staged", "production")


def test_listing_follows_mlflow_page_tokens(
    ml: mlport.Connection, model_source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(type(ml.registry), "page_size", 2)
    for _ in range(5):
        ml.registry.register("paged", model_source)
    for name in ("paged-b", "paged-c"):
        ml.registry.register(name, model_source)
    assert [v.version for v in ml.registry.versions("paged")] == ["1", "2", "3", "4", "5"]
    latest = {v.name: v.version for v in ml.registry.list()}
    assert latest == {"paged": "5", "paged-b": "1", "paged-c": "1"}


def test_download_verifies_and_detects_tampering(
    ml: mlport.Connection, model_source: str, tmp_path: Path
) -> None:
    version = ml.registry.register("guarded", model_source)
    clean = ml.registry.download(version, tmp_path / "clean")
    assert package.verify(clean, manifest_sha256=version.package_sha256).framework == "sklearn"
    assert {"MLmodel", "model.joblib"} <= {p.name for p in clean.iterdir()}

    stored = Path(version.uri.removeprefix("file://"))
    model_file = stored / "model.joblib"
    model_file.write_bytes(model_file.read_bytes() + b"tampered")
    with pytest.raises(IntegrityError, match="model.joblib"):
        ml.registry.download(version, tmp_path / "edited")

    # Rewriting the manifest to match is caught by the sha256 kept in MLflow.
    package.build(stored)
    with pytest.raises(IntegrityError, match="mlport-model.json"):
        ml.registry.download(version, tmp_path / "both")


@pytest.mark.parametrize("serialiser", ["joblib", "skops"])
def test_mlflow_loads_a_registered_sklearn_version(
    ml: mlport.Connection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, serialiser: str
) -> None:
    import mlflow.pyfunc

    model = _trained()
    if serialiser == "joblib":
        source = _joblib_package(tmp_path / "pkg")
    else:
        source = runtime.save_model(model, framework="sklearn", path=tmp_path / "pkg")
    version = ml.registry.register("pyfunc", source)
    store = f"sqlite:///{_onprem(ml).provider.root / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", store)

    loaded = mlflow.pyfunc.load_model(f"models:/pyfunc/{version.version}")
    assert list(loaded.predict(np.array(ROWS))) == list(model.predict(np.array(ROWS)))
    assert not (source / "MLmodel").exists(), "the caller's directory is left as it was"


def test_a_bare_directory_becomes_a_package(ml: mlport.Connection, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    joblib.dump(_trained(), bare / "model.joblib")
    version = ml.registry.register("bare", bare, framework="sklearn")
    assert version.framework == "sklearn"
    assert version.package_sha256
    assert not (bare / runtime.MANIFEST_NAME).exists()

    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("not a model")
    with pytest.raises(InvalidSpecError, match="notes.txt"):
        ml.registry.register("junk", tmp_path / "junk")


def test_a_uri_onprem_cannot_read_is_refused(ml: mlport.Connection) -> None:
    with pytest.raises(InvalidSpecError, match="'s3'"):
        ml.registry.register("remote", "s3://bucket/models/churn")
    with pytest.raises(NotFoundError):
        ml.registry.get("remote")


def test_an_unreachable_tracking_server_is_a_transient_error(tmp_path: Path) -> None:
    with (
        mlport.connect(
            "onprem",
            root=str(tmp_path / "root"),
            tracking_uri=f"http://127.0.0.1:{free_port()}",
            retry_attempts=1,
        ) as unreachable,
        pytest.raises(TransientError, match="127.0.0.1"),
    ):
        unreachable.registry.get("anything")


def test_importing_the_registry_leaves_mlflow_and_its_telemetry_alone(tmp_path: Path) -> None:
    probe = f"""
import sys
import mlport
import mlport_onprem.registry
assert "mlflow" not in sys.modules, "importing the registry imported mlflow"
ml = mlport.connect("onprem", root={str(tmp_path / "root")!r})
ml.registry._client
from mlflow.telemetry.client import get_telemetry_client
assert get_telemetry_client() is None, "MLflow telemetry is on"
"""
    # Without pytest's and CI's variables, which on their own turn MLflow's telemetry off.
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _mlflow.ENVIRONMENT and key not in {"PYTEST_CURRENT_TEST", "CI"}
    }
    done = subprocess.run(
        [sys.executable, "-c", probe],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]


# --- against a real MLflow tracking server --------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def tracking_server_process(
    tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes], processes.ProcessRecord]]:
    """``mlflow server`` on 127.0.0.1 serving artifacts, stopped when the module ends.

    Started before the module's first test, so that its boot (seconds of imports) overlaps the
    other tests rather than adding to them.
    """
    base = tmp_path_factory.mktemp("mlflow-server")
    _copy_database(mlflow_template, base / "mlflow.db")
    port = free_port()
    popen, record = processes.spawn(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{base / 'mlflow.db'}",
            "--serve-artifacts",
            "--artifacts-destination",
            (base / "artifacts").as_uri(),
        ],
        name="mlflow-server",
        log_dir=base / "logs",
        cwd=base,
        env=_mlflow.ENVIRONMENT,
    )
    try:
        yield f"http://127.0.0.1:{port}", popen, record
    finally:
        processes.stop(record, grace=5)


@pytest.fixture
def tracking_server(
    tracking_server_process: tuple[str, subprocess.Popen[bytes], processes.ProcessRecord],
) -> str:
    """The server's URL, once it answers ``/health``."""
    url, popen, record = tracking_server_process
    deadline = time.monotonic() + 90
    while True:
        if popen.poll() is not None:
            pytest.fail(
                f"mlflow server exited {popen.returncode}: "
                + Path(record.stderr_path).read_text()[-2000:]
            )
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return url
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            pytest.fail("mlflow server did not answer /health within 90 s")
        time.sleep(0.2)


def test_round_trip_against_a_tracking_server(
    tracking_server: str, tmp_path: Path, model_source: str
) -> None:
    from mlflow import MlflowClient

    with mlport.connect("onprem", root=str(tmp_path / "root"), tracking_uri=tracking_server) as ml:
        job = _finished_job(Path(model_source))
        v1 = ml.registry.register("served", job)
        v2 = ml.registry.register("served", model_source)
        assert v1.uri.startswith("mlflow-artifacts:")
        assert v1.lineage["job"] == "churn-train"
        ml.registry.set_stage("served", v1.version, "production")
        assert ml.registry.get("served", "production").version == v1.version
        assert ml.registry.get("served").version == v2.version
        assert [v.version for v in ml.registry.versions("served")] == ["1", "2"]
        assert "served" in {v.name for v in ml.registry.list()}

        fetched = ml.registry.download(ml.registry.get("served", "production"), tmp_path / "dl")
        assert (fetched / "MLmodel").is_file()

        server = MlflowClient(tracking_uri=tracking_server)
        native = server.get_model_version("served", v1.version)
        assert native.aliases == ["production"]
        assert server.get_run(native.run_id).data.params["C"] == "0.5"

        ml.registry.delete("served", v1.version)
        ml.registry.delete("served", v1.version)
        with pytest.raises(NotFoundError):
            ml.registry.get("served", v1.version)
        ml.registry.delete("served")
        ml.registry.delete("served")
        with pytest.raises(NotFoundError, match="served"):
            ml.registry.get("served")
