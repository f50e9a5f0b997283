"""On-prem drift monitors: a real endpoint capturing real requests, checked by the drift engine."""

from __future__ import annotations

import http.server
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

import mlport
from mlport import InvalidSpecError, NotFoundError
from mlport.handles import DriftReport
from mlport.processes import ProcessRecord, is_running, stop
from mlport.testing import conformance

FEATURES = ["age", "income", "tenure", "visits"]
SHIFTED = ["income", "tenure"]
ENDPOINT = "churn-api"


def _frame(seed: int, rows: int, shift: list[str] | None = None) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.normal(0.0, 1.0, rows) for name in FEATURES})
    for name in shift or []:
        frame[name] += 1.0  # one standard deviation
    return frame


def _named_package(folder: Path, train: Any) -> Path:
    """A model fitted on a DataFrame, so the server knows its feature names."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    from mlport import package

    labels = (train["age"] + train["income"] > 0).astype(int)
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(LogisticRegression().fit(train, labels), folder / "model.joblib")
    package.build(folder, framework="sklearn")
    return folder


def _unnamed_package(folder: Path) -> Path:
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from mlport import package

    x = np.random.default_rng(0).normal(size=(200, 2))
    folder.mkdir(parents=True, exist_ok=True)
    model = LogisticRegression().fit(x, (x[:, 0] + x[:, 1] > 0).astype(int))
    joblib.dump(model, folder / "model.joblib")
    package.build(folder, framework="sklearn")
    return folder


@dataclass
class Setup:
    ml: mlport.Connection
    folder: Path
    baseline: Path  # training data: the four features and the label


@pytest.fixture(scope="module")
def setup(module_ml: mlport.Connection, module_folder: Path) -> Setup:
    """One root for the module (the first registration is slow), with ``churn-api`` serving a
    model of four named features and capturing every request."""
    ml, folder = module_ml, module_folder
    train = _frame(0, 2000)
    baseline = folder / "train.csv"
    train.assign(churned=(train["age"] > 0).astype(int)).to_csv(baseline, index=False)
    version = ml.registry.register("churn", str(_named_package(folder / "pkg", train)))
    ml.endpoints.deploy(ENDPOINT, version, capture_percent=100, timeout=120)
    return Setup(ml, folder, baseline)


def _send(ml: mlport.Connection, frame: Any) -> None:
    rows = frame.to_numpy().tolist()
    for start in range(0, len(rows), 250):
        ml.endpoints.predict(ENDPOINT, rows[start : start + 250])


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Webhook:
    """A webhook receiver on 127.0.0.1: the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.received = threading.Event()
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                hook.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()
                hook.received.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/drift"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def webhook() -> Iterator[_Webhook]:
    hook = _Webhook()
    yield hook
    hook.close()


# --- the conformance suite ------------------------------------------------------------------------


class MonitoringFixtures(conformance.Fixtures):
    @pytest.fixture
    def ml(self, setup: Setup) -> mlport.Connection:  # type: ignore[override]
        return setup.ml

    @pytest.fixture
    def model_source(self, tmp_path: Path) -> str:  # type: ignore[override]
        return str(_unnamed_package(tmp_path / "pkg"))


class TestMonitoringConformance(MonitoringFixtures, conformance.MonitoringTests): ...


# --- end to end -----------------------------------------------------------------------------------


def _page(report: DriftReport) -> str:
    assert report.report_uri and report.report_uri.startswith("file://")
    return Path(urlparse(report.report_uri).path).read_text()


def test_drift_is_flagged_on_the_shifted_features_only(setup: Setup) -> None:
    ml = setup.ml
    alert = f"http://127.0.0.1:{_closed_port()}/hook"
    monitor = ml.monitoring.enable(
        ENDPOINT, baseline=str(setup.baseline), schedule=None, alert=alert
    )
    assert json.loads(monitor.tags["mlport.features"]) == FEATURES
    assert json.loads(monitor.tags["mlport.dropped_columns"]) == ["churned"]

    _send(ml, _frame(1, 1000))
    calm = ml.monitoring.run(ENDPOINT)
    assert [f.feature for f in calm.features] == FEATURES
    assert calm.drifted_features == []
    assert calm.current_size == 1000 and calm.reference_size == 2000
    assert calm.alert is None  # nothing crossed a threshold: no alert due

    _send(ml, _frame(2, 1000, shift=SHIFTED))
    shifted = ml.monitoring.run(ENDPOINT)
    assert shifted.drifted_features == SHIFTED
    assert shifted.current_size == 1000
    assert shifted.window_start == calm.window_end
    assert all(f.current_size == 1000 and f.reference_size == 2000 for f in shifted.features)
    # a webhook that cannot be reached is recorded; the run still succeeds
    assert shifted.alert is not None and shifted.alert.startswith("failed")
    log = (Path(monitor.provider_id) / "monitor.log").read_text()
    assert "alert failed" in log

    data = json.loads(shifted.to_json())
    assert data["drifted"] is True
    for feature in data["features"]:
        assert {"statistic", "value", "threshold", "drifted", "reference_size"} <= set(feature)
        assert feature["current_size"] == 1000

    page = _page(shifted)
    for name in FEATURES:
        assert f">{name} <span" in page  # a section with its chart for every feature
    assert page.count("<svg") == len(FEATURES)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert "<script" not in page.lower()

    empty = ml.monitoring.run(ENDPOINT)
    assert empty.features == [] and empty.current_size == 0
    assert "no requests were captured between" in empty.message
    assert empty.window_start == shifted.window_end

    assert [r.created_at for r in ml.monitoring.reports(ENDPOINT)][:3] == [
        empty.created_at,
        shifted.created_at,
        calm.created_at,
    ]
    assert ml.monitoring.get(ENDPOINT).last_run_at == empty.created_at


def test_the_schedule_runs_alone_and_disable_stops_it(setup: Setup, webhook: _Webhook) -> None:
    ml = setup.ml
    provider: Any = ml.provider_for("monitoring")
    started = datetime.now(UTC)
    ml.monitoring.enable(ENDPOINT, baseline=str(setup.baseline), schedule=2, alert=webhook.url)
    record = ProcessRecord.from_json(provider.state.get("monitors", ENDPOINT)["scheduler"])
    assert is_running(record)
    assert record in provider.processes.records()  # so `mlport down` stops it

    _send(ml, _frame(3, 1000, shift=SHIFTED))
    assert webhook.received.wait(45), "the scheduled run sent no alert"
    alert = webhook.bodies[0]
    assert alert["endpoint"] == ENDPOINT
    assert set(SHIFTED) <= {d["feature"] for d in alert["drifted"]}
    assert {"statistic", "value", "threshold"} <= set(alert["drifted"][0])
    assert alert["report_uri"].startswith("file://")

    # the report is stored before the alert is sent, and again with what became of it
    deadline = time.monotonic() + 10
    while True:
        reports = [r for r in ml.monitoring.reports(ENDPOINT) if r.created_at > started]
        if any(r.alert and r.alert.startswith("sent") for r in reports):
            break
        assert time.monotonic() < deadline, f"no report records the alert: {reports}"
        time.sleep(0.1)

    ml.monitoring.disable(ENDPOINT)
    assert not is_running(record)
    assert record not in provider.processes.records()
    ml.monitoring.disable(ENDPOINT)
    with pytest.raises(NotFoundError):
        ml.monitoring.get(ENDPOINT)
    assert next(iter(ml.monitoring.reports(ENDPOINT))).created_at >= reports[0].created_at


def test_runs_at_the_same_time_read_windows_one_after_the_other(setup: Setup) -> None:
    ml = setup.ml
    ml.monitoring.enable(ENDPOINT, baseline=str(setup.baseline), schedule=None)
    reports: list[DriftReport] = []
    threads = [
        threading.Thread(target=lambda: reports.append(ml.monitoring.run(ENDPOINT)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    first, second = sorted(reports, key=lambda r: r.created_at)
    assert first.window_end is not None
    assert second.window_start == first.window_end


def test_a_stopped_scheduler_leaves_the_monitor_on_demand(setup: Setup) -> None:
    ml = setup.ml
    provider: Any = ml.provider_for("monitoring")
    ml.monitoring.enable(ENDPOINT, baseline=str(setup.baseline), schedule="1h")
    record = ProcessRecord.from_json(provider.state.get("monitors", ENDPOINT)["scheduler"])
    assert ml.monitoring.get(ENDPOINT).enabled
    stop(record, grace=3)  # what `mlport down` does to it
    assert not ml.monitoring.get(ENDPOINT).enabled
    assert ml.monitoring.run(ENDPOINT).endpoint == ENDPOINT
    ml.monitoring.disable(ENDPOINT)


def test_enable_checks_the_endpoint_and_the_baseline(setup: Setup, tmp_path: Path) -> None:
    ml = setup.ml
    partial = tmp_path / "partial.csv"
    _frame(0, 50).drop(columns=["visits"]).to_csv(partial, index=False)
    with pytest.raises(InvalidSpecError, match="no column 'visits'"):
        ml.monitoring.enable(ENDPOINT, baseline=str(partial), schedule=None)
    with pytest.raises(InvalidSpecError, match="not inputs of the model"):
        ml.monitoring.enable(
            ENDPOINT, baseline=str(setup.baseline), schedule=None, features=["churned"]
        )
    with pytest.raises(NotFoundError):
        ml.monitoring.enable("no-such-api", baseline=str(setup.baseline), schedule=None)

    version = ml.registry.get("churn")
    ml.endpoints.deploy("plain-api", version, timeout=120)
    try:
        with pytest.raises(InvalidSpecError, match="capture_percent"):
            ml.monitoring.enable("plain-api", baseline=str(setup.baseline), schedule=None)
    finally:
        ml.endpoints.delete("plain-api")


def test_deleting_the_endpoint_disables_its_monitor(setup: Setup) -> None:
    ml = setup.ml
    provider: Any = ml.provider_for("monitoring")
    ml.endpoints.deploy("short-api", ml.registry.get("churn"), capture_percent=100, timeout=120)
    ml.monitoring.enable("short-api", baseline=str(setup.baseline), schedule="1h")
    record = ProcessRecord.from_json(provider.state.get("monitors", "short-api")["scheduler"])
    assert is_running(record)
    ml.endpoints.delete("short-api")
    assert not is_running(record)
    with pytest.raises(NotFoundError):
        ml.monitoring.get("short-api")


def test_a_saved_profile_is_a_baseline(setup: Setup, tmp_path: Path) -> None:
    from mlport.monitoring import Profile

    ml = setup.ml
    saved = Profile.build(_frame(0, 2000)).save(tmp_path / "profile.json")
    monitor = ml.monitoring.enable(
        ENDPOINT, baseline=str(saved), schedule=None, features=["age", "income"]
    )
    assert json.loads(monitor.tags["mlport.features"]) == ["age", "income"]
    _send(ml, _frame(4, 500, shift=["income"]))
    report = ml.monitoring.run(ENDPOINT)
    assert [f.feature for f in report.features] == ["age", "income"]
    assert report.drifted_features == ["income"]


# --- the capture reader ---------------------------------------------------------------------------


def _record(moment: str, rows: list[list[float]]) -> str:
    return json.dumps(
        {
            "timestamp": moment,
            "endpoint": "ep",
            "version": "1",
            "request_id": moment,
            "inputs": rows,
            "outputs": [0] * len(rows),
        }
    )


def test_the_capture_reader_reads_only_the_window(tmp_path: Path) -> None:
    from mlport.monitoring import capture_files, capture_rows

    root = tmp_path / "capture"
    ten = root / "ep" / "2026" / "01" / "02" / "10"
    eleven = root / "ep" / "2026" / "01" / "02" / "11"
    one_pm = root / "ep" / "2026" / "01" / "02" / "13"
    for folder in (ten, eleven, one_pm):
        folder.mkdir(parents=True)
    (ten / "w0-20260102T105959900Z.jsonl").write_text(
        _record("2026-01-02T10:59:59.900+00:00", [[1.0]]) + "\n"
    )
    (eleven / "w0-20260102T110000000Z.jsonl").write_text(
        _record("2026-01-02T11:00:00.000+00:00", [[2.0], [3.0]])
        + "\n"
        + _record("2026-01-02T11:30:00.000+00:00", [[4.0]])
        + "\n"
        + _record("2026-01-02T11:59:00.000+00:00", [[5.0]])[:40]  # still being written
    )
    (one_pm / "w1-20260102T130000000Z.jsonl").write_text(
        _record("2026-01-02T13:00:00.000+00:00", [[6.0]]) + "\n"
    )
    since = datetime(2026, 1, 2, 11, tzinfo=UTC)
    until = datetime(2026, 1, 2, 13, tzinfo=UTC)
    assert [p.parent.name for p in capture_files(root, "ep", since=since, until=until)] == ["11"]
    rows = list(capture_rows(root, "ep", since=since, until=until))
    assert [r.values for r in rows] == [[2.0], [3.0], [4.0]]
    assert {r.version for r in rows} == {"1"}
    everything = list(capture_rows(root, "ep"))
    assert [r.values[0] for r in everything] == [1.0, 2.0, 3.0, 4.0, 6.0]
    late = list(capture_rows(root, "ep", since=datetime(2026, 1, 2, 10, 59, 59, 950000, UTC)))
    assert [r.values[0] for r in late] == [2.0, 3.0, 4.0, 6.0]


def test_a_baseline_registered_with_the_version_is_used_when_none_is_given(setup: Setup) -> None:
    ml = setup.ml
    with pytest.raises(InvalidSpecError, match="registered without a baseline"):
        ml.monitoring.enable(ENDPOINT, schedule=None)
    version = ml.registry.register("churn", str(setup.folder / "pkg"), baseline=setup.baseline)
    assert version.baseline_uri and version.baseline_uri.startswith("file://")
    assert ml.registry.get("churn", version.version).baseline_uri == version.baseline_uri
    ml.endpoints.deploy(ENDPOINT, version, timeout=120)
    monitor = ml.monitoring.enable(ENDPOINT, schedule=None)
    assert monitor.baseline == version.baseline_uri
    _send(ml, _frame(4, 600, shift=SHIFTED))
    report = ml.monitoring.run(ENDPOINT)
    assert set(report.drifted_features) == set(SHIFTED)
    ml.monitoring.disable(ENDPOINT)
    with pytest.raises(InvalidSpecError, match="baseline"):
        ml.registry.register("churn", str(setup.folder / "pkg"), baseline=setup.folder / "no.csv")
