"""Serving throughput and start-up: `mlflow models serve`, MLServer and mlport's server, side by side.

The same two models (a LogisticRegression and a 50-tree RandomForest on 20 features) are served
by each server with one worker, each with its own request format (MLflow: /invocations with
"inputs"; MLServer: the V2 protocol; mlport: /invocations with "instances", bearer auth on,
10% capture and metrics on, as users run it). Single-row requests at concurrency 1, 8 and 32
come from `wrk` on 127.0.0.1 for --duration seconds each. Launch-to-first-answer is the time from
starting the server process to the first correct prediction; each server is started --launches
times per model (default 3), the servers taking turns so that other work on the machine hits them
alike, and the median counts (the load runs on the last start).

Targets: mlport at least 1.5x the faster anchor's requests/s at concurrency 32 with a p99 no
worse than its, and launch-to-first-answer at most 0.6x the faster anchor's.

The anchors run in their own virtualenvs under .bench/ (made from benchmarks/anchors/*.txt on
first use). Needs `wrk` (Debian package; `make bench` installs it).

    python benchmarks/serving.py [--duration 10] [--servers mlflow,mlserver,mlport]
    python benchmarks/serving.py --launch-only --launches 9 --servers mlserver,mlport
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from anchor_envs import BENCH, anchor_venv

from mlport.processes import free_port

FEATURES = 20
ROW = [round(0.05 * i - 0.4, 3) for i in range(FEATURES)]


@dataclass
class Models:
    """The benchmark's models, saved in each server's format."""

    work: Path
    mlport: dict[str, Path] = field(default_factory=dict)
    mlflow: dict[str, Path] = field(default_factory=dict)
    mlserver: dict[str, Path] = field(default_factory=dict)
    expected: dict[str, Any] = field(default_factory=dict)


def build_models(work: Path) -> Models:
    import joblib
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    from mlport import package

    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, FEATURES))
    y = (x[:, :5].sum(axis=1) + rng.normal(scale=0.5, size=4000) > 0).astype(int)
    models = Models(work)
    for name, model in (
        ("logreg", LogisticRegression(max_iter=500)),
        ("forest", RandomForestClassifier(n_estimators=50, random_state=0)),
    ):
        model.fit(x, y)
        models.expected[name] = int(model.predict(np.asarray([ROW]))[0])
        folder = work / "mlport" / name
        folder.mkdir(parents=True)
        joblib.dump(model, folder / "model.joblib")
        package.build(folder, framework="sklearn")
        models.mlport[name] = folder
        import mlflow.sklearn

        mlflow_dir = work / "mlflow" / name
        mlflow.sklearn.save_model(
            model,
            str(mlflow_dir),
            serialization_format="cloudpickle",
            pip_requirements=["scikit-learn", "cloudpickle"],
        )
        models.mlflow[name] = mlflow_dir
        serve_dir = work / "mlserver" / name
        (serve_dir / "model").mkdir(parents=True)
        joblib.dump(model, serve_dir / "model" / "model.joblib")
        (serve_dir / "model" / "model-settings.json").write_text(
            json.dumps(
                {
                    "name": "model",
                    "implementation": "mlserver_sklearn.SKLearnModel",
                    "parameters": {"uri": "./model.joblib"},
                }
            )
        )
        models.mlserver[name] = serve_dir
    return models


@dataclass
class Server:
    """A running server and how to ask it for one prediction."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    body: bytes
    headers: dict[str, str]
    parse: Callable[[Any], Any]
    launch_seconds: float = 0.0

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start(
    name: str, argv: list[str], *, cwd: Path, env: dict[str, str], logs: Path, **request: Any
) -> Server:
    out = (logs / f"{name}.log").open("ab")
    started = time.perf_counter()
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        env={**os.environ, **env},
        stdout=out,
        stderr=out,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    server = Server(name=name, process=process, **request)
    deadline = started + 120
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{name} exited with {process.returncode}; see {logs / (name + '.log')}"
            )
        try:
            request_ = urllib.request.Request(server.url, data=server.body, headers=server.headers)
            with urllib.request.urlopen(request_, timeout=2) as answer:
                server.parse(json.loads(answer.read()))
                server.launch_seconds = time.perf_counter() - started
                return server
        except (urllib.error.URLError, ConnectionError, OSError, ValueError):
            time.sleep(0.01)
    server.stop()
    raise RuntimeError(f"{name} did not answer within 120 s; see {logs / (name + '.log')}")


def start_mlflow(models: Models, model: str, logs: Path) -> Server:
    venv = anchor_venv("mlflow")
    port = free_port()
    return start(
        "mlflow",
        [
            str(venv / "bin" / "mlflow"),
            "models",
            "serve",
            "-m",
            str(models.mlflow[model]),
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "--workers",
            "1",
        ],
        cwd=models.work,
        # mlflow runs `uvicorn` by name: its venv's bin goes first on PATH.
        env={
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            "PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}",
        },
        logs=logs,
        url=f"http://127.0.0.1:{port}/invocations",
        body=json.dumps({"inputs": [ROW]}).encode(),
        headers={"Content-Type": "application/json"},
        parse=lambda answer: answer["predictions"][0],
    )


def start_mlserver(models: Models, model: str, logs: Path) -> Server:
    venv = anchor_venv("mlserver")
    port = free_port()
    folder = models.mlserver[model]
    (folder / "settings.json").write_text(
        json.dumps(
            {
                "http_port": port,
                "grpc_port": free_port(),
                "metrics_port": free_port(),
                "host": "127.0.0.1",
            }
        )
    )
    body = {
        "inputs": [{"name": "input-0", "shape": [1, FEATURES], "datatype": "FP64", "data": ROW}]
    }
    return start(
        "mlserver",
        [str(venv / "bin" / "mlserver"), "start", str(folder)],
        cwd=folder,
        env={"PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}"},
        logs=logs,
        url=f"http://127.0.0.1:{port}/v2/models/model/infer",
        body=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        parse=lambda answer: answer["outputs"][0]["data"][0],
    )


def start_mlport(models: Models, model: str, logs: Path) -> Server:
    from mlport import package

    port = free_port()
    token_file = models.work / "token"
    token_file.write_text("bench-token-0123456789")
    token_file.chmod(0o600)
    mlport = Path(sys.executable).with_name("mlport")
    return start(
        "mlport",
        [
            str(mlport),
            "serve",
            str(models.mlport[model]),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--token-file",
            str(token_file),
            "--capture-dir",
            str(models.work / "capture"),
            "--capture-percent",
            "10",
            "--manifest-sha256",
            package.manifest_sha256(models.mlport[model]),
        ],
        cwd=models.work,
        env={},
        logs=logs,
        url=f"http://127.0.0.1:{port}/invocations",
        body=json.dumps({"instances": [ROW]}).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": "Bearer bench-token-0123456789",
        },
        parse=lambda answer: answer["predictions"][0],
    )


STARTERS = {"mlflow": start_mlflow, "mlserver": start_mlserver, "mlport": start_mlport}


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def _ms(text: str) -> float:
    # wrk prints e.g. "812.00us", "3.21ms", "1.02s" or "2.00m".
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"cannot read wrk's latency {text!r}")
    value, unit = match.groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def load(server: Server, concurrency: int, duration: int, work: Path) -> Load:
    script = work / f"{server.name}.lua"
    headers = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in server.headers.items())
    script.write_text(
        f'wrk.method = "POST"\nwrk.body = {json.dumps(server.body.decode())}\n{headers}'
    )
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(script),
            server.url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    # The "Latency Distribution" lines start with the percentile ("99.01%" elsewhere does not).
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    errors_match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = int(errors_match.group(1)) if errors_match else 0
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return Load(rps, p50, p99, errors)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--servers", default="mlflow,mlserver,mlport")
    parser.add_argument("--models", default="logreg,forest")
    parser.add_argument(
        "--launches", type=int, default=3, help="starts per server and model (median counts)"
    )
    parser.add_argument(
        "--launch-only", action="store_true", help="measure launch-to-first-answer only (no wrk)"
    )
    args = parser.parse_args()
    if not args.launch_only and shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk (make bench does it)", file=sys.stderr)
        return 2
    concurrencies = [] if args.launch_only else [int(c) for c in args.concurrency.split(",")]
    servers = args.servers.split(",")
    work = Path(tempfile.mkdtemp(prefix="serving-", dir=BENCH if BENCH.exists() else None))
    logs = work / "logs"
    logs.mkdir()
    models = build_models(work)
    results: dict[str, dict[str, Any]] = {}
    rounds = max(1, args.launches)
    for model in args.models.split(","):
        launches: dict[str, list[float]] = {name: [] for name in servers}
        for turn in range(rounds):
            for name in servers:
                server = STARTERS[name](models, model, logs)
                try:
                    launches[name].append(server.launch_seconds)
                    if turn == rounds - 1:  # the load runs on the last start
                        entry: dict[str, Any] = {}
                        for concurrency in concurrencies:
                            entry[f"c{concurrency}"] = load(
                                server, concurrency, args.duration, work
                            ).__dict__
                        results[f"{model}/{name}"] = entry
                finally:
                    server.stop()
        for name in servers:
            row = results[f"{model}/{name}"]
            row["launches_s"] = launches[name]
            row["launch_s"] = statistics.median(launches[name])
            shown = "  ".join(
                f"c={c}: {row[f'c{c}']['rps']:7.0f} req/s p99 {row[f'c{c}']['p99_ms']:6.2f} ms"
                + (f" ({row[f'c{c}']['errors']} errors)" if row[f"c{c}"]["errors"] else "")
                for c in concurrencies
            )
            spread = (
                f" (median of {len(launches[name])}: "
                + ", ".join(f"{value:.2f}" for value in launches[name])
                + ")"
                if len(launches[name]) > 1
                else ""
            )
            print(
                f"{model:7} {name:9} launch {row['launch_s']:5.2f} s{spread}  {shown}", flush=True
            )
    status = 0
    if "mlport" in servers and len(servers) > 1:
        top = max(concurrencies) if concurrencies else None
        print(f"\nratios (mlport vs the faster anchor{f', c={top}' if top else ''})")
        for model in args.models.split(","):
            anchors = [results[f"{model}/{s}"] for s in servers if s != "mlport"]
            fastest_launch = min(r["launch_s"] for r in anchors)
            ours = results[f"{model}/mlport"]
            launch_ratio = ours["launch_s"] / fastest_launch
            shown = f"launch {launch_ratio:4.2f}x (target <= 0.6)"
            if launch_ratio > 0.6:
                status = 1
            if top is not None:
                best = max(anchors, key=lambda r: r[f"c{top}"]["rps"])
                rps_ratio = ours[f"c{top}"]["rps"] / best[f"c{top}"]["rps"]
                p99_ok = ours[f"c{top}"]["p99_ms"] <= best[f"c{top}"]["p99_ms"]
                shown = (
                    f"throughput {rps_ratio:4.2f}x (target >= 1.5)  p99 "
                    f"{ours[f'c{top}']['p99_ms']:.2f} vs {best[f'c{top}']['p99_ms']:.2f} ms "
                    f"({'ok' if p99_ok else 'WORSE'})  {shown}"
                )
                if rps_ratio < 1.5 or not p99_ok:
                    status = 1
            print(f"{model:7} {shown}")
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%SZ")
    (BENCH / f"serving-{stamp}.json").write_text(json.dumps(results, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
