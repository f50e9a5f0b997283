"""``mlport serve`` and ``python -m mlport.serving``: configuration, hosting contracts, a real model."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlport.errors import ConfigError
from mlport.processes import ProcessRecord, spawn, stop, wait_for_ready_file
from mlport.serving import hosting
from mlport.serving.capture import CaptureWriter, Sampler
from mlport.serving.config import ServerConfig, load_config


def test_hosting_contracts_are_read_from_the_environment(tmp_path: Path) -> None:
    assert hosting.detect({}) is None
    sagemaker = hosting.detect({"SAGEMAKER_BIND_TO_PORT": "9001"})
    assert sagemaker is not None and (sagemaker.name, sagemaker.port) == ("sagemaker", 9001)
    assert sagemaker.model_dir == "/opt/ml/model"
    forced = hosting.detect({"MLPORT_HOSTING": "sagemaker"})
    assert forced is not None and forced.port == 8080
    vertex = hosting.detect(
        {
            "AIP_HTTP_PORT": "7080",
            "AIP_HEALTH_ROUTE": "/v1/endpoints/1/deployedModels/2",
            "AIP_PREDICT_ROUTE": "v1/endpoints/1/deployedModels/2:predict",
            "AIP_STORAGE_URI": "gs://bucket/model",
        }
    )
    assert vertex == hosting.Hosting(
        name="vertex",
        port=7080,
        health_route="/v1/endpoints/1/deployedModels/2",
        predict_route="/v1/endpoints/1/deployedModels/2:predict",
        model_dir=None,
    )
    package = tmp_path / "azureml-models" / "churn" / "3" / "model"
    package.mkdir(parents=True)
    (package / "mlport-model.json").write_text("{}")
    azure = hosting.detect({"AZUREML_MODEL_DIR": str(package.parent)})
    assert azure is not None and (azure.name, azure.port) == ("azureml", 5001)
    assert azure.model_dir == str(package)
    assert hosting.detect({"AML_APP_ROOT": "/var/azureml-app"}) is not None
    assert hosting.detect({"SAGEMAKER_BIND_TO_PORT": "1"}, name="none") is None
    assert hosting.detect({"MLPORT_HOSTING": "none", "AIP_HTTP_PORT": "8080"}) is None
    with pytest.raises(ConfigError, match="not a port"):
        hosting.detect({"AIP_HTTP_PORT": "eighty"})
    with pytest.raises(ConfigError, match="names no hosting contract"):
        hosting.detect({"MLPORT_HOSTING": "heroku"})


def test_configuration_files_are_checked_and_paths_resolved(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "server.json"
    path.parent.mkdir()
    path.write_text(
        json.dumps(
            {
                "endpoint": "churn-api",
                "token_file": "token",
                "variants": {"1": {"path": "../models/1", "weight": 3}},
                "capture": {"percent": 5, "dir": "capture"},
            }
        )
    )
    config = load_config(path)
    assert config.variants["1"].path == str(tmp_path / "models" / "1")
    assert config.token_file == str(tmp_path / "conf" / "token")
    assert config.capture.dir == str(tmp_path / "conf" / "capture")
    assert (config.host, config.port, config.workers, config.max_body_bytes) == (
        "127.0.0.1",
        0,
        1,
        10 * 1024 * 1024,
    )
    assert config.batching.max_batch_size == 32 and config.batching.max_wait_ms == 2

    for bad, message in [
        ({"endpoint": "x", "variants": {"1": {"path": "m"}}, "wokers": 2}, "wokers: Extra inputs"),
        ({"endpoint": "x", "variants": {}}, "variants"),
        ({"endpoint": "x", "variants": {"1": {"path": "m", "weight": 0}}}, "weight above 0"),
        ({"endpoint": "x", "variants": {"a b": {"path": "m"}}}, "variant version 'a b'"),
        (
            {"endpoint": "x", "variants": {"1": {"path": "m"}}, "capture": {"percent": 5}},
            "capture.dir",
        ),
        ({"endpoint": "../x", "variants": {"1": {"path": "m"}}}, "endpoint"),
    ]:
        path.write_text(json.dumps(bad))
        with pytest.raises(ConfigError, match=message):
            load_config(path)
    path.write_text("{")
    with pytest.raises(ConfigError, match="not readable JSON"):
        load_config(path)
    assert "endpoint" in ServerConfig.model_json_schema()["required"]


def test_the_sampler_takes_the_exact_share_at_random_places() -> None:
    for percent in (0, 1, 10, 33.3, 50, 100):
        sampler = Sampler(percent)
        chosen = [i for i in range(3000) if sampler()]
        assert abs(len(chosen) - 30 * percent) <= 1, percent
    first, second = Sampler(10), Sampler(10)
    assert [i for i in range(1000) if first()] != [i for i in range(1000) if second()]


def test_capture_files_rotate_on_age(tmp_path: Path) -> None:
    writer = CaptureWriter(
        directory=tmp_path,
        endpoint="e",
        worker="w0",
        max_bytes=10**9,
        max_seconds=0.2,
        queue_size=10,
    )
    writer.start()
    writer.offer("1", "a", [[1.0]], [1])
    time.sleep(0.9)
    writer.offer("1", "b", [[2.0]], [2])
    writer.close()
    files = sorted(tmp_path.rglob("*.jsonl"))
    assert len(files) == 2
    assert [json.loads(f.read_text())["request_id"] for f in files] == ["a", "b"]


def test_importing_the_cli_loads_nothing_of_the_server() -> None:
    code = "import sys, json, mlport.cli; print(json.dumps(sorted(sys.modules)))"
    modules = set(json.loads(subprocess.check_output([sys.executable, "-c", code])))
    heavy = {"numpy", "uvicorn", "pydantic", "mlport.serving.server", "mlport.serving.app"}
    assert not modules & heavy, modules & heavy


# --- a real scikit-learn package ------------------------------------------------------------


@pytest.fixture(scope="module")
def sklearn_package(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, list[list[float]], list[int]]:
    pytest.importorskip("sklearn")
    pytest.importorskip("mlport.serving.loaders")
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from mlport.runtime import save_model

    rng = np.random.default_rng(7)
    x = rng.normal(size=(400, 5))
    y = (x[:, 0] - x[:, 2] > 0).astype(int)
    model = LogisticRegression().fit(x, y)
    folder = tmp_path_factory.mktemp("sklearn") / "model"
    save_model(model, path=folder)
    rows = x[:25].round(4).tolist()
    return folder, rows, model.predict(np.asarray(rows)).tolist()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[list[ProcessRecord]]:
    records: list[ProcessRecord] = []
    yield records
    for record in records:
        stop(record, grace=10)


def test_mlport_serve_a_scikit_learn_package(
    sklearn_package: tuple[Path, list[list[float]], list[int]],
    running: list[ProcessRecord],
    tmp_path: Path,
) -> None:
    from mlport.package import manifest_sha256

    folder, rows, expected = sklearn_package
    ready = tmp_path / "ready.json"
    argv = [
        sys.executable, "-m", "mlport", "serve", str(folder), "--port", "0", "--endpoint", "churn",
        "--ready-file", str(ready), "--manifest-sha256", manifest_sha256(folder),
        "--capture-dir", str(tmp_path / "capture"), "--capture-percent", "100",
    ]  # fmt: skip
    popen, record = spawn(argv, name="serve", log_dir=tmp_path, env={"HOME": str(tmp_path)})
    running.append(record)
    port = json.loads(wait_for_ready_file(ready, timeout=60, process=popen))["port"]
    out = Path(record.stdout_path).read_text()
    assert f"at http://127.0.0.1:{port}" in out
    token_file = Path(out.split("bearer token in ")[1].split()[0])
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    with httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}
    ) as client:
        sagemaker = client.post("/invocations", json={"instances": rows}).json()["predictions"]
        vertex = client.post("/predict", json={"instances": rows}).json()["predictions"]
        azure = client.post("/score", json={"input_data": rows}).json()
        v2 = client.post(
            "/v2/models/churn/infer",
            json={"inputs": [{"name": "x", "shape": [25, 5], "datatype": "FP64", "data": rows}]},
        ).json()["outputs"][0]
        refused = client.post("/invocations", json={"instances": [[1.0, 2.0]]})
        metadata = client.get("/v2/models/churn").json()
    assert sagemaker == vertex == azure == v2["data"] == expected
    assert v2["datatype"] == "INT64"
    assert refused.status_code == 422 and "5" in refused.json()["error"]
    assert metadata["platform"] == "sklearn"
    assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 5]}]
    stop(record, grace=10)
    assert popen.wait(5) == 0, Path(record.stderr_path).read_text()
    assert not token_file.exists(), "the generated token goes away with the server"
    captured = [
        json.loads(line)
        for file in (tmp_path / "capture" / "churn").rglob("*.jsonl")
        for line in file.read_text().splitlines()
    ]
    assert len(captured) == 4
    assert all(record["outputs"] == expected for record in captured)


def test_mlport_serve_refuses_an_unchecked_code_executing_package(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    pytest.importorskip("mlport.serving.loaders")
    import joblib
    from sklearn.linear_model import LinearRegression

    from mlport.package import build

    folder = tmp_path / "model"
    folder.mkdir()
    joblib.dump(LinearRegression().fit([[0.0], [1.0]], [0.0, 1.0]), folder / "model.joblib")
    build(folder)
    result = subprocess.run(
        [sys.executable, "-m", "mlport", "serve", str(folder), "--port", "0", "--no-auth"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "MLPORT_HOSTING": "none"},
    )
    assert result.returncode == 2
    assert "manifest_sha256" in result.stderr or "manifest sha256" in result.stderr


def test_under_azure_ml_mlport_serve_finds_the_model_and_follows_the_contract(
    sklearn_package: tuple[Path, list[list[float]], list[int]],
    running: list[ProcessRecord],
    tmp_path: Path,
) -> None:
    import shutil
    import socket

    from mlport.package import manifest_sha256

    with socket.socket() as probe:
        try:
            probe.bind(("0.0.0.0", 5001))
        except OSError:
            pytest.skip("port 5001, Azure ML's, is taken on this machine")
    folder, rows, expected = sklearn_package
    model_root = tmp_path / "azureml-models" / "churn" / "1"
    shutil.copytree(folder, model_root / "model")
    ready = tmp_path / "ready.json"
    argv = [
        sys.executable, "-m", "mlport", "serve", "--ready-file", str(ready),
        "--manifest-sha256", manifest_sha256(folder),
    ]  # fmt: skip
    popen, record = spawn(
        argv, name="azure", log_dir=tmp_path, env={"AZUREML_MODEL_DIR": str(model_root)}
    )
    running.append(record)
    assert json.loads(wait_for_ready_file(ready, timeout=60, process=popen))["port"] == 5001
    assert "following the azureml hosting contract" in Path(record.stdout_path).read_text()
    with httpx.Client(base_url="http://127.0.0.1:5001") as client:
        probe_answer = client.get("/")
        scored = client.post("/score", json={"input_data": rows}).json()
    assert probe_answer.text == "Healthy"
    assert scored == expected


def test_python_m_mlport_serving_reports_a_bad_configuration(tmp_path: Path) -> None:
    config = tmp_path / "server.json"
    config.write_text(json.dumps({"endpoint": "x", "variants": {"1": {"path": "m"}}, "prot": 1}))
    result = subprocess.run(
        [sys.executable, "-m", "mlport.serving", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "prot: Extra inputs are not permitted" in result.stderr


def test_a_weight_change_reuses_the_loaded_model(tmp_path: Path) -> None:
    import servable_models

    from mlport.serving.config import VariantConfig
    from mlport.serving.variants import load_variants

    path = str(servable_models.write(tmp_path / "m"))
    loader = "servable_models:load"
    first = load_variants({"1": VariantConfig(path=path, loader=loader)})
    second = load_variants(
        {"1": VariantConfig(path=path, loader=loader, weight=5)}, previous=first, generation=2
    )
    assert second.variants["1"].model is first.variants["1"].model
    assert second.weights() == {"1": 5} and second.generation == 2
    third = load_variants(
        {"1": VariantConfig(path=path, loader=loader, trust=True)}, previous=second
    )
    assert third.variants["1"].model is not first.variants["1"].model
    with pytest.raises(ConfigError, match="cannot import the model loader"):
        load_variants({"1": VariantConfig(path=path, loader="no_such_module:load")})
