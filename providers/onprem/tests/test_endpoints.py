"""On-prem endpoints: the portable model server as a real process per endpoint."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import mlport
from mlport import DeploymentFailedError, ModelVersion
from mlport.processes import ProcessRecord, is_running
from mlport.status import EndpointStatus
from mlport.testing import conformance


def _package(folder: Path, coefficient: float = 1.0) -> Path:
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from mlport import package

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 2))
    y = (coefficient * x[:, 0] + x[:, 1] > 0).astype(int)
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(LogisticRegression().fit(x, y), folder / "model.joblib")
    package.build(folder, framework="sklearn")
    return folder


class EndpointFixtures(conformance.Fixtures):
    @pytest.fixture
    def model_source(self, tmp_path: Path) -> str:  # type: ignore[override]
        return str(_package(tmp_path / "pkg"))

    @pytest.fixture
    def refused_name(self) -> str:  # type: ignore[override]
        return "x" * 129


class TestEndpointConformance(EndpointFixtures, conformance.EndpointTests): ...


def test_prediction_equals_the_models_own(ml: mlport.Connection, tmp_path: Path) -> None:
    import joblib

    folder = _package(tmp_path / "pkg")
    version = ml.registry.register("eq", str(folder))
    endpoint = ml.endpoints.deploy("eq-api", version, timeout=60)
    rows = [[0.5, -1.0], [2.0, 1.0], [-3.0, 0.1]]
    model = joblib.load(folder / "model.joblib")
    assert endpoint.predict(rows) == [int(v) for v in model.predict(rows)]
    provider: Any = ml.provider_for("endpoints")
    record = ProcessRecord.from_json(provider.state.get("endpoints", "eq-api")["server"])
    ml.endpoints.delete("eq-api")
    assert not is_running(record)


def test_failed_update_keeps_the_old_version(ml: mlport.Connection, tmp_path: Path) -> None:
    good = ml.registry.register("roll", str(_package(tmp_path / "good")))
    ml.endpoints.deploy("roll-api", good, timeout=60)
    bad = ml.registry.register("roll", str(_package(tmp_path / "bad", coefficient=-1.0)))
    provider: Any = ml.provider_for("endpoints")
    staged = provider.root / "endpoints" / "roll-api" / "models" / bad.version
    ml.registry.download(bad, staged)
    (staged / "model.joblib").write_bytes(b"corrupted after download")
    with pytest.raises(DeploymentFailedError, match="previous one keeps serving"):
        ml.endpoints.deploy("roll-api", bad)
    endpoint = ml.endpoints.get("roll-api")
    assert endpoint.status is EndpointStatus.READY
    assert endpoint.variants == {good.version: 100}
    assert len(endpoint.predict([[1.0, 1.0]])) == 1
    # The copy that did not load is gone: deploying the version again fetches it afresh.
    assert not staged.exists()
    endpoint = ml.endpoints.deploy("roll-api", bad, timeout=60)
    assert endpoint.variants == {bad.version: 100}


# --- updates under load, workers, processes ------------------------------------------------------

ROW = [[3.0, 0.0]]  # class 1 for a model with coefficient 1, class 0 with coefficient -1
LINUX = Path("/proc/self/stat").exists()


@dataclass
class Models:
    ml: mlport.Connection
    plus: ModelVersion  # answers 1 on ROW
    minus: ModelVersion  # answers 0 on ROW
    plus_again: ModelVersion  # answers 1 on ROW, a third version


@pytest.fixture(scope="module")
def models(module_ml: mlport.Connection, module_folder: Path) -> Models:
    """One root for the tests below, its versions registered once (a registry per test is slow)."""
    ml, folder = module_ml, module_folder
    return Models(
        ml,
        ml.registry.register("load", str(_package(folder / "plus", 1.0))),
        ml.registry.register("load", str(_package(folder / "minus", -1.0))),
        ml.registry.register("load", str(_package(folder / "plus-again", 1.0))),
    )


@dataclass
class _Answer:
    started: float
    version: str  # the X-Mlport-Variant header; "" for answers through ml.endpoints.predict
    prediction: Any


class _Load:
    """Clients sending ``ROW`` continuously until the block ends, and what they got back.

    Two HTTP clients with the endpoint's bearer token (one keeping its connection open, one
    opening a new connection per request) and one going through ``ml.endpoints.predict``, whose
    every attempt is recorded (its retries would otherwise hide a failed request).
    """

    def __init__(self, ml: mlport.Connection, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
        endpoint = ml.endpoints.get(name)
        assert endpoint.url and endpoint.provider_id
        self.url = endpoint.url
        self.token = (Path(endpoint.provider_id) / "token").read_text().strip()
        self.ml = ml
        self.name = name
        self.answers: list[_Answer] = []
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        service: Any = ml.endpoints
        original = service._predict

        def recorded(*args: Any) -> Any:
            try:
                return original(*args)
            except Exception as exc:
                self._fail(f"ml.endpoints.predict: {type(exc).__name__}: {exc}")
                raise

        monkeypatch.setattr(service, "_predict", recorded)
        self.threads = [
            threading.Thread(target=self._http, args=(True,)),
            threading.Thread(target=self._http, args=(False,)),
            threading.Thread(target=self._service),
        ]

    def _fail(self, message: str) -> None:
        with self.lock:
            self.failures.append(message)

    def _http(self, keep_alive: bool) -> None:
        limits = httpx.Limits(max_keepalive_connections=None if keep_alive else 0)
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, headers=headers, limits=limits, timeout=30) as client:
            while not self.stopping.is_set():
                started = time.monotonic()
                try:
                    answer = client.post("/invocations", json={"instances": ROW})
                except httpx.HTTPError as exc:
                    self._fail(f"HTTP: {type(exc).__name__}: {exc}")
                    continue
                if answer.status_code != 200:
                    self._fail(f"HTTP {answer.status_code}: {answer.text[:300]}")
                    continue
                (prediction,) = answer.json()["predictions"]
                version = answer.headers.get("x-mlport-variant", "")
                with self.lock:
                    self.answers.append(_Answer(started, version, prediction))
                time.sleep(0.002)

    def _service(self) -> None:
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                (prediction,) = self.ml.endpoints.predict(self.name, ROW)
            except Exception:
                continue  # recorded by the wrapper around _predict
            with self.lock:
                self.answers.append(_Answer(started, "", prediction))
            time.sleep(0.002)

    def between(self, start: float, end: float = float("inf")) -> list[_Answer]:
        with self.lock:
            return [a for a in self.answers if start < a.started < end]

    def collect(self, since: float, count: int = 30, version: str | None = None) -> None:
        """Wait for ``count`` answers to requests sent after ``since`` (and one from ``version``)."""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            answers = self.between(since)
            if len(answers) >= count and (
                version is None or any(a.version == version for a in answers)
            ):
                return
            time.sleep(0.02)

    def __enter__(self) -> _Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(60)


def _status(ml: mlport.Connection, name: str) -> dict[str, Any]:
    folder = Path(str(ml.endpoints.get(name).provider_id))
    data: dict[str, Any] = json.loads((folder / "status.json").read_text())
    return data


def _server_record(ml: mlport.Connection, name: str) -> ProcessRecord:
    provider: Any = ml.provider_for("endpoints")
    return ProcessRecord.from_json(provider.state.get("endpoints", name)["server"])


def _live_processes() -> dict[int, tuple[int, int]]:
    """Every live (not zombie) process: pid -> (parent pid, process group)."""
    found: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            data = (entry / "stat").read_bytes()
        except OSError:
            continue
        fields = data[data.rindex(b")") + 2 :].split()
        if fields[0] not in (b"Z", b"X"):
            found[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return found


def _children(pid: int) -> set[int]:
    return {child for child, (parent, _) in _live_processes().items() if parent == pid}


def _group(pgid: int) -> set[int]:
    return {pid for pid, (_, group) in _live_processes().items() if group == pgid}


def _delete_leaves_nothing(ml: mlport.Connection, name: str) -> None:
    record = _server_record(ml, name)
    workers = {w["pid"] for w in _status(ml, name)["workers"]}
    folder = Path(str(ml.endpoints.get(name).provider_id))
    assert workers and _group(record.pgid) >= {record.pid, *workers}
    ml.endpoints.delete(name)
    assert not is_running(record)
    assert _group(record.pgid) == set()
    assert workers.isdisjoint(_live_processes())
    assert not folder.exists()
    ml.endpoints.delete(name)  # idempotent


@pytest.mark.skipif(not LINUX, reason="counts processes through /proc")
def test_updates_under_load_fail_no_request_and_switch_versions(
    models: Models, monkeypatch: pytest.MonkeyPatch
) -> None:
    ml, v1, v2, v3 = models.ml, models.plus, models.minus, models.plus_again
    expected = {v1.version: 1, v2.version: 0, v3.version: 1}
    ml.endpoints.deploy("load-api", v1, min_replicas=2, timeout=60)
    record = _server_record(ml, "load-api")
    before = _status(ml, "load-api")
    assert len(before["workers"]) == 2
    with _Load(ml, "load-api", monkeypatch) as load:
        load.collect(since=0)
        replace_called = time.monotonic()
        replaced = ml.endpoints.deploy("load-api", v2)
        replace_returned = time.monotonic()
        load.collect(since=replace_returned)
        canary_called = time.monotonic()
        canary = ml.endpoints.deploy("load-api", v3, traffic_percent=10)
        canary_returned = time.monotonic()
        load.collect(since=canary_returned, version=v3.version)
        promote_called = time.monotonic()
        promoted = ml.endpoints.set_traffic("load-api", {v2.version: 0, v3.version: 100})
        promote_returned = time.monotonic()
        load.collect(since=promote_returned)
        # weights alone, back and forth: (called, returned, the one answer after it returned)
        flips: list[tuple[float, float, int]] = []
        for share in (100, 0, 100, 0):
            called = time.monotonic()
            ml.endpoints.set_traffic("load-api", {v2.version: share, v3.version: 100 - share})
            flips.append((called, time.monotonic(), expected[v2.version if share else v3.version]))
            load.collect(since=flips[-1][1], count=10)
    assert load.failures == []
    assert replaced.variants == {v2.version: 100}
    assert canary.variants == {v2.version: 90, v3.version: 10}
    assert promoted.variants == {v2.version: 0, v3.version: 100}
    for answer in load.answers:  # the version named in an answer is the one that answered
        if answer.version:
            assert answer.prediction == expected[answer.version], answer
    first = load.between(0, replace_called)
    assert first and {(a.version, a.prediction) for a in first} <= {(v1.version, 1), ("", 1)}
    second = load.between(replace_returned, canary_called)
    assert second and {(a.version, a.prediction) for a in second} <= {(v2.version, 0), ("", 0)}
    third = {a.version for a in load.between(canary_returned, promote_called)}
    assert v2.version in third and v3.version in third and third <= {v2.version, v3.version, ""}
    last = load.between(promote_returned, flips[0][0])
    assert last and {(a.version, a.prediction) for a in last} <= {(v3.version, 1), ("", 1)}
    ends = [called for called, _, _ in flips[1:]] + [float("inf")]
    for (_, returned, prediction), end in zip(flips, ends, strict=True):
        answers = load.between(returned, end)
        assert answers and {a.prediction for a in answers} == {prediction}
    # set_traffic returns once the workers apply the split, not once the server has read it
    held = [w["pid"] for w in before["workers"]]

    def resume() -> None:
        for pid in held:
            os.kill(pid, signal.SIGCONT)

    for pid in held:
        os.kill(pid, signal.SIGSTOP)
    timer = threading.Timer(0.5, resume)
    try:
        started = time.monotonic()
        timer.start()
        ml.endpoints.set_traffic("load-api", {v2.version: 50, v3.version: 50})
        assert time.monotonic() - started >= 0.5
    finally:
        timer.join()
        resume()
    # reloads, not restarts: the same server process and the same workers throughout
    after = _status(ml, "load-api")
    assert is_running(record) and after["pid"] == before["pid"] == record.pid
    assert [w["pid"] for w in after["workers"]] == [w["pid"] for w in before["workers"]]
    assert after["restarts"] == 0 and after["last_reload_error"] is None
    assert ml.endpoints.get("load-api").status is EndpointStatus.READY
    _delete_leaves_nothing(ml, "load-api")


def test_a_failed_update_under_load_fails_no_request(
    models: Models, monkeypatch: pytest.MonkeyPatch
) -> None:
    ml, good, bad = models.ml, models.plus, models.minus
    ml.endpoints.deploy("fail-api", good, min_replicas=2, timeout=60)
    provider: Any = ml.provider_for("endpoints")
    staged = provider.root / "endpoints" / "fail-api" / "models" / bad.version
    ml.registry.download(bad, staged)
    (staged / "model.joblib").write_bytes(b"corrupted after download")
    record = _server_record(ml, "fail-api")
    with _Load(ml, "fail-api", monkeypatch) as load:
        load.collect(since=0)
        with pytest.raises(DeploymentFailedError, match="previous one keeps serving"):
            ml.endpoints.deploy("fail-api", bad)
        failed = time.monotonic()
        load.collect(since=failed)
    assert load.failures == []
    assert len(load.between(failed)) >= 30
    assert {(a.version, a.prediction) for a in load.answers} <= {(good.version, 1), ("", 1)}
    endpoint = ml.endpoints.get("fail-api")
    assert endpoint.status is EndpointStatus.READY
    assert endpoint.variants == {good.version: 100}
    status = _status(ml, "fail-api")
    assert status["pid"] == record.pid and is_running(record)
    assert list(status["variants"]) == [good.version] and status["restarts"] == 0
    ml.endpoints.delete("fail-api")


@pytest.mark.skipif(not LINUX, reason="counts processes through /proc")
def test_min_replicas_runs_that_many_workers_and_delete_stops_them_all(models: Models) -> None:
    ml = models.ml
    endpoint = ml.endpoints.deploy(
        "workers-api", models.plus, min_replicas=2, capture_percent=100, timeout=60
    )
    record = _server_record(ml, "workers-api")
    status = _status(ml, "workers-api")
    workers = {w["index"]: w["pid"] for w in status["workers"]}
    assert sorted(workers) == [0, 1] and len(set(workers.values())) == 2
    assert all(w["ready"] for w in status["workers"])
    assert _children(record.pid) == set(workers.values())
    # a later deploy replaces the version; the server's workers and capture stay as they are
    endpoint = ml.endpoints.deploy("workers-api", models.minus)
    assert endpoint.variants == {models.minus.version: 100}
    assert endpoint.capture_percent == 100
    status = _status(ml, "workers-api")
    assert {w["index"]: w["pid"] for w in status["workers"]} == workers
    assert status["restarts"] == 0
    # both workers answer: each captures what it served in files named after it
    assert endpoint.url and endpoint.provider_id
    token = (Path(endpoint.provider_id) / "token").read_text().strip()
    capture = Path(endpoint.provider_id) / "capture" / "workers-api"
    wanted = {f"w{index}-{pid}" for index, pid in workers.items()}
    seen: set[str] = set()
    with httpx.Client(
        base_url=endpoint.url,
        headers={"Authorization": f"Bearer {token}"},
        limits=httpx.Limits(max_keepalive_connections=0),  # a new connection per request
        timeout=30,
    ) as client:
        deadline = time.monotonic() + 20
        while seen != wanted and time.monotonic() < deadline:
            for _ in range(20):
                answer = client.post("/invocations", json={"instances": ROW})
                assert answer.status_code == 200 and answer.json() == {"predictions": [0]}
            seen = {p.name.rsplit("-", 1)[0] for p in capture.rglob("*.jsonl") if p.stat().st_size}
    assert seen == wanted
    _delete_leaves_nothing(ml, "workers-api")
