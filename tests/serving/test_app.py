"""The server's HTTP application, in process (no sockets): routes, formats, errors, variants."""

from __future__ import annotations

import asyncio
import collections
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from servable_models import FAIL, SLOW, RowSumModel

from mlport.serving.app import ServingApp
from mlport.serving.capture import CaptureWriter
from mlport.serving.config import BatchingConfig, VariantConfig
from mlport.serving.hosting import Hosting
from mlport.serving.metrics import Metrics
from mlport.serving.model import ServedModel
from mlport.serving.variants import Variant, VariantSet

TOKEN = "in-process-token-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
T = TypeVar("T")


def variant_set(models: dict[str, tuple[ServedModel, float]], generation: int = 1) -> VariantSet:
    return VariantSet(
        {
            version: Variant(
                version, model, VariantConfig(path=f"/models/{version}", weight=weight)
            )
            for version, (model, weight) in models.items()
        },
        generation,
    )


def make_app(
    models: dict[str, tuple[ServedModel, float]] | None = None, **kwargs: Any
) -> ServingApp:
    kwargs.setdefault("token", TOKEN)
    return ServingApp(
        endpoint="demo", variants=variant_set(models or {"1": (RowSumModel(), 1)}), **kwargs
    )


def run(app: ServingApp, scenario: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
    async def main() -> T:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            try:
                return await scenario(client)
            finally:
                app.batcher.close()

    return asyncio.run(main())


def requests(app: ServingApp, *calls: tuple[str, str, dict[str, Any]]) -> list[httpx.Response]:
    """Send the calls one after another: (method, path, httpx keyword arguments)."""

    async def scenario(client: httpx.AsyncClient) -> list[httpx.Response]:
        return [await client.request(method, path, **kw) for method, path, kw in calls]

    return run(app, scenario)


def post(path: str, **kwargs: Any) -> tuple[str, str, dict[str, Any]]:
    kwargs["headers"] = {**AUTH, **kwargs.get("headers", {})}
    return ("POST", path, kwargs)


ROWS = [[1, 2, 3], [4, 5, 6]]
EXPECTED = [6.0, 15.0]


def test_every_contract_answers_the_same_predictions() -> None:
    named = RowSumModel(feature_names=["a", "b", "c"])
    app = make_app({"1": (named, 1)})
    records = [dict(zip("abc", row, strict=True)) for row in ROWS]
    answers = requests(
        app,
        post("/invocations", json={"instances": ROWS}),
        post("/invocations", json=ROWS),
        post("/invocations", json={"inputs": {"a": [1, 4], "b": [2, 5], "c": [3, 6]}}),
        post("/invocations", content=b"1,2,3\n4,5,6\n", headers={"Content-Type": "text/csv"}),
        post(
            "/invocations", content=b"a,b,c\n1,2,3\n4,5,6\n", headers={"Content-Type": "text/csv"}
        ),
        post("/predict", json={"instances": ROWS, "parameters": {"threshold": 0.5}}),
        post("/predict", json={"instances": records}),
        post("/score", json={"data": ROWS}),
        post("/score", json=ROWS),
        post(
            "/score",
            json={"input_data": {"columns": ["a", "b", "c"], "index": [0, 1], "data": ROWS}},
        ),
        post("/score", json={"input_data": records}),
        post("/score", json={"input_data": ROWS}),
        post("/score", json={"dataframe_split": {"columns": ["a", "b", "c"], "data": ROWS}}),
        post(
            "/v2/models/demo/infer",
            json={"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP64", "data": ROWS}]},
        ),
        post(
            "/v2/models/demo/versions/1/infer",
            json={
                "inputs": [
                    {"name": name, "shape": [2], "datatype": "INT64", "data": [r[i] for r in ROWS]}
                    for i, name in enumerate("abc")
                ]
            },
        ),
    )
    assert [a.status_code for a in answers] == [200] * len(answers), [a.text for a in answers]
    predictions = []
    for answer in answers:
        body = answer.json()
        if isinstance(body, list):
            predictions.append(body)
        elif "outputs" in body:
            assert body["model_name"] == "demo" and body["model_version"] == "1"
            assert body["outputs"][0]["shape"] == [2] and body["outputs"][0]["datatype"] == "FP64"
            predictions.append(body["outputs"][0]["data"])
        else:
            predictions.append(body["predictions"])
        assert answer.headers["x-mlport-variant"] == "1"
        assert answer.headers["x-request-id"]
    assert predictions == [EXPECTED] * len(answers)


def test_csv_answers_when_asked() -> None:
    (answer,) = requests(
        make_app(),
        post("/invocations", json=ROWS, headers={"Accept": "text/csv"}),
    )
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.text == "6.0\n15.0\n"


def test_token_is_required_everywhere_but_health() -> None:
    app = make_app()
    answers = requests(
        app,
        ("POST", "/invocations", {"json": ROWS}),
        (
            "POST",
            "/invocations",
            {"json": ROWS, "headers": {"Authorization": "Bearer wrong-token"}},
        ),
        ("POST", "/invocations", {"json": ROWS, "headers": {"Authorization": f"Basic {TOKEN}"}}),
        ("POST", "/score", {"json": ROWS}),
        ("POST", "/predict", {"json": {"instances": ROWS}}),
        ("POST", "/v2/models/demo/infer", {"json": {}}),
        ("GET", "/v2/models/demo", {}),
        ("GET", "/metrics", {}),
        ("GET", "/no-such-route", {}),
    )
    for answer in answers:
        assert answer.status_code == 401, answer.request.url
        assert "token" in answer.json()["error"]
        assert answer.headers["www-authenticate"] == "Bearer"
    open_routes = [
        "/",
        "/ping",
        "/health",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/demo/ready",
    ]
    answers = requests(app, *[("GET", path, {}) for path in open_routes])
    assert [a.status_code for a in answers] == [200] * len(open_routes)
    assert answers[0].text == "Healthy"
    (lower_case,) = requests(
        app,
        ("POST", "/invocations", {"json": ROWS, "headers": {"Authorization": f"bearer {TOKEN}"}}),
    )
    assert lower_case.status_code == 200


def test_without_a_token_every_route_is_open() -> None:
    (answer,) = requests(make_app(token=None), ("POST", "/invocations", {"json": ROWS}))
    assert answer.json() == {"predictions": EXPECTED}


def test_vertex_routes_come_from_its_contract() -> None:
    hosting = Hosting(
        name="vertex", port=8080, health_route="/v1/ok", predict_route="/v1/models/m:predict"
    )
    app = make_app(token=None, hosting=hosting)
    health, predict, default = requests(
        app,
        ("GET", "/v1/ok", {}),
        ("POST", "/v1/models/m:predict", {"json": {"instances": ROWS}}),
        ("POST", "/predict", {"json": {"instances": ROWS}}),
    )
    assert health.status_code == 200
    assert predict.json() == {"predictions": EXPECTED}
    assert default.status_code == 404


def test_rows_the_model_refuses_are_422_with_its_message() -> None:
    answers = requests(
        make_app(),
        post("/invocations", json={"instances": [[1, 2]]}),
        post("/invocations", json={"instances": [[1, 2, "x"]]}),
        post("/score", json={"input_data": [{"a": 1}]}),
        post(
            "/v2/models/demo/infer",
            json={"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]},
        ),
    )
    assert [a.status_code for a in answers] == [422] * 4
    assert answers[0].json() == {"error": "row 0: expected 3 features"}
    assert "'x' is not a number" in answers[1].json()["error"]


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/invocations", b"{not json", "not valid JSON"),
        ("/invocations", b"[]", "holds no rows"),
        ("/invocations", b'"rows"', "must be a JSON list of rows"),
        ("/invocations", b'{"rows": [[1, 2, 3]]}', "has none of"),
        ("/invocations", b'{"instances": {"a": 1}}', "instances must be a list"),
        ("/score", b'{"input_data": {"columns": ["a"], "data": [[1, 2]]}}', "one per column"),
        ("/score", b'{"inputs": {"a": [1], "b": [1, 2]}}', "different lengths"),
        ("/v2/models/demo/infer", b'{"inputs": []}', "non-empty list"),
        (
            "/v2/models/demo/infer",
            b'{"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP64", "data": [1]}]}',
            "needs 6 values",
        ),
        (
            "/v2/models/demo/infer",
            b'{"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FLOAT", "data": [1, 2, 3]}]}',
            "datatype",
        ),
    ],
)
def test_malformed_bodies_are_400(path: str, body: bytes, message: str) -> None:
    app = make_app()
    bad, good = requests(
        app,
        post(path, content=body, headers={"Content-Type": "application/json"}),
        post("/invocations", json=ROWS),
    )
    assert bad.status_code == 400, bad.text
    assert message in bad.json()["error"]
    assert good.status_code == 200


def test_bad_csv_is_400() -> None:
    ragged, not_utf8 = requests(
        make_app(),
        post("/invocations", content=b"1,2,3\n4,5\n", headers={"Content-Type": "text/csv"}),
        post("/invocations", content=b"\xff\xfe1,2", headers={"Content-Type": "text/csv"}),
    )
    assert ragged.status_code == 400 and "row 1 has 2 values" in ragged.json()["error"]
    assert not_utf8.status_code == 400


def test_wrong_content_type_is_415() -> None:
    answers = requests(
        make_app(),
        post("/invocations", content=b"1,2,3", headers={"Content-Type": "text/plain"}),
        post("/score", content=b"1,2,3", headers={"Content-Type": "text/csv"}),
        post(
            "/predict",
            content=b"x=1",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
    )
    assert [a.status_code for a in answers] == [415, 415, 415]
    assert "application/json or text/csv" in answers[0].json()["error"]
    assert answers[1].json() == {"error": "Content-Type must be application/json, not 'text/csv'"}


def test_oversized_bodies_are_413() -> None:
    app = make_app(max_body_bytes=1000)
    big = json.dumps({"instances": [[1, 2, 3]] * 200}).encode()

    async def chunks() -> Any:
        for start in range(0, len(big), 300):
            yield big[start : start + 300]

    async def scenario(client: httpx.AsyncClient) -> list[httpx.Response]:
        declared = await client.post(
            "/invocations", content=big, headers={**AUTH, "Content-Type": "application/json"}
        )
        streamed = await client.post(
            "/invocations", content=chunks(), headers={**AUTH, "Content-Type": "application/json"}
        )
        fine = await client.post("/invocations", json=ROWS, headers=AUTH)
        return [declared, streamed, fine]

    declared, streamed, fine = run(app, scenario)
    assert "content-length" not in streamed.request.headers
    for answer in (declared, streamed):
        assert answer.status_code == 413
        assert "limit of 1000 bytes" in answer.json()["error"]
    assert fine.status_code == 200


def test_unknown_routes_404_and_wrong_methods_405() -> None:
    answers = requests(
        make_app(),
        ("GET", "/nothing", {"headers": AUTH}),
        ("GET", "/invocations", {"headers": AUTH}),
        ("POST", "/ping", {}),
        ("GET", "/v2/models/other", {"headers": AUTH}),
        ("POST", "/v2/models/other/infer", {"headers": AUTH, "json": {}}),
        ("GET", "/v2/models/demo/versions/9", {"headers": AUTH}),
        ("GET", "/v2/models/demo/explain/more", {"headers": AUTH}),
    )
    assert [a.status_code for a in answers] == [404, 405, 405, 404, 404, 404, 404]
    assert answers[1].headers["allow"] == "POST"
    assert "this server serves 'demo'" in answers[3].json()["error"]
    assert "serves versions 1" in answers[5].json()["error"]


def test_a_failing_model_answers_500_and_the_rest_of_its_batch_succeeds() -> None:
    model = RowSumModel()
    app = make_app({"1": (model, 1)}, batching=BatchingConfig(predict_in="thread"))

    async def scenario(client: httpx.AsyncClient) -> list[httpx.Response]:
        bodies = [{"instances": [[1, 2, 3]]}] * 5 + [{"instances": [[FAIL, 0, 0]]}]
        answers = await asyncio.gather(
            *[client.post("/invocations", json=b, headers=AUTH) for b in bodies]
        )
        after = await client.post("/invocations", json=ROWS, headers=AUTH)
        return [*answers, after]

    answers = run(app, scenario)
    assert [a.status_code for a in answers] == [200] * 5 + [500, 200]
    assert answers[5].json() == {
        "error": "the model failed to predict; the server log has the details"
    }
    assert answers[-1].json() == {"predictions": EXPECTED}


def test_a_prediction_past_the_timeout_is_504_while_the_rest_is_answered() -> None:
    model = RowSumModel(slow_seconds=1.0)
    timed_out: list[bool] = []
    app = make_app(
        {"1": (model, 1)},
        batching=BatchingConfig(predict_in="thread"),
        predict_timeout=0.3,
        on_predict_timeout=lambda: timed_out.append(True),
    )

    async def scenario(client: httpx.AsyncClient) -> list[httpx.Response]:
        hung = asyncio.ensure_future(client.post("/invocations", json=[[SLOW, 0, 0]], headers=AUTH))
        await asyncio.sleep(0.05)
        health = await client.get("/ping")
        assert not hung.done(), "the health check waited for the hung model"
        queued = asyncio.ensure_future(client.post("/invocations", json=ROWS, headers=AUTH))
        answers = [await hung, health, await queued]
        answers.append(await client.post("/invocations", json=ROWS, headers=AUTH))
        answers.append(await client.get("/metrics", headers=AUTH))
        return answers

    hung, health, queued, after, metrics = run(app, scenario)
    assert hung.status_code == 504
    message = hung.json()["error"]
    assert message.startswith("the model did not answer within 0.3 s")
    assert "predict_timeout_seconds" in message and "--predict-timeout" in message
    assert health.status_code == 200
    # queued behind the hung call, then predicted by a new thread
    assert queued.json() == after.json() == {"predictions": EXPECTED}
    assert timed_out == [True]
    text = metrics.text
    assert 'mlport_predict_timeouts_total{variant="1"} 1' in text
    assert 'mlport_requests_total{route="invocations",variant="1",code="504"} 1' in text
    assert 'mlport_requests_total{route="invocations",variant="1",code="200"} 2' in text


def test_traffic_is_split_by_weight_within_5_percent() -> None:
    app = make_app(
        {"1": (RowSumModel(), 70), "2": (RowSumModel(factor=2), 30), "3": (RowSumModel(), 0)}
    )

    async def scenario(client: httpx.AsyncClient) -> collections.Counter[str]:
        seen: collections.Counter[str] = collections.Counter()
        for _ in range(2000):
            answer = await client.post("/invocations", json=[[1, 1, 1]], headers=AUTH)
            version = answer.headers["x-mlport-variant"]
            assert answer.json()["predictions"] == [3.0 if version == "1" else 6.0]
            seen[version] += 1
        return seen

    seen = run(app, scenario)
    assert set(seen) == {"1", "2"}
    assert abs(seen["1"] / 2000 - 0.70) <= 0.05
    assert abs(seen["2"] / 2000 - 0.30) <= 0.05


def test_a_variant_can_be_pinned() -> None:
    app = make_app({"1": (RowSumModel(), 100), "2": (RowSumModel(factor=2), 0)})
    pinned, unknown, by_path, path_unknown = requests(
        app,
        post("/invocations", json=ROWS, headers={"X-Mlport-Variant": "2"}),
        post("/invocations", json=ROWS, headers={"X-Mlport-Variant": "7"}),
        post(
            "/v2/models/demo/versions/2/infer",
            json={
                "inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]
            },
        ),
        post(
            "/v2/models/demo/versions/7/infer",
            json={
                "inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]
            },
        ),
    )
    assert pinned.json() == {"predictions": [12.0, 30.0]}
    assert pinned.headers["x-mlport-variant"] == "2"
    assert unknown.status_code == 404
    assert unknown.json() == {"error": "no variant '7'; this endpoint serves versions 1, 2"}
    assert by_path.json()["outputs"][0]["data"] == [12.0] and by_path.json()["model_version"] == "2"
    assert path_unknown.status_code == 404


@pytest.mark.parametrize("predict_in", ["thread", "inline", "auto"])
def test_concurrent_requests_share_predict_calls(predict_in: str) -> None:
    model, solo = RowSumModel(), RowSumModel(factor=2, batching=False)
    app = make_app(
        {"1": (model, 1), "2": (solo, 0)},
        batching=BatchingConfig(max_batch_size=8, predict_in=predict_in),  # type: ignore[arg-type]
    )

    async def scenario(client: httpx.AsyncClient) -> list[httpx.Response]:
        calls = [
            client.post("/invocations", json=[[i, 0, 0]], headers={**AUTH, "X-Mlport-Variant": v})
            for i in range(30)
            for v in ("1", "2")
        ]
        return await asyncio.gather(*calls)

    answers = run(app, scenario)
    for number, answer in enumerate(answers):
        i, version = divmod(number, 2)
        assert answer.json() == {"predictions": [float(i) * (1 if version == 0 else 2)]}
    assert sum(model.calls) == 30 and max(model.calls) <= 8
    assert len(model.calls) < 30, model.calls
    assert solo.calls == [1] * 30


def test_a_request_larger_than_a_batch_is_predicted_whole() -> None:
    model = RowSumModel()
    app = make_app({"1": (model, 1)}, batching=BatchingConfig(max_batch_size=4))
    (answer,) = requests(app, post("/invocations", json=[[1, 1, 1]] * 10))
    assert answer.json() == {"predictions": [3.0] * 10}
    assert model.calls == [10]


def test_metrics_count_requests_latency_and_batches() -> None:
    app = make_app()
    answers = requests(
        app,
        post("/invocations", json=ROWS),
        post("/invocations", json=ROWS),
        post("/invocations", json=[[1]]),
        ("GET", "/ping", {}),
        ("GET", "/metrics", {"headers": AUTH}),
    )
    text = answers[-1].text
    assert answers[-1].headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'mlport_requests_total{route="invocations",variant="1",code="200"} 2' in text
    assert 'mlport_requests_total{route="invocations",variant="1",code="422"} 1' in text
    assert 'mlport_request_errors_total{route="invocations",variant="1",code="422"} 1' in text
    assert 'mlport_requests_total{route="health",variant="",code="200"} 1' in text
    assert 'mlport_request_duration_seconds_count{variant="1"} 3' in text
    assert 'mlport_request_duration_seconds_bucket{variant="1",le="+Inf"} 3' in text
    assert 'mlport_batch_size_count{variant="1"} 2' in text
    assert 'mlport_batch_size_sum{variant="1"} 4.0' in text
    assert 'mlport_variant_weight{variant="1"} 1' in text


def test_metrics_of_several_workers_add_up(tmp_path: Path) -> None:
    first = Metrics(worker=0, directory=tmp_path)
    second = Metrics(worker=1, directory=tmp_path)
    first.request("invocations", "1", 200, 0.002)
    second.request("invocations", "1", 200, 0.003)
    second.request("invocations", "1", 200, 0.004)
    second.predict_timeout("1")
    second.save()
    assert (
        'mlport_requests_total{route="invocations",variant="1",code="200"} 3'
        in first.render().decode()
    )
    # a restarted worker goes on from its predecessor's counts
    again = Metrics(worker=1, directory=tmp_path)
    assert again.requests[("invocations", "1", "200")] == 2
    assert again.predict_timeouts == {"1": 1}
    assert 'mlport_predict_timeouts_total{variant="1"} 1' in first.render().decode()


def test_captured_records_follow_the_schema_at_the_configured_rate(tmp_path: Path) -> None:
    writer = CaptureWriter(
        directory=tmp_path,
        endpoint="demo",
        worker="w0",
        max_bytes=20_000,
        max_seconds=3600,
        queue_size=10_000,
    )
    writer.start()
    app = make_app(capture=writer, capture_percent=10)

    async def scenario(client: httpx.AsyncClient) -> None:
        for i in range(2000):
            answer = await client.post(
                "/invocations", json=[[i, 1, 1]], headers={**AUTH, "X-Request-Id": f"req-{i}"}
            )
            assert answer.headers["x-request-id"] == f"req-{i}"

    run(app, scenario)
    writer.close()
    files = sorted(tmp_path.rglob("*.jsonl"))
    assert len(files) > 1, "files rotate by size"
    for file in files:
        relative = file.relative_to(tmp_path).as_posix()
        assert re.fullmatch(
            r"demo/\d{4}/\d{2}/\d{2}/\d{2}/w0-\d{8}T\d{9}Z(\.\d+)?\.jsonl", relative
        )
    records = [json.loads(line) for file in files for line in file.read_text().splitlines()]
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
        i = int(record["request_id"].removeprefix("req-"))
        assert record["endpoint"] == "demo" and record["version"] == "1"
        assert record["inputs"] == [[float(i), 1.0, 1.0]]
        assert record["outputs"] == [float(i + 2)]
    assert writer.dropped == 0


def test_a_full_capture_queue_drops_instead_of_blocking(tmp_path: Path) -> None:
    writer = CaptureWriter(
        directory=tmp_path,
        endpoint="demo",
        worker="w0",
        max_bytes=10_000,
        max_seconds=3600,
        queue_size=3,
    )
    app = make_app(capture=writer, capture_percent=100)  # the writer is never started
    answers = requests(app, *[post("/invocations", json=ROWS) for _ in range(5)])
    assert [a.status_code for a in answers] == [200] * 5
    assert (writer.records, writer.dropped) == (3, 2)
    assert app.metrics.capture_dropped == 2


def test_v2_metadata_describes_the_inputs() -> None:
    named = Variant(
        "1", RowSumModel(feature_names=["a", "b", "c"]), VariantConfig(path="/m", weight=1)
    )
    plain = Variant(
        "2",
        RowSumModel(),
        VariantConfig(path="/m2", weight=0),
        signature={"inputs": [{"dtype": "float32"}] * 3, "outputs": [{"dtype": "int64"}]},
    )
    app = ServingApp(endpoint="demo", variants=VariantSet({"1": named, "2": plain}), token=None)
    default, pinned, server = requests(
        app,
        ("GET", "/v2/models/demo", {}),
        ("GET", "/v2/models/demo/versions/2", {}),
        ("GET", "/v2", {}),
    )
    assert default.json() == {
        "name": "demo",
        "versions": ["1", "2"],
        "platform": "numpy",
        "inputs": [{"name": n, "datatype": "FP64", "shape": [-1, 1]} for n in "abc"],
        "outputs": [{"name": "predict", "datatype": "FP64", "shape": [-1]}],
    }
    assert pinned.json()["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, 3]}]
    assert pinned.json()["outputs"][0]["datatype"] == "INT64"
    assert server.json()["name"] == "mlport"


def test_a_swap_serves_the_new_variants_at_once() -> None:
    app = make_app()

    async def scenario(client: httpx.AsyncClient) -> list[Any]:
        before = await client.post("/invocations", json=ROWS, headers=AUTH)
        app.swap(variant_set({"2": (RowSumModel(factor=10), 1)}, generation=2))
        after = await client.post("/invocations", json=ROWS, headers=AUTH)
        metrics = await client.get("/metrics", headers=AUTH)
        return [before.headers["x-mlport-variant"], after.json(), metrics.text]

    before, after, metrics = run(app, scenario)
    assert before == "1"
    assert after == {"predictions": [60.0, 150.0]}
    assert "mlport_model_generation 2" in metrics
