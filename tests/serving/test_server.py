"""The model server as real processes on 127.0.0.1: contracts, reloads, capture, shutdown."""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from servable_models import SLOW
from serving_helpers import LOADER, TOKEN, Server, model_folder

from mlport.processes import free_port, stop

ROWS = [[1, 2, 3], [4, 5, 6]]
EXPECTED = [6.0, 15.0]
JSON = {"Content-Type": "application/json"}

Start = Callable[..., Server]


def test_every_route_over_http_and_bad_requests_leave_it_serving(start_server: Start) -> None:
    server = start_server(max_body_bytes=4096)
    client = server.client()
    good = {
        "/invocations": {"instances": ROWS},
        "/predict": {"instances": ROWS},
        "/score": {"input_data": ROWS},
        "/v2/models/demo/infer": {
            "inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP64", "data": ROWS}]
        },
    }
    bad = [
        client.post("/invocations", content=b"{nope", headers=JSON),
        client.post("/invocations", json={"instances": [[1, 2]]}),
        client.post("/invocations", content=b"1,2,3", headers={"Content-Type": "text/plain"}),
        client.post("/invocations", json={"instances": [[1, 2, 3]] * 2000}),
        client.post("/score", content=b"\x00\xff" * 10, headers=JSON),
        client.get("/nowhere"),
    ]
    assert [a.status_code for a in bad] == [400, 422, 415, 413, 400, 404]
    for answer in bad:
        assert "error" in answer.json()
    fresh = server.client()
    for path, body in good.items():
        answer = fresh.post(path, json=body)
        assert answer.status_code == 200, answer.text
        data = answer.json()
        predictions = (
            data
            if isinstance(data, list)
            else data.get("predictions") or data["outputs"][0]["data"]
        )
        assert predictions == EXPECTED
    anonymous = httpx.Client(base_url=server.url)
    server.clients.append(anonymous)
    assert anonymous.post("/invocations", json=ROWS).status_code == 401
    assert anonymous.get("/metrics").status_code == 401
    for path in ("/", "/ping", "/health", "/v2/health/live", "/v2/health/ready"):
        assert anonymous.get(path).status_code == 200
    assert "Traceback" not in server.stderr()


@pytest.mark.parametrize("platform", ["sagemaker", "vertex"])
def test_under_a_cloud_contract_the_server_follows_the_platform(
    start_server: Start, platform: str
) -> None:
    port = free_port()
    if platform == "sagemaker":
        env = {"SAGEMAKER_BIND_TO_PORT": str(port)}
        health, predict = "/ping", "/invocations"
    else:
        health, predict = "/v1/endpoints/1/deployedModels/2", "/v1/endpoints/1:predict"
        env = {"AIP_HTTP_PORT": str(port), "AIP_HEALTH_ROUTE": health, "AIP_PREDICT_ROUTE": predict}
    server = start_server(env=env, token=None)
    assert server.port == port
    status = server.status()
    assert status["hosting"] == platform and status["auth"] is False
    client = server.client()
    assert client.get(health).status_code == 200
    assert client.post(predict, json={"instances": ROWS}).json() == {"predictions": EXPECTED}
    assert client.get("/metrics").status_code == 200
    listening = socket.create_connection(("127.0.0.1", port))
    listening.close()


def test_without_a_token_or_no_auth_the_server_refuses_to_start(tmp_path: Path) -> None:
    from mlport.errors import ConfigError
    from mlport.serving.config import ServerConfig, VariantConfig
    from mlport.serving.server import serve

    config = ServerConfig(
        endpoint="demo",
        variants={"1": VariantConfig(path=model_folder(tmp_path, "m"), loader=LOADER)},
        hosting="none",
    )
    with pytest.raises(ConfigError, match="needs a token_file"):
        serve(config)
    token = tmp_path / "token"
    token.write_text(TOKEN)
    token.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        serve(config.model_copy(update={"token_file": str(token)}))


class Load:
    """Clients sending requests in threads until stopped; every answer is recorded."""

    def __init__(self, server: Server, threads: int = 4, **request: Any) -> None:
        self.server = server
        self.request = request or {"json": {"instances": [[1, 1, 1]]}}
        self.answers: list[tuple[int, str, Any]] = []
        self.failures: list[str] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        client = self.server.client()
        while not self.stopping.is_set():
            try:
                answer = client.post("/invocations", **self.request)
                record = (
                    answer.status_code,
                    answer.headers.get("x-mlport-variant", ""),
                    answer.json(),
                )
            except Exception as exc:
                with self.lock:
                    self.failures.append(repr(exc))
                continue
            with self.lock:
                self.answers.append(record)

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join()


def test_sighup_swaps_in_a_new_variant_without_failing_a_request(
    start_server: Start, tmp_path: Path
) -> None:
    server = start_server(workers=2)
    slow_v2 = model_folder(tmp_path, "v2", factor=2, load_delay=0.5)
    with Load(server) as load:
        time.sleep(0.3)
        server.rewrite(
            variants={
                "1": {"path": str(server.folder / "m1"), "loader": LOADER, "weight": 0},
                "2": {"path": slow_v2, "loader": LOADER, "weight": 100},
            }
        )
        os.kill(server.pid, signal.SIGHUP)
        status = server.wait_status(lambda s: s["generation"] == 2)
        time.sleep(0.3)
    assert load.failures == []
    codes = collections.Counter(code for code, _, _ in load.answers)
    assert codes == {200: len(load.answers)}
    versions = [version for _, version, _ in load.answers]
    assert versions[0] == "1" and versions[-1] == "2"
    for _, version, body in load.answers:
        assert body == {"predictions": [3.0 if version == "1" else 6.0]}
    assert set(status["variants"]) == {"1", "2"} and status["variants"]["2"]["weight"] == 100
    assert status["last_reload_error"] is None
    assert all(w["generation"] == 2 for w in status["workers"])
    # a weight-only change applies too; the old variant stays pinnable
    client = server.client()
    assert client.post("/invocations", json=ROWS, headers={"X-Mlport-Variant": "1"}).json() == {
        "predictions": EXPECTED
    }


def test_a_broken_new_variant_leaves_the_old_one_serving(
    start_server: Start, tmp_path: Path
) -> None:
    server = start_server()
    broken = model_folder(tmp_path, "broken", broken=True)
    server.rewrite(
        variants={
            "1": {"path": str(server.folder / "m1"), "loader": LOADER},
            "2": {"path": broken, "loader": LOADER},
        }
    )
    os.kill(server.pid, signal.SIGHUP)
    status = server.wait_status(lambda s: s["last_reload_error"] is not None)
    assert "holds a broken model" in status["last_reload_error"]
    assert "variant '2'" in status["last_reload_error"]
    assert status["generation"] == 1 and list(status["variants"]) == ["1"]
    answer = server.client().post("/invocations", json=ROWS)
    assert answer.json() == {"predictions": EXPECTED}
    assert answer.headers["x-mlport-variant"] == "1"
    # a configuration that is not even valid is refused the same way
    server.rewrite(variants={})
    os.kill(server.pid, signal.SIGHUP)
    status = server.wait_status(lambda s: (s["last_reload_error"] or "").startswith("ConfigError"))
    assert "variants" in status["last_reload_error"]
    assert status["generation"] == 1


def test_capture_files_hold_the_configured_share_in_the_schema(start_server: Start) -> None:
    server = start_server(workers=2, capture={"percent": 10, "dir": "capture"})
    clients = [server.client() for _ in range(4)]

    def send(client: httpx.Client, first: int) -> None:
        for i in range(first, 2000, 4):
            answer = client.post(
                "/invocations", json=[[i, 0, 0]], headers={"X-Request-Id": f"r{i}"}
            )
            assert answer.status_code == 200

    threads = [threading.Thread(target=send, args=(c, n)) for n, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop(server.record, grace=15)  # flushes the capture files
    files = sorted((server.folder / "capture" / "demo").rglob("*.jsonl"))
    workers = {f.name.split("-")[0] for f in files}
    # Each worker writes its own files (which worker accepts a connection is the kernel's
    # choice, so a loaded machine may give every connection to one).
    assert workers and workers <= {"w0", "w1"}
    records = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert abs(len(records) - 200) <= 10
    for record in records:
        assert set(record) == {
            "timestamp",
            "endpoint",
            "version",
            "request_id",
            "inputs",
            "outputs",
        }
        i = int(record["request_id"][1:])
        assert record["inputs"] == [[float(i), 0.0, 0.0]] and record["outputs"] == [float(i)]
        assert record["endpoint"] == "demo" and record["version"] == "1"


def test_sigterm_finishes_the_request_in_flight(start_server: Start) -> None:
    server = start_server()
    answers: list[httpx.Response] = []
    client = server.client()
    slow = threading.Thread(
        target=lambda: answers.append(client.post("/invocations", json=[[SLOW, 0, 0]]))
    )
    slow.start()
    time.sleep(0.5)
    started = time.monotonic()
    stop(server.record, grace=15)
    slow.join()
    assert answers[0].status_code == 200 and answers[0].json() == {"predictions": [SLOW]}
    assert server.popen.wait(5) == 0
    assert time.monotonic() - started < 10
    assert not (server.folder / "ready.json").exists()


def test_a_dead_worker_is_replaced(start_server: Start) -> None:
    server = start_server(workers=2)
    victim = server.status()["workers"][0]["pid"]
    os.kill(victim, signal.SIGKILL)
    status = server.wait_status(
        lambda s: (
            s["restarts"] == 1 and all(w["ready"] and w["pid"] != victim for w in s["workers"])
        )
    )
    assert status["generation"] == 1
    client = server.client()
    assert all(client.post("/invocations", json=ROWS).status_code == 200 for _ in range(20))


def test_metrics_add_up_across_workers(start_server: Start) -> None:
    server = start_server(workers=2)
    with Load(server, threads=4) as load:
        time.sleep(1.0)
    sent = len(load.answers)
    time.sleep(1.5)  # every worker has written its counts
    text = server.client().get("/metrics").text
    line = 'mlport_requests_total{route="invocations",variant="1",code="200"} '
    (count,) = [int(row.removeprefix(line)) for row in text.splitlines() if row.startswith(line)]
    assert count == sent
    assert f'mlport_request_duration_seconds_count{{variant="1"}} {sent}' in text


def replaced(status: dict[str, Any]) -> bool:
    """The one worker was replaced once and its successor is ready."""
    workers = status["workers"]
    return status["restarts"] == 1 and len(workers) == 1 and workers[0]["ready"]


def test_a_prediction_past_the_timeout_is_504_and_the_worker_is_replaced(
    start_server: Start,
) -> None:
    server = start_server(predict_timeout_seconds=0.5, batching={"predict_in": "thread"})
    first_pid = server.status()["workers"][0]["pid"]
    answers: dict[str, httpx.Response] = {}
    client, other = server.client(), server.client()
    hung = threading.Thread(
        target=lambda: answers.update(hung=client.post("/invocations", json=[[SLOW, 0, 0]]))
    )
    hung.start()
    time.sleep(0.1)
    # While the model hangs in the predict thread the worker answers health checks...
    assert other.get("/ping").status_code == 200
    assert "hung" not in answers
    # ... and predicts what queued behind the hung call once it is abandoned.
    assert other.post("/invocations", json=ROWS).json() == {"predictions": EXPECTED}
    hung.join()
    answer = answers["hung"]
    assert answer.status_code == 504
    assert answer.json()["error"].startswith("the model did not answer within 0.5 s")
    # The abandoned call cannot be stopped: a fresh worker takes over.
    status = server.wait_status(replaced)
    assert status["workers"][0]["pid"] != first_pid
    fresh = server.client()
    assert fresh.post("/invocations", json=ROWS).json() == {"predictions": EXPECTED}
    text = fresh.get("/metrics").text
    assert 'mlport_predict_timeouts_total{variant="1"} 1' in text
    assert 'mlport_requests_total{route="invocations",variant="1",code="504"} 1' in text
    assert "retired after a prediction timeout" in server.stderr()


def test_a_prediction_blocking_the_event_loop_gets_the_worker_killed(
    start_server: Start, tmp_path: Path
) -> None:
    hangs = model_folder(tmp_path, "hangs", slow_seconds=120)
    server = start_server(
        {"1": {"path": hangs, "loader": LOADER}},
        predict_timeout_seconds=0.5,
        batching={"predict_in": "inline"},
    )
    started = time.monotonic()
    with pytest.raises(httpx.TransportError):
        server.client().post("/invocations", json=[[SLOW, 0, 0]])
    # no heartbeat for the timeout plus 5 s: the supervisor kills the worker
    assert 5.5 <= time.monotonic() - started < 10
    server.wait_status(replaced)
    assert server.client().post("/invocations", json=ROWS).json() == {"predictions": EXPECTED}
    assert "has not reported for" in server.stderr()
